//! Sending: SendMessage and SendMessageBatch. Validation of bodies, attributes and
//! FIFO ids, per-message and per-queue delays, and FIFO deduplication within
//! [`DEDUPLICATION_WINDOW`]. A send is on disk before it is answered.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::attributes::MAX_DELAY_SECONDS;
use crate::error::QueueError;
use crate::message::{
    self, encode_attributes, md5_hex, md5_of_attributes, AttributeValue, MessageAttributes,
};
use crate::store::seal_aad;

use super::{load_queue, new_uuid, Backend, QueueRow, Queues};

/// How long a FIFO deduplication id suppresses duplicates.
pub const DEDUPLICATION_WINDOW: Duration = Duration::from_secs(300);

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendMessage {
    /// The body (1 character to 1 MiB, SQS's allowed characters).
    pub body: String,
    /// Message attributes (at most 10).
    pub attributes: MessageAttributes,
    /// Message system attributes: only `AWSTraceHeader` exists.
    pub system_attributes: MessageAttributes,
    /// Seconds before it can be received (0–900); `None` takes the queue's
    /// `DelaySeconds`. Not allowed on FIFO queues.
    pub delay_seconds: Option<u32>,
    /// FIFO: the ordering group (required). Standard: kept and returned.
    pub group_id: Option<String>,
    /// FIFO: the deduplication id.
    pub deduplication_id: Option<String>,
}

impl SendMessage {
    /// A message with just a body.
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }
}

/// The answer to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message id (a UUID). For a FIFO duplicate, the id of the original.
    pub message_id: String,
    /// Hex MD5 of the body.
    pub md5_of_body: String,
    /// `MD5OfMessageAttributes`, when there are attributes.
    pub md5_of_message_attributes: Option<String>,
    /// `MD5OfMessageSystemAttributes`, when there are system attributes.
    pub md5_of_message_system_attributes: Option<String>,
    /// FIFO: the message's sequence number.
    pub sequence_number: Option<String>,
}

impl Queues {
    /// Sends a message with just a body, message attributes and a delay (`None`:
    /// the queue's `DelaySeconds`).
    pub async fn send(
        &self,
        queue: &str,
        body: impl Into<String>,
        attributes: MessageAttributes,
        delay_seconds: Option<u32>,
    ) -> Result<Sent, QueueError> {
        self.send_message(
            queue,
            SendMessage {
                body: body.into(),
                attributes,
                delay_seconds,
                ..SendMessage::default()
            },
        )
        .await
    }

    /// Sends a message. It is on disk when this returns.
    pub async fn send_message(
        &self,
        queue: &str,
        message: SendMessage,
    ) -> Result<Sent, QueueError> {
        let mut results = self.send_batch(queue, vec![message]).await?;
        results.pop().unwrap_or_else(|| {
            Err(QueueError::InvalidParameters {
                reason: "nothing was sent".into(),
            })
        })
    }

    /// Sends several messages in one transaction; each succeeds or fails on its own.
    /// The outer error is for the queue as a whole (it does not exist).
    pub async fn send_batch(
        &self,
        queue: &str,
        messages: Vec<SendMessage>,
    ) -> Result<Vec<Result<Sent, QueueError>>, QueueError> {
        // Sealed here, on the caller's task, not on the single writer thread.
        let checked: Vec<Result<Sealed, QueueError>> = messages
            .into_iter()
            .map(|m| {
                validate_send(&m)?;
                Sealed::new(&self.sealer, m)
            })
            .collect();
        let (owned, clock) = (queue.to_string(), self.clock.clone());
        let store = match &self.backend {
            Backend::Sqlite(store) => store,
            Backend::Postgres(pg) => {
                let results = pg.send_batch(queue, checked, clock.now_ms()).await?;
                self.wake(queue);
                let sent = results.iter().filter(|r| r.is_ok()).count();
                self.count("NumberOfMessagesSent", queue, sent);
                return Ok(results);
            }
        };
        let results = store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                let now = clock.now_ms();
                let mut out = Vec::with_capacity(checked.len());
                for m in checked {
                    out.push(m.and_then(|m| {
                        // Each message in its own savepoint: a failure leaves no trace.
                        c.execute_batch("SAVEPOINT send_one")?;
                        let r = insert_message(c, &q, &m, now);
                        c.execute_batch(if r.is_ok() {
                            "RELEASE send_one"
                        } else {
                            "ROLLBACK TO send_one; RELEASE send_one"
                        })?;
                        r
                    }));
                }
                Ok::<_, QueueError>(out)
            })
            .await?;
        self.wake(queue);
        let sent = results.iter().filter(|r| r.is_ok()).count();
        self.count("NumberOfMessagesSent", queue, sent);
        Ok(results)
    }
}

/// A validated message with its id and its sealed body and attributes.
pub(crate) struct Sealed {
    pub(crate) message: SendMessage,
    pub(crate) message_id: String,
    pub(crate) body: Vec<u8>,
    pub(crate) attributes: Option<Vec<u8>>,
}

impl Sealed {
    fn new(sealer: &stratus_seal::Sealer, message: SendMessage) -> Result<Self, QueueError> {
        let message_id = new_uuid();
        let seal = |column: &str, text: &str| {
            sealer
                .seal_str(&seal_aad(&message_id, column), text)
                .map_err(|e| QueueError::Store(e.into()))
        };
        let body = seal("body", &message.body)?;
        let attributes = encode_attributes(&message.attributes)
            .map(|a| seal("attributes", &a))
            .transpose()?;
        Ok(Self {
            message,
            message_id,
            body,
            attributes,
        })
    }
}

/// FIFO ids: 1–128 characters, alphanumerics and punctuation.
fn validate_fifo_id(name: &str, value: &str) -> Result<(), QueueError> {
    if value.is_empty() || value.len() > 128 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(QueueError::param(
            name,
            value,
            "Must be 1 to 128 characters of alphanumerics and punctuation.",
        ));
    }
    Ok(())
}

/// Checks what can be checked without the queue's configuration.
fn validate_send(m: &SendMessage) -> Result<(), QueueError> {
    message::validate_body(&m.body)?;
    message::validate_attributes(&m.attributes)?;
    for (name, attr) in &m.system_attributes {
        if name != "AWSTraceHeader" {
            return Err(QueueError::InvalidParameters {
                reason: format!("Message system attribute name '{name}' is invalid; the only one is AWSTraceHeader."),
            });
        }
        if attr.data_type != "String"
            || !matches!(&attr.value, AttributeValue::String(s) if !s.is_empty())
        {
            return Err(QueueError::InvalidParameters {
                reason: "Message system attribute AWSTraceHeader must be a non-empty String."
                    .into(),
            });
        }
    }
    if let Some(d) = m.delay_seconds {
        if d > MAX_DELAY_SECONDS {
            return Err(QueueError::param(
                "DelaySeconds",
                d,
                "must be an integer from 0 to 900.",
            ));
        }
    }
    if let Some(g) = &m.group_id {
        validate_fifo_id("MessageGroupId", g)?;
    }
    if let Some(d) = &m.deduplication_id {
        validate_fifo_id("MessageDeduplicationId", d)?;
    }
    Ok(())
}

/// What storing one validated message takes: the answer (before a FIFO
/// sequence number), its delay and, on a FIFO queue, its deduplication id.
pub(crate) struct Planned {
    pub(crate) sent: Sent,
    pub(crate) delay: u32,
    pub(crate) dedup_id: Option<String>,
    pub(crate) system_attributes: Option<String>,
}

/// Checks a validated message against its queue (size, FIFO rules) and works out
/// its delay and deduplication id. Both backends store what this decides.
pub(crate) fn plan_insert(q: &QueueRow, sealed: &Sealed) -> Result<Planned, QueueError> {
    let m = &sealed.message;
    let size = message::message_size(&m.body, &m.attributes);
    if size > q.config.max_message_size as usize {
        return Err(QueueError::InvalidParameters {
            reason: format!(
                "Message must be shorter than {} bytes (this one is {size}, counting attributes).",
                q.config.max_message_size
            ),
        });
    }
    let sent = Sent {
        message_id: sealed.message_id.clone(),
        md5_of_body: md5_hex(m.body.as_bytes()),
        md5_of_message_attributes: md5_of_attributes(&m.attributes),
        md5_of_message_system_attributes: md5_of_attributes(&m.system_attributes),
        sequence_number: None,
    };
    let system_attributes = encode_attributes(&m.system_attributes);
    if !q.config.fifo {
        if m.deduplication_id.is_some() {
            return Err(QueueError::param(
                "MessageDeduplicationId",
                m.deduplication_id.as_deref().unwrap_or_default(),
                "The request include parameter that is not valid for this queue type: only FIFO queues deduplicate.",
            ));
        }
        return Ok(Planned {
            sent,
            delay: m.delay_seconds.unwrap_or(q.config.delay_seconds),
            dedup_id: None,
            system_attributes,
        });
    }
    let Some(_) = &m.group_id else {
        return Err(QueueError::MissingParameter {
            name: "MessageGroupId".into(),
        });
    };
    if m.delay_seconds.is_some_and(|d| d > 0) {
        return Err(QueueError::param(
            "DelaySeconds",
            m.delay_seconds.unwrap_or_default(),
            "The request include parameter that is not valid for this queue type: FIFO queues take DelaySeconds only as a queue attribute.",
        ));
    }
    let id = match (&m.deduplication_id, q.config.content_based_deduplication) {
        (Some(id), _) => id.clone(),
        (None, true) => hex::encode(Sha256::digest(m.body.as_bytes())),
        (None, false) => {
            return Err(QueueError::InvalidParameters {
                reason: "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly.".into(),
            })
        }
    };
    Ok(Planned {
        sent,
        delay: q.config.delay_seconds,
        dedup_id: Some(id),
        system_attributes,
    })
}

/// Inserts one validated message into `q` (FIFO: unless it is a duplicate).
fn insert_message(
    c: &Connection,
    q: &QueueRow,
    sealed: &Sealed,
    now: i64,
) -> Result<Sent, QueueError> {
    let Planned {
        mut sent,
        delay,
        dedup_id,
        system_attributes,
    } = plan_insert(q, sealed)?;
    if let Some(id) = &dedup_id {
        c.prepare_cached("DELETE FROM dedup WHERE queue_id = ?1 AND expires_ms <= ?2")?
            .execute(params![q.id, now])?;
        let original: Option<(String, i64)> = c
            .prepare_cached(
                "SELECT message_id, sequence FROM dedup WHERE queue_id = ?1 AND dedup_id = ?2",
            )?
            .query_row(params![q.id, id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((message_id, sequence)) = original {
            sent.message_id = message_id;
            sent.sequence_number = Some(sequence_number(sequence));
            return Ok(sent);
        }
    }
    let m = &sealed.message;
    c.prepare_cached(
        "INSERT INTO messages (queue_id, message_id, body, attributes, system_attributes, sent_ms, visible_ms, group_id, dedup_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        q.id,
        sent.message_id,
        sealed.body,
        sealed.attributes,
        system_attributes,
        now,
        now + i64::from(delay) * 1000,
        m.group_id,
        dedup_id,
    ])?;
    if let Some(id) = dedup_id {
        let sequence = c.last_insert_rowid();
        c.prepare_cached(
            "INSERT OR REPLACE INTO dedup (queue_id, dedup_id, message_id, sequence, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            q.id,
            id,
            sent.message_id,
            sequence,
            now + DEDUPLICATION_WINDOW.as_millis() as i64
        ])?;
        sent.sequence_number = Some(sequence_number(sequence));
    }
    Ok(sent)
}

pub(crate) fn sequence_number(row_id: i64) -> String {
    format!("{row_id:020}")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::error::QueueError;
    use crate::queue::Depth;

    async fn delays_per_queue_and_per_message(f: Fixture) {
        create(&f.q, "q", &[("DelaySeconds", "10")]).await;
        f.q.send("q", "queue-delay", MessageAttributes::new(), None)
            .await
            .unwrap();
        f.q.send("q", "no-delay", MessageAttributes::new(), Some(0))
            .await
            .unwrap();
        f.q.send("q", "long-delay", MessageAttributes::new(), Some(900))
            .await
            .unwrap();
        assert_eq!(
            f.q.depth("q").await.unwrap(),
            Depth {
                visible: 1,
                in_flight: 0,
                delayed: 2
            }
        );
        let got = f.q.receive("q", 10, None, NOW).await.unwrap();
        assert_eq!(
            got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["no-delay"]
        );
        f.clock.advance(Duration::from_secs(10));
        let got = f.q.receive("q", 10, None, NOW).await.unwrap();
        assert_eq!(
            got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["queue-delay"]
        );
        assert!(matches!(
            f.q.send("q", "x", MessageAttributes::new(), Some(901))
                .await,
            Err(QueueError::InvalidParameterValue { .. })
        ));
    }

    async fn batches_fail_entry_by_entry(f: Fixture) {
        create(&f.q, "q", &[("MaximumMessageSize", "1024")]).await;
        let results =
            f.q.send_batch(
                "q",
                vec![
                    SendMessage::new("fine"),
                    SendMessage::new("x".repeat(1025)),
                    SendMessage::new("bad \u{0}"),
                    SendMessage::new("also fine"),
                ],
            )
            .await
            .unwrap();
        assert!(results[0].is_ok() && results[3].is_ok());
        assert!(matches!(
            results[1],
            Err(QueueError::InvalidParameters { .. })
        ));
        assert!(matches!(
            results[2],
            Err(QueueError::InvalidMessageContents { .. })
        ));
        assert_eq!(f.q.depth("q").await.unwrap().visible, 2);
        let got = f.q.receive("q", 10, None, NOW).await.unwrap();
        let mut handles: Vec<String> = got.iter().map(|m| m.receipt_handle.clone()).collect();
        handles.push("garbage".into());
        let deleted = f.q.delete_batch("q", handles).await.unwrap();
        assert!(matches!(
            deleted.as_slice(),
            [
                Ok(true),
                Ok(true),
                Err(QueueError::ReceiptHandleIsInvalid { .. })
            ]
        ));
    }

    async fn fifo_deduplicates_within_five_minutes(f: Fixture) {
        create(
            &f.q,
            "f.fifo",
            &[("FifoQueue", "true"), ("ContentBasedDeduplication", "true")],
        )
        .await;
        let msg = || SendMessage {
            group_id: Some("g".into()),
            ..SendMessage::new("same body")
        };
        let a = f.q.send_message("f.fifo", msg()).await.unwrap();
        let b = f.q.send_message("f.fifo", msg()).await.unwrap();
        assert_eq!(a.message_id, b.message_id);
        assert_eq!(a.sequence_number, b.sequence_number);
        assert_eq!(f.q.depth("f.fifo").await.unwrap().visible, 1);
        f.clock.advance(DEDUPLICATION_WINDOW);
        let c = f.q.send_message("f.fifo", msg()).await.unwrap();
        assert_ne!(c.message_id, a.message_id);
        assert_eq!(f.q.depth("f.fifo").await.unwrap().visible, 2);
    }

    async fn fifo_rules(f: Fixture) {
        create(&f.q, "f.fifo", &[("FifoQueue", "true")]).await;
        create(&f.q, "std", &[]).await;
        let e =
            f.q.send_message("f.fifo", SendMessage::new("x"))
                .await
                .unwrap_err();
        assert!(matches!(e, QueueError::MissingParameter { .. }), "{e}");
        let grouped = || SendMessage {
            group_id: Some("g".into()),
            ..SendMessage::new("x")
        };
        let e = f.q.send_message("f.fifo", grouped()).await.unwrap_err();
        assert!(e.to_string().contains("ContentBasedDeduplication"), "{e}");
        let e =
            f.q.send_message(
                "f.fifo",
                SendMessage {
                    delay_seconds: Some(5),
                    deduplication_id: Some("d".into()),
                    ..grouped()
                },
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("DelaySeconds"), "{e}");
        let e =
            f.q.send_message(
                "std",
                SendMessage {
                    deduplication_id: Some("d".into()),
                    ..SendMessage::new("x")
                },
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("MessageDeduplicationId"), "{e}");
    }

    async fn oversized_messages_are_rejected(f: Fixture) {
        create(&f.q, "q", &[]).await;
        f.q.send("q", "x".repeat(1_048_576), MessageAttributes::new(), None)
            .await
            .unwrap();
        let e =
            f.q.send("q", "x".repeat(1_048_577), MessageAttributes::new(), None)
                .await
                .unwrap_err();
        assert!(e.to_string().contains("shorter than 1048576"), "{e}");
    }

    on_both_backends!(
        manual delays_per_queue_and_per_message,
        manual batches_fail_entry_by_entry,
        manual fifo_deduplicates_within_five_minutes,
        manual fifo_rules,
        manual oversized_messages_are_rejected,
    );
}
