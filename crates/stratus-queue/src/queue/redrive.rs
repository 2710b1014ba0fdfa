//! Dead-letter queues: a receive that meets a message already received
//! `maxReceiveCount` times moves it to the queue's dead-letter queue instead of
//! returning it; redrive targets are checked when a policy is set; and the sources of
//! a dead-letter queue can be listed (ListDeadLetterSourceQueues).

use rusqlite::{params, Connection};

use crate::attributes::{QueueConfig, RedrivePolicy};
use crate::error::QueueError;

use super::receive::ReceiveJob;
use super::{load_queue, load_queue_opt, Backend, Identity, QueueRow, Queues};

impl ReceiveJob<'_> {
    /// Whether the message has used up its receives: then it is moved (when the
    /// dead-letter queue exists) and must not be returned.
    pub(super) fn redrive(&mut self, row_id: i64, receive_count: u32) -> Result<bool, QueueError> {
        let q = self.q;
        let Some(policy) = must_redrive(q, receive_count) else {
            return Ok(false);
        };
        if self.dlq.is_none() {
            let dlq = match self.identity.name_from_arn(&policy.dead_letter_target_arn) {
                Some(name) => load_queue_opt(self.c, &name)?,
                None => None,
            };
            if dlq.is_none() {
                warn_no_dlq(q, policy);
            }
            self.dlq = Some(dlq);
        }
        let Some(Some(dlq)) = &self.dlq else {
            return Ok(false);
        };
        self.c
            .prepare_cached(
                "UPDATE messages SET queue_id = ?2, receive_count = 0, first_receive_ms = NULL, last_receive_ms = NULL,
                 receipt_token = NULL, visible_ms = ?3, dead_letter_source = ?4 WHERE id = ?1",
            )?
            .execute(params![row_id, dlq.id, self.now, self.identity.arn(&q.name)])?;
        if !self.attempt.moved_to.contains(&dlq.name) {
            self.attempt.moved_to.push(dlq.name.clone());
        }
        Ok(true)
    }
}

/// The redrive policy, when a message received `receive_count` times has used up
/// its receives and must be moved rather than returned.
pub(crate) fn must_redrive(q: &QueueRow, receive_count: u32) -> Option<&RedrivePolicy> {
    q.config
        .redrive
        .as_ref()
        .filter(|p| receive_count >= p.max_receive_count)
}

/// Says that a message that used up its receives stays: its target is missing.
pub(crate) fn warn_no_dlq(q: &QueueRow, policy: &RedrivePolicy) {
    tracing::warn!(
        queue = %q.name,
        target = %policy.dead_letter_target_arn,
        "the dead-letter queue does not exist; the message stays in its queue"
    );
}

/// Whether a queue's stored configuration redrives to `arn`.
pub(crate) fn redrives_to(config: &str, arn: &str) -> bool {
    serde_json::from_str::<QueueConfig>(config)
        .ok()
        .and_then(|c| c.redrive)
        .is_some_and(|r| r.dead_letter_target_arn == arn)
}

impl Queues {
    /// Names of the queues whose redrive policy targets `name`, sorted.
    pub async fn dead_letter_sources(&self, name: &str) -> Result<Vec<String>, QueueError> {
        let (owned, identity) = (name.to_string(), self.identity.clone());
        let store = match &self.backend {
            Backend::Sqlite(store) => store,
            Backend::Postgres(pg) => {
                return pg.dead_letter_sources(name, &identity.arn(name)).await
            }
        };
        store
            .run(move |c| {
                load_queue(c, &owned)?;
                let arn = identity.arn(&owned);
                let rows: Vec<(String, String)> = c
                    .prepare_cached("SELECT name, config FROM queues ORDER BY name")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                Ok::<_, QueueError>(
                    rows.into_iter()
                        .filter(|(_, config)| redrives_to(config, &arn))
                        .map(|(n, _)| n)
                        .collect(),
                )
            })
            .await
    }
}

/// A redrive target must be a queue of this server, of the same type, other than
/// the source.
pub(super) fn check_redrive_target(
    c: &Connection,
    identity: &Identity,
    source: &str,
    fifo: bool,
    policy: &RedrivePolicy,
) -> Result<(), QueueError> {
    let name = redrive_target_name(identity, source, policy)?;
    check_redrive_type(load_queue_opt(c, &name)?.as_ref(), fifo, policy)
}

/// The name of a redrive policy's target: a queue of this server other than the
/// source.
pub(crate) fn redrive_target_name(
    identity: &Identity,
    source: &str,
    policy: &RedrivePolicy,
) -> Result<String, QueueError> {
    let arn = &policy.dead_letter_target_arn;
    let Some(name) = identity.name_from_arn(arn) else {
        return Err(bad_policy(
            policy,
            format!(
            "Dead letter target {arn} is not a queue ARN of this server (arn:aws:sqs:{}:{}:NAME).",
            identity.region, identity.account
        ),
        ));
    };
    if name == source {
        return Err(bad_policy(
            policy,
            "A queue cannot be its own dead-letter queue.".into(),
        ));
    }
    Ok(name)
}

/// The redrive target (as loaded) must exist and be of the source's type.
pub(crate) fn check_redrive_type(
    target: Option<&QueueRow>,
    fifo: bool,
    policy: &RedrivePolicy,
) -> Result<(), QueueError> {
    let Some(target) = target else {
        return Err(bad_policy(
            policy,
            format!(
                "Dead letter target does not exist: {}.",
                policy.dead_letter_target_arn
            ),
        ));
    };
    if target.config.fifo != fifo {
        return Err(bad_policy(policy,
            "The dead-letter queue of a FIFO queue must be a FIFO queue, and of a standard queue a standard queue.".into(),
        ));
    }
    Ok(())
}

fn bad_policy(policy: &RedrivePolicy, reason: String) -> QueueError {
    QueueError::param("RedrivePolicy", policy.to_json(), reason)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::super::test_support::*;
    use crate::message::{MessageAttribute, MessageAttributes};
    use crate::queue::Depth;

    async fn redrive_moves_a_message_after_max_receives(f: Fixture) {
        create(&f.q, "dlq", &[]).await;
        let policy = format!(
            r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":2}}"#,
            f.q.arn("dlq")
        );
        create(
            &f.q,
            "src",
            &[("RedrivePolicy", &policy), ("VisibilityTimeout", "1")],
        )
        .await;
        let sent =
            f.q.send(
                "src",
                "poison",
                MessageAttributes::from([("k".to_string(), MessageAttribute::string("v"))]),
                None,
            )
            .await
            .unwrap();
        for n in 1..=2 {
            let m = f.q.receive("src", 1, None, NOW).await.unwrap().remove(0);
            assert_eq!(m.receive_count, n);
            f.clock.advance(Duration::from_secs(1));
        }
        // The third attempt moves it instead of returning it.
        assert!(f.q.receive("src", 1, None, NOW).await.unwrap().is_empty());
        assert_eq!(f.q.depth("src").await.unwrap(), Depth::default());
        let m = f.q.receive("dlq", 1, None, NOW).await.unwrap().remove(0);
        assert_eq!(m.message_id, sent.message_id);
        assert_eq!(m.body, "poison");
        assert_eq!(m.receive_count, 1);
        assert_eq!(m.sent_timestamp, T0);
        assert_eq!(m.message_attributes["k"], MessageAttribute::string("v"));
        assert_eq!(m.attributes["DeadLetterQueueSourceArn"], f.q.arn("src"));
        assert_eq!(f.q.dead_letter_sources("dlq").await.unwrap(), ["src"]);
    }

    async fn redrive_targets_must_exist_and_match_the_queue_type(f: Fixture) {
        let policy = |name: &str| {
            format!(
                r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":2}}"#,
                f.q.arn(name)
            )
        };
        let e =
            f.q.create_queue(
                "src",
                &attrs(&[("RedrivePolicy", &policy("missing"))]),
                &HashMap::new(),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        create(&f.q, "src", &[]).await;
        let e =
            f.q.set_attributes("src", &attrs(&[("RedrivePolicy", &policy("src"))]))
                .await
                .unwrap_err();
        assert!(e.to_string().contains("its own"), "{e}");
        create(&f.q, "d.fifo", &[("FifoQueue", "true")]).await;
        let e =
            f.q.set_attributes("src", &attrs(&[("RedrivePolicy", &policy("d.fifo"))]))
                .await
                .unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
    }

    on_both_backends!(
        manual redrive_moves_a_message_after_max_receives,
        manual redrive_targets_must_exist_and_match_the_queue_type,
    );
}
