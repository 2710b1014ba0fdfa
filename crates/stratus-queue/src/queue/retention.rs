//! Retention: a message older than its queue's `MessageRetentionPeriod` (counted
//! from its first `SentTimestamp`, also in a dead-letter queue) is deleted before any
//! read of its queue. The sweep at start-up is [`crate::store`]'s.

use rusqlite::{params, Connection};

use crate::error::QueueError;

use super::QueueRow;

/// Deletes the queue's messages that are past its retention period.
pub(super) fn expire(c: &Connection, q: &QueueRow, now: i64) -> Result<(), QueueError> {
    let cutoff = now - i64::from(q.config.retention_seconds) * 1000;
    c.prepare_cached("DELETE FROM messages WHERE queue_id = ?1 AND sent_ms <= ?2")?
        .execute(params![q.id, cutoff])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use rusqlite::Connection;

    use super::super::test_support::*;
    use crate::clock::ManualClock;
    use crate::message::MessageAttributes;
    use crate::queue::{Depth, Queues};

    async fn messages_past_retention_vanish(f: Fixture) {
        create(&f.q, "q", &[("MessageRetentionPeriod", "60")]).await;
        f.q.send("q", "old", MessageAttributes::new(), None)
            .await
            .unwrap();
        f.clock.advance(Duration::from_secs(30));
        f.q.send("q", "young", MessageAttributes::new(), None)
            .await
            .unwrap();
        f.clock.advance(Duration::from_secs(30));
        assert_eq!(f.q.depth("q").await.unwrap().visible, 1);
        let got = f.q.receive("q", 10, None, NOW).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body, "young");
        // Even in flight, a message expires.
        f.clock.advance(Duration::from_secs(30));
        assert_eq!(f.q.depth("q").await.unwrap(), Depth::default());
    }

    #[tokio::test]
    async fn expired_messages_are_swept_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let sealer = stratus_seal::Sealer::ephemeral().unwrap();
        let open = |clock: Arc<ManualClock>| {
            Queues::open_with_clock(
                dir.path(),
                "http://h",
                "us-east-1",
                "1",
                sealer.clone(),
                clock,
            )
            .unwrap()
        };
        let q = open(clock.clone());
        create(&q, "q", &[("MessageRetentionPeriod", "60")]).await;
        q.send("q", "m", MessageAttributes::new(), None)
            .await
            .unwrap();
        drop(q);
        clock.advance(Duration::from_secs(61));
        let _q = open(clock);
        let conn = Connection::open(dir.path().join("queues.db")).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    on_both_backends!(
        manual messages_past_retention_vanish,
    );
}
