//! Receiving: ReceiveMessage. One attempt marks messages received inside the
//! writer's transaction (standard queues earliest-visible first, FIFO queues in order
//! per group, skipping groups with a message in flight); long polling repeats
//! attempts, waking on the queue's [`tokio::sync::Notify`] or when the next delayed
//! or in-flight message becomes visible.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use rusqlite::{params, Connection};
use tokio::time::Instant;

use crate::attributes::{MAX_VISIBILITY_TIMEOUT, MAX_WAIT_SECONDS};
use crate::error::QueueError;
use crate::message::{
    decode_attributes, md5_hex, md5_of_attributes, AttributeValue, MessageAttributes,
};
use crate::store::{seal_aad, StoreError};

use super::receipt::make_handle;
use super::retention::expire;
use super::send::sequence_number;
use super::{load_queue, Backend, Identity, QueueRow, Queues};

/// Most messages one receive returns.
pub const MAX_RECEIVE_MESSAGES: u32 = 10;

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The message id given at send.
    pub message_id: String,
    /// The handle for deleting it or changing its visibility; new on every receive.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// Hex MD5 of the body.
    pub md5_of_body: String,
    /// Every system attribute of the message: `SenderId`, `SentTimestamp`,
    /// `ApproximateReceiveCount`, `ApproximateFirstReceiveTimestamp`, and when
    /// they apply `MessageGroupId`, `MessageDeduplicationId`, `SequenceNumber`,
    /// `AWSTraceHeader`, `DeadLetterQueueSourceArn`.
    pub attributes: BTreeMap<String, String>,
    /// Every message attribute.
    pub message_attributes: MessageAttributes,
    /// `MD5OfMessageAttributes` over all of them, when there are any.
    pub md5_of_message_attributes: Option<String>,
    /// Times received, this one included.
    pub receive_count: u32,
    /// Epoch ms of the send.
    pub sent_timestamp: i64,
    /// Epoch ms of the first receive.
    pub first_receive_timestamp: i64,
}

/// A message row as a receive reads it.
#[derive(Debug)]
pub(crate) struct MessageRow {
    pub(crate) id: i64,
    pub(crate) message_id: String,
    /// Sealed.
    pub(crate) body: Vec<u8>,
    /// Sealed, when the message has attributes.
    pub(crate) attributes: Option<Vec<u8>>,
    pub(crate) system_attributes: Option<String>,
    pub(crate) sent_ms: i64,
    pub(crate) receive_count: u32,
    pub(crate) first_receive_ms: Option<i64>,
    pub(crate) group_id: Option<String>,
    pub(crate) dedup_id: Option<String>,
    pub(crate) dead_letter_source: Option<String>,
}

pub(crate) const MESSAGE_COLUMNS: &str = "id, message_id, body, attributes, system_attributes, sent_ms, receive_count, first_receive_ms, group_id, dedup_id, dead_letter_source";

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        message_id: r.get(1)?,
        body: r.get(2)?,
        attributes: r.get(3)?,
        system_attributes: r.get(4)?,
        sent_ms: r.get(5)?,
        receive_count: r.get::<_, i64>(6)? as u32,
        first_receive_ms: r.get(7)?,
        group_id: r.get(8)?,
        dedup_id: r.get(9)?,
        dead_letter_source: r.get(10)?,
    })
}

/// The outcome of one receive attempt.
#[derive(Debug, Default)]
pub(crate) struct Attempt {
    pub(crate) messages: Vec<Received>,
    /// The queue's `ReceiveMessageWaitTimeSeconds`.
    pub(crate) wait_seconds: u32,
    /// When the next delayed or in-flight message becomes visible.
    pub(crate) next_visible_ms: Option<i64>,
    /// Dead-letter queues that messages were moved to.
    pub(crate) moved_to: Vec<String>,
}

/// One receive attempt, inside the writer's transaction.
pub(super) struct ReceiveJob<'a> {
    pub(super) c: &'a Connection,
    pub(super) identity: &'a Identity,
    pub(super) q: &'a QueueRow,
    pub(super) now: i64,
    sealer: &'a stratus_seal::Sealer,
    visibility: u32,
    /// The dead-letter queue, looked up once when first needed.
    pub(super) dlq: Option<Option<QueueRow>>,
    pub(super) attempt: Attempt,
}

/// Opens a sealed column of a message of `queue`; one that does not open (altered
/// on disk, or moved from another message) is reported, never returned.
pub(crate) fn unseal(
    sealer: &stratus_seal::Sealer,
    queue: &str,
    message_id: &str,
    column: &str,
    sealed: &[u8],
) -> Result<String, QueueError> {
    sealer
        .open_string(&seal_aad(message_id, column), sealed)
        .map_err(|e| {
            tracing::error!(queue, message_id, column, error = %e, "a stored message does not open");
            QueueError::Store(StoreError::Corrupt(format!(
                "the stored {column} of message {message_id} in queue {queue} does not open: {e}"
            )))
        })
}

/// The secret of a new receipt handle.
pub(crate) fn new_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A message as a receive answers it, from its row as it was before this receive
/// (`first`: its first receive, `token`: the new receipt's secret). Opens the
/// sealed body and attributes; one that does not open is an error.
pub(crate) fn received(
    identity: &Identity,
    sealer: &stratus_seal::Sealer,
    q: &QueueRow,
    row: MessageRow,
    first: i64,
    token: &str,
) -> Result<Received, QueueError> {
    let body = unseal(sealer, &q.name, &row.message_id, "body", &row.body)?;
    let message_attributes = match &row.attributes {
        Some(sealed) => decode_attributes(Some(&unseal(
            sealer,
            &q.name,
            &row.message_id,
            "attributes",
            sealed,
        )?)),
        None => MessageAttributes::new(),
    };
    let count = row.receive_count + 1;
    let mut attributes = BTreeMap::from([
        ("SenderId".to_string(), identity.account.clone()),
        ("SentTimestamp".to_string(), row.sent_ms.to_string()),
        ("ApproximateReceiveCount".to_string(), count.to_string()),
        (
            "ApproximateFirstReceiveTimestamp".to_string(),
            first.to_string(),
        ),
    ]);
    if let Some(g) = row.group_id {
        attributes.insert("MessageGroupId".into(), g);
    }
    if let Some(d) = row.dedup_id {
        attributes.insert("MessageDeduplicationId".into(), d);
        attributes.insert("SequenceNumber".into(), sequence_number(row.id));
    }
    if let Some(source) = row.dead_letter_source {
        attributes.insert("DeadLetterQueueSourceArn".into(), source);
    }
    for (name, attr) in decode_attributes(row.system_attributes.as_deref()) {
        if let AttributeValue::String(v) = attr.value {
            attributes.insert(name, v);
        }
    }
    Ok(Received {
        message_id: row.message_id,
        receipt_handle: make_handle(q.id, row.id, token),
        md5_of_body: md5_hex(body.as_bytes()),
        body,
        attributes,
        md5_of_message_attributes: md5_of_attributes(&message_attributes),
        message_attributes,
        receive_count: count,
        sent_timestamp: row.sent_ms,
        first_receive_timestamp: first,
    })
}

/// FIFO: which of a queue's messages (`(row, group, visible_ms, receive_count)`,
/// in send order) a receive may take, in order: within each group, the messages
/// before the group's first one that is in flight or delayed.
pub(crate) fn fifo_candidates(
    rows: Vec<(i64, Option<String>, i64, u32)>,
    now: i64,
) -> Vec<(i64, u32)> {
    let mut blocked: HashSet<Option<String>> = HashSet::new();
    let mut out = Vec::new();
    for (id, group, visible_ms, receive_count) in rows {
        if blocked.contains(&group) {
            continue;
        }
        if visible_ms > now {
            blocked.insert(group);
            continue;
        }
        out.push((id, receive_count));
    }
    out
}

impl ReceiveJob<'_> {
    /// Marks a message received and adds it to the answer.
    fn take(&mut self, row: MessageRow) -> Result<(), QueueError> {
        let token = new_token();
        let count = row.receive_count + 1;
        let first = row.first_receive_ms.unwrap_or(self.now);
        self.c
            .prepare_cached(
                "UPDATE messages SET receive_count = ?2, first_receive_ms = ?3, last_receive_ms = ?4,
                 visible_ms = ?5, receipt_token = ?6 WHERE id = ?1",
            )?
            .execute(params![
                row.id,
                count,
                first,
                self.now,
                self.now + i64::from(self.visibility) * 1000,
                token
            ])?;
        let m = received(self.identity, self.sealer, self.q, row, first, &token)?;
        self.attempt.messages.push(m);
        Ok(())
    }

    fn read_row(&self, id: i64) -> Result<MessageRow, QueueError> {
        Ok(self
            .c
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
            ))?
            .query_row([id], message_row)?)
    }

    /// Standard queue: visible messages, earliest visible first.
    fn standard(&mut self, max: usize) -> Result<(), QueueError> {
        let mut seen = HashSet::new();
        loop {
            let limit = (max - self.attempt.messages.len() + seen.len()) as i64;
            let rows: Vec<MessageRow> = self
                .c
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE queue_id = ?1 AND visible_ms <= ?2
                     ORDER BY visible_ms, id LIMIT ?3"
                ))?
                .query_map(params![self.q.id, self.now, limit], message_row)?
                .collect::<Result<_, _>>()?;
            let mut progressed = false;
            for row in rows {
                if !seen.insert(row.id) {
                    continue;
                }
                progressed = true;
                if self.redrive(row.id, row.receive_count)? {
                    continue;
                }
                self.take(row)?;
                if self.attempt.messages.len() >= max {
                    return Ok(());
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// FIFO queue: in order within each group; a group whose oldest message is in
    /// flight (or delayed) yields nothing.
    fn fifo(&mut self, max: usize) -> Result<(), QueueError> {
        let heads: Vec<(i64, Option<String>, i64, u32)> = self
            .c
            .prepare_cached(
                "SELECT id, group_id, visible_ms, receive_count FROM messages WHERE queue_id = ?1 ORDER BY id",
            )?
            .query_map([self.q.id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u32))
            })?
            .collect::<Result<_, _>>()?;
        for (id, receive_count) in fifo_candidates(heads, self.now) {
            if self.redrive(id, receive_count)? {
                continue;
            }
            let row = self.read_row(id)?;
            self.take(row)?;
            if self.attempt.messages.len() >= max {
                break;
            }
        }
        Ok(())
    }
}

impl Queues {
    /// Receives up to `max` (1–10) messages, hiding them for `visibility` seconds
    /// (`None`: the queue's `VisibilityTimeout`). With messages available it returns
    /// at once; otherwise it waits up to `wait` (`None`: the queue's
    /// `ReceiveMessageWaitTimeSeconds`; at most 20 s) for one to arrive or become
    /// visible, and returns as soon as one does.
    pub async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility: Option<u32>,
        wait: Option<Duration>,
    ) -> Result<Vec<Received>, QueueError> {
        if !(1..=MAX_RECEIVE_MESSAGES).contains(&max) {
            return Err(QueueError::param(
                "MaxNumberOfMessages",
                max,
                "Must be between 1 and 10, if provided.",
            ));
        }
        if let Some(v) = visibility.filter(|v| *v > MAX_VISIBILITY_TIMEOUT) {
            return Err(QueueError::param(
                "VisibilityTimeout",
                v,
                "Must be between 0 and 43200, if provided.",
            ));
        }
        if let Some(w) = wait.filter(|w| *w > Duration::from_secs(MAX_WAIT_SECONDS.into())) {
            return Err(QueueError::param(
                "WaitTimeSeconds",
                w.as_secs(),
                "Must be >= 0 and <= 20, if provided.",
            ));
        }
        let notify = self.waiter(queue);
        let start = Instant::now();
        let mut deadline = wait.map(|w| start + w);
        loop {
            // Registered before looking, so a send between the look and the wait
            // still wakes this poll.
            let notified = notify.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let attempt = self.receive_once(queue, max, visibility).await?;
            for dlq in &attempt.moved_to {
                self.wake(dlq);
            }
            if !attempt.messages.is_empty() {
                self.count("NumberOfMessagesReceived", queue, attempt.messages.len());
                return Ok(attempt.messages);
            }
            let deadline =
                *deadline.get_or_insert(start + Duration::from_secs(attempt.wait_seconds.into()));
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut until = deadline;
            if let Some(at) = attempt.next_visible_ms {
                let ms = (at - self.clock.now_ms()).max(1) as u64;
                until = until.min(now + Duration::from_millis(ms));
            }
            if self.is_shared() {
                // Another node's send wakes this poll through a notification; should
                // one be missed (the listening connection was down), look anyway.
                until = until.min(now + crate::postgres::FALLBACK_WAKE);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn receive_once(
        &self,
        queue: &str,
        max: u32,
        visibility: Option<u32>,
    ) -> Result<Attempt, QueueError> {
        let (owned, identity, clock) =
            (queue.to_string(), self.identity.clone(), self.clock.clone());
        let sealer = self.sealer.clone();
        let store = match &self.backend {
            Backend::Sqlite(store) => store,
            Backend::Postgres(pg) => {
                return pg
                    .receive(&identity, &sealer, queue, max, visibility, clock.now_ms())
                    .await
            }
        };
        store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                let now = clock.now_ms();
                expire(c, &q, now)?;
                let mut job = ReceiveJob {
                    c,
                    identity: &identity,
                    q: &q,
                    now,
                    sealer: &sealer,
                    visibility: visibility.unwrap_or(q.config.visibility_timeout),
                    dlq: None,
                    attempt: Attempt {
                        wait_seconds: q.config.receive_wait_seconds,
                        ..Attempt::default()
                    },
                };
                if q.config.fifo {
                    job.fifo(max as usize)?;
                } else {
                    job.standard(max as usize)?;
                }
                let mut attempt = job.attempt;
                if attempt.messages.is_empty() {
                    attempt.next_visible_ms = c
                        .prepare_cached(
                            "SELECT MIN(visible_ms) FROM messages WHERE queue_id = ?1 AND visible_ms > ?2",
                        )?
                        .query_row(params![q.id, now], |r| r.get(0))?;
                }
                Ok::<_, QueueError>(attempt)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::super::test_support::*;
    use super::*;
    use crate::error::QueueError;
    use crate::message::MessageAttribute;
    use crate::queue::{Depth, SendMessage};

    async fn polls_leave_no_wake_up_entries_behind(f: Fixture) {
        for i in 0..100 {
            let e = f.q.receive(&format!("nope-{i}"), 1, None, NOW).await;
            assert!(
                matches!(e, Err(QueueError::QueueDoesNotExist { .. })),
                "{e:?}"
            );
        }
        assert_eq!(f.q.waiters.lock().len(), 0);
        create(&f.q, "q", &[]).await;
        let (a, b) = tokio::join!(
            f.q.receive("q", 1, None, NOW),
            f.q.receive("q", 1, None, NOW)
        );
        assert!(a.unwrap().is_empty() && b.unwrap().is_empty());
        assert_eq!(f.q.waiters.lock().len(), 0);
    }

    async fn send_receive_delete(f: Fixture) {
        create(&f.q, "q", &[]).await;
        let sent =
            f.q.send(
                "q",
                "derp",
                MessageAttributes::from([(
                    "timestamp".to_string(),
                    MessageAttribute::number("1493147359900"),
                )]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(sent.md5_of_body, "58fd9edd83341c29f1aebba81c31e257");
        assert_eq!(
            sent.md5_of_message_attributes.as_deref(),
            Some("235c5c510d26fb653d073faed50ae77c")
        );
        assert_eq!(sent.message_id.len(), 36);
        f.clock.advance(Duration::from_millis(5));
        let got = f.q.receive("q", 10, None, NOW).await.unwrap();
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!(
            (m.message_id.as_str(), m.body.as_str()),
            (sent.message_id.as_str(), "derp")
        );
        assert_eq!(m.md5_of_body, sent.md5_of_body);
        assert_eq!(m.md5_of_message_attributes, sent.md5_of_message_attributes);
        assert_eq!(m.receive_count, 1);
        assert_eq!(m.sent_timestamp, T0);
        assert_eq!(m.first_receive_timestamp, T0 + 5);
        assert_eq!(m.attributes["SentTimestamp"], T0.to_string());
        assert_eq!(m.attributes["ApproximateReceiveCount"], "1");
        assert_eq!(
            m.attributes["ApproximateFirstReceiveTimestamp"],
            (T0 + 5).to_string()
        );
        assert_eq!(m.attributes["SenderId"], "123456789012");
        assert_eq!(
            f.q.depth("q").await.unwrap(),
            Depth {
                visible: 0,
                in_flight: 1,
                delayed: 0
            }
        );
        assert!(f.q.delete("q", &m.receipt_handle).await.unwrap());
        assert_eq!(f.q.depth("q").await.unwrap(), Depth::default());
        // Deleting again succeeds and deletes nothing, as in SQS.
        assert!(!f.q.delete("q", &m.receipt_handle).await.unwrap());
    }

    async fn visibility_timeout_hides_a_message_until_it_runs_out(f: Fixture) {
        create(&f.q, "q", &[("VisibilityTimeout", "30")]).await;
        f.q.send("q", "m", MessageAttributes::new(), None)
            .await
            .unwrap();
        let first = f.q.receive("q", 1, None, NOW).await.unwrap().remove(0);
        assert!(f.q.receive("q", 1, None, NOW).await.unwrap().is_empty());
        f.clock.advance(Duration::from_secs(29));
        assert!(f.q.receive("q", 1, None, NOW).await.unwrap().is_empty());
        f.clock.advance(Duration::from_secs(1));
        let second = f.q.receive("q", 1, None, NOW).await.unwrap().remove(0);
        assert_eq!(second.message_id, first.message_id);
        assert_eq!(second.receive_count, 2);
        assert_eq!(second.attributes["ApproximateReceiveCount"], "2");
        assert_eq!(
            second.first_receive_timestamp,
            first.first_receive_timestamp
        );
        assert_ne!(second.receipt_handle, first.receipt_handle);
        // The older handle no longer deletes; the latest one does.
        assert!(!f.q.delete("q", &first.receipt_handle).await.unwrap());
        assert_eq!(f.q.depth("q").await.unwrap().in_flight, 1);
        assert!(f.q.delete("q", &second.receipt_handle).await.unwrap());
    }

    async fn zero_visibility_returns_the_message_again_at_once(f: Fixture) {
        create(&f.q, "q", &[]).await;
        f.q.send("q", "m", MessageAttributes::new(), None)
            .await
            .unwrap();
        let a = f.q.receive("q", 10, Some(0), NOW).await.unwrap();
        assert_eq!(a.len(), 1, "one message, not repeated within a receive");
        let b = f.q.receive("q", 10, Some(0), NOW).await.unwrap();
        assert_eq!(b[0].receive_count, 2);
    }

    async fn long_poll_wakes_on_send(f: Fixture) {
        let q = f.q.clone();
        create(&q, "q", &[]).await;
        let poller = {
            let q = q.clone();
            tokio::spawn(
                async move { q.receive("q", 1, None, Some(Duration::from_secs(20))).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        q.send("q", "wake", MessageAttributes::new(), None)
            .await
            .unwrap();
        // Far less than the 20 s wait: the send woke the poll.
        let got = tokio::time::timeout(Duration::from_secs(10), poller)
            .await
            .expect("the long poll should end when a message arrives")
            .unwrap()
            .unwrap();
        assert_eq!(got[0].body, "wake");
    }

    async fn long_poll_wakes_when_a_delayed_message_becomes_visible(f: Fixture) {
        let q = f.q.clone();
        create(&q, "q", &[("ReceiveMessageWaitTimeSeconds", "20")]).await;
        q.send("q", "later", MessageAttributes::new(), Some(1))
            .await
            .unwrap();
        // wait = None: the queue's ReceiveMessageWaitTimeSeconds applies.
        let got = tokio::time::timeout(Duration::from_secs(10), q.receive("q", 1, None, None))
            .await
            .expect("the poll should end when the delay passes")
            .unwrap();
        assert_eq!(got[0].body, "later");
    }

    async fn long_poll_of_an_empty_queue_ends_empty_after_the_wait(f: Fixture) {
        let q = f.q.clone();
        create(&q, "q", &[]).await;
        let t = Instant::now();
        let got = q
            .receive("q", 1, None, Some(Duration::from_millis(300)))
            .await
            .unwrap();
        assert!(got.is_empty());
        assert!(t.elapsed() >= Duration::from_millis(300));
    }

    async fn receive_parameters_are_validated(f: Fixture) {
        create(&f.q, "q", &[]).await;
        for (max, vis, wait) in [
            (0, None, NOW),
            (11, None, NOW),
            (1, Some(43_201), NOW),
            (1, None, Some(Duration::from_secs(21))),
        ] {
            assert!(matches!(
                f.q.receive("q", max, vis, wait).await,
                Err(QueueError::InvalidParameterValue { .. })
            ));
        }
    }

    async fn fifo_orders_within_groups_and_blocks_groups_in_flight(f: Fixture) {
        create(&f.q, "f.fifo", &[("FifoQueue", "true")]).await;
        let send = |body: &'static str, group: &'static str| {
            let q = f.q.clone();
            async move {
                q.send_message(
                    "f.fifo",
                    SendMessage {
                        group_id: Some(group.into()),
                        deduplication_id: Some(body.into()),
                        ..SendMessage::new(body)
                    },
                )
                .await
                .unwrap()
            }
        };
        let a1 = send("a1", "A").await;
        send("a2", "A").await;
        send("b1", "B").await;
        assert!(a1.sequence_number.is_some());
        let first = f.q.receive("f.fifo", 1, None, NOW).await.unwrap().remove(0);
        assert_eq!(first.body, "a1");
        assert_eq!(first.attributes["MessageGroupId"], "A");
        // A is blocked while a1 is in flight; B is not.
        let next = f.q.receive("f.fifo", 10, None, NOW).await.unwrap();
        assert_eq!(
            next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["b1"]
        );
        f.q.delete("f.fifo", &first.receipt_handle).await.unwrap();
        let next = f.q.receive("f.fifo", 10, None, NOW).await.unwrap();
        assert_eq!(
            next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["a2"]
        );
    }

    on_both_backends!(
        manual polls_leave_no_wake_up_entries_behind,
        manual send_receive_delete,
        manual visibility_timeout_hides_a_message_until_it_runs_out,
        manual zero_visibility_returns_the_message_again_at_once,
        manual receive_parameters_are_validated,
        manual fifo_orders_within_groups_and_blocks_groups_in_flight,
        real long_poll_wakes_on_send,
        real long_poll_wakes_when_a_delayed_message_becomes_visible,
        real long_poll_of_an_empty_queue_ends_empty_after_the_wait,
    );
}
