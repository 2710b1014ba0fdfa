//! Peeking: reading a queue's messages without receiving them — no receive count,
//! no visibility change, no receipt handle, no redrive. Not an SQS action (SQS has
//! none); it is what an operator's view of a queue (the dashboard's dead-letter
//! panel) needs: what is in a dead-letter queue, while leaving every message where
//! it is for the code that will redrive or receive it.

use rusqlite::params;

use crate::error::QueueError;
use crate::message::{decode_attributes, MessageAttributes};

use super::lifecycle::depth_of;
use super::receive::unseal;
use super::{load_queue, Backend, Depth, Queues};

/// Most messages one peek returns.
pub const MAX_PEEK_MESSAGES: u32 = 100;

/// Where a peeked message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// A receive would return it now.
    Visible,
    /// Received, and hidden until its visibility timeout runs out.
    InFlight,
    /// Sent with a delay that has not passed yet.
    Delayed,
}

impl MessageState {
    /// `visible`, `inFlight` or `delayed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visible => "visible",
            Self::InFlight => "inFlight",
            Self::Delayed => "delayed",
        }
    }
}

/// A message as a peek sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peeked {
    /// The message id given at send (kept through a redrive).
    pub message_id: String,
    /// The body.
    pub body: String,
    /// Every message attribute.
    pub message_attributes: MessageAttributes,
    /// Epoch ms of the first send (kept through a redrive).
    pub sent_timestamp: i64,
    /// Times received in this queue (a redrive resets it).
    pub receive_count: u32,
    /// Epoch ms of the first receive in this queue, if any.
    pub first_receive_timestamp: Option<i64>,
    /// Visible, in flight or delayed.
    pub state: MessageState,
    /// Epoch ms from which a receive can return it.
    pub visible_from: i64,
    /// The ARN of the queue a redrive moved it from.
    pub dead_letter_source_arn: Option<String>,
    /// FIFO queues: its message group.
    pub message_group_id: Option<String>,
}

/// The result of a peek: the oldest messages of a queue and its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peek {
    /// The oldest messages (in the order they were first sent), at most the limit.
    pub messages: Vec<Peeked>,
    /// All of the queue's messages, counted by state.
    pub depth: Depth,
}

pub(crate) type PeekRow = (
    String,
    Vec<u8>,
    Option<Vec<u8>>,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

impl Queues {
    /// The oldest `limit` (1–[`MAX_PEEK_MESSAGES`]) messages of `queue`, whatever
    /// their state, without receiving them: receive counts, visibility and receipt
    /// handles stay as they are (messages past the retention period are deleted
    /// first, as before any read of a queue).
    pub async fn peek(&self, queue: &str, limit: u32) -> Result<Peek, QueueError> {
        if !(1..=MAX_PEEK_MESSAGES).contains(&limit) {
            return Err(QueueError::param(
                "MaxNumberOfMessages",
                limit,
                "Must be between 1 and 100, if provided.",
            ));
        }
        let (owned, clock, sealer) = (queue.to_string(), self.clock.clone(), self.sealer.clone());
        let store = match &self.backend {
            Backend::Sqlite(store) => store,
            Backend::Postgres(pg) => return pg.peek(&sealer, queue, limit, clock.now_ms()).await,
        };
        store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                let now = clock.now_ms();
                let depth = depth_of(c, &q, now)?;
                let rows: Vec<PeekRow> = c
                    .prepare_cached(
                        "SELECT message_id, body, attributes, sent_ms, visible_ms, receive_count,
                                first_receive_ms, dead_letter_source, group_id
                         FROM messages WHERE queue_id = ?1 ORDER BY id LIMIT ?2",
                    )?
                    .query_map(params![q.id, limit], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                            r.get(8)?,
                        ))
                    })?
                    .collect::<Result<_, _>>()?;
                let messages = rows
                    .into_iter()
                    .map(|row| peeked(&sealer, &q.name, row, now))
                    .collect::<Result<_, _>>()?;
                Ok::<_, QueueError>(Peek { messages, depth })
            })
            .await
    }
}

/// A peeked message from its row (opening its body and attributes).
pub(crate) fn peeked(
    sealer: &stratus_seal::Sealer,
    queue: &str,
    row: PeekRow,
    now: i64,
) -> Result<Peeked, QueueError> {
    let (id, body, attrs, sent, visible, count, first, source, group) = row;
    let body = unseal(sealer, queue, &id, "body", &body)?;
    let message_attributes = match attrs {
        Some(sealed) => {
            decode_attributes(Some(&unseal(sealer, queue, &id, "attributes", &sealed)?))
        }
        None => MessageAttributes::new(),
    };
    let state = if visible <= now {
        MessageState::Visible
    } else if count > 0 {
        MessageState::InFlight
    } else {
        MessageState::Delayed
    };
    Ok(Peeked {
        message_id: id,
        body,
        message_attributes,
        sent_timestamp: sent,
        receive_count: count as u32,
        first_receive_timestamp: first,
        state,
        visible_from: visible,
        dead_letter_source_arn: source,
        message_group_id: group,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::*;
    use super::*;
    use crate::message::MessageAttribute;
    use crate::queue::SendMessage;

    async fn a_peek_leaves_counts_visibility_and_redrive_alone(f: Fixture) {
        create(&f.q, "dlq", &[]).await;
        let policy = format!(
            r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":1}}"#,
            f.q.arn("dlq")
        );
        create(
            &f.q,
            "src",
            &[("RedrivePolicy", &policy), ("VisibilityTimeout", "30")],
        )
        .await;
        let attrs = MessageAttributes::from([("k".to_string(), MessageAttribute::string("v"))]);
        let poison =
            f.q.send("src", "poison", attrs.clone(), None)
                .await
                .unwrap();
        f.clock.advance(Duration::from_millis(5));
        f.q.send("src", "fine", MessageAttributes::new(), None)
            .await
            .unwrap();
        f.q.send_message(
            "src",
            SendMessage {
                delay_seconds: Some(60),
                ..SendMessage::new("later")
            },
        )
        .await
        .unwrap();

        // Received once: in flight for 30 s.
        let got = f.q.receive("src", 1, None, NOW).await.unwrap();
        assert_eq!(got[0].body, "poison");
        let p = f.q.peek("src", 10).await.unwrap();
        let states: Vec<_> = p
            .messages
            .iter()
            .map(|m| (m.body.as_str(), m.state, m.receive_count))
            .collect();
        assert_eq!(
            states,
            [
                ("poison", MessageState::InFlight, 1),
                ("fine", MessageState::Visible, 0),
                ("later", MessageState::Delayed, 0),
            ]
        );
        assert_eq!(
            p.depth,
            Depth {
                visible: 1,
                in_flight: 1,
                delayed: 1
            }
        );
        assert_eq!(p.messages[0].message_attributes, attrs);
        assert_eq!(p.messages[0].first_receive_timestamp, Some(T0 + 5));
        assert_eq!(p.messages[0].visible_from, T0 + 5 + 30_000);
        // Peeking again, and a limit: the same, nothing moved.
        let again = f.q.peek("src", 1).await.unwrap();
        assert_eq!(again.messages, p.messages[..1]);
        assert_eq!(again.depth, p.depth);

        // Peeking a message that has used up its receives does not redrive it
        // (only a receive does), nor make it visible.
        f.clock.advance(Duration::from_secs(30));
        let p = f.q.peek("src", 10).await.unwrap();
        assert_eq!(p.messages[0].state, MessageState::Visible);
        assert_eq!(p.messages[0].receive_count, 1);
        assert_eq!(f.q.peek("dlq", 10).await.unwrap().messages, []);
        // A receive moves it; the dead-letter queue's peek shows it with its source.
        let got = f.q.receive("src", 10, None, NOW).await.unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].body, "fine");
        let d = f.q.peek("dlq", 10).await.unwrap();
        assert_eq!(d.messages.len(), 1);
        let m = &d.messages[0];
        assert_eq!(m.message_id, poison.message_id);
        assert_eq!(m.body, "poison");
        assert_eq!(m.receive_count, 0);
        assert_eq!(m.sent_timestamp, T0);
        assert_eq!(m.dead_letter_source_arn.as_deref(), Some(&*f.q.arn("src")));
        // The peeks did not count as receives: the first receive is the first.
        let r = f.q.receive("dlq", 1, None, NOW).await.unwrap();
        assert_eq!(r[0].receive_count, 1);
        assert_eq!(r[0].message_id, poison.message_id);
    }

    async fn a_peek_is_bounded_and_names_a_missing_queue(f: Fixture) {
        create(&f.q, "q", &[]).await;
        for bad in [0, MAX_PEEK_MESSAGES + 1] {
            let e = f.q.peek("q", bad).await.unwrap_err();
            assert!(e.to_string().contains("MaxNumberOfMessages"), "{e}");
        }
        let e = f.q.peek("nope", 10).await.unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    on_both_backends!(
        manual a_peek_leaves_counts_visibility_and_redrive_alone,
        manual a_peek_is_bounded_and_names_a_missing_queue,
    );
}
