//! Receipt handles and what they allow: DeleteMessage(Batch) and
//! ChangeMessageVisibility(Batch). A handle names the queue, the message row and the
//! token of its latest receive; only the latest handle deletes or changes visibility.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rusqlite::{params, Connection, OptionalExtension};

use crate::attributes::MAX_VISIBILITY_TIMEOUT;
use crate::error::QueueError;

use super::{load_queue, Backend, QueueRow, Queues};

/// A receipt handle: base64 of `v1:{queue row}:{message row}:{token}`.
pub(crate) fn make_handle(queue_id: i64, row_id: i64, token: &str) -> String {
    B64.encode(format!("v1:{queue_id}:{row_id}:{token}"))
}

pub(crate) fn parse_handle(handle: &str) -> Result<(i64, i64, String), QueueError> {
    let invalid = || QueueError::ReceiptHandleIsInvalid {
        handle: handle.to_string(),
    };
    let bytes = B64.decode(handle.trim()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split(':');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("v1"), Some(q), Some(m), Some(token), None) if token.len() == 32 => Ok((
            q.parse().map_err(|_| invalid())?,
            m.parse().map_err(|_| invalid())?,
            token.to_string(),
        )),
        _ => Err(invalid()),
    }
}

impl Queues {
    /// Deletes a received message. Returns whether a message was deleted: `false`
    /// when it was already gone or `receipt_handle` is an older handle of a message
    /// received again since (SQS answers success in both cases).
    pub async fn delete(&self, queue: &str, receipt_handle: &str) -> Result<bool, QueueError> {
        let mut results = self
            .delete_batch(queue, vec![receipt_handle.to_string()])
            .await?;
        results.pop().unwrap_or(Ok(false))
    }

    /// Deletes several messages in one transaction, each on its own.
    pub async fn delete_batch(
        &self,
        queue: &str,
        receipt_handles: Vec<String>,
    ) -> Result<Vec<Result<bool, QueueError>>, QueueError> {
        let owned = queue.to_string();
        let (results, fifo) = match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |c| {
                        let q = load_queue(c, &owned)?;
                        let mut out = Vec::with_capacity(receipt_handles.len());
                        for handle in receipt_handles {
                            out.push(delete_one(c, &q, &handle));
                        }
                        Ok::<_, QueueError>((out, q.config.fifo))
                    })
                    .await?
            }
            Backend::Postgres(pg) => pg.delete_batch(queue, receipt_handles).await?,
        };
        if fifo {
            // The group of a deleted message may now yield its next one.
            self.wake(queue);
        }
        let deleted = results.iter().filter(|r| matches!(r, Ok(true))).count();
        self.count("NumberOfMessagesDeleted", queue, deleted);
        Ok(results)
    }

    /// Changes the visibility timeout of a received message, counted from now.
    pub async fn change_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        visibility: u32,
    ) -> Result<(), QueueError> {
        let mut results = self
            .change_visibility_batch(queue, vec![(receipt_handle.to_string(), visibility)])
            .await?;
        results.pop().unwrap_or(Ok(()))
    }

    /// Changes the visibility of several messages in one transaction, each on its own.
    pub async fn change_visibility_batch(
        &self,
        queue: &str,
        entries: Vec<(String, u32)>,
    ) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        let (owned, clock) = (queue.to_string(), self.clock.clone());
        let results = match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .run(move |c| {
                        let q = load_queue(c, &owned)?;
                        let now = clock.now_ms();
                        let mut out = Vec::with_capacity(entries.len());
                        for (handle, visibility) in entries {
                            out.push(change_one(c, &q, &handle, visibility, now));
                        }
                        Ok::<_, QueueError>(out)
                    })
                    .await?
            }
            Backend::Postgres(pg) => {
                pg.change_visibility_batch(queue, entries, clock.now_ms())
                    .await?
            }
        };
        self.wake(queue);
        Ok(results)
    }
}

/// The message row a handle names, checked to be of queue `q`.
pub(crate) fn handle_of(q: &QueueRow, handle: &str) -> Result<(i64, String), QueueError> {
    let (queue_id, row_id, token) = parse_handle(handle)?;
    if queue_id != q.id {
        return Err(QueueError::ReceiptHandleIsInvalid {
            handle: handle.to_string(),
        });
    }
    Ok((row_id, token))
}

fn delete_one(c: &Connection, q: &QueueRow, handle: &str) -> Result<bool, QueueError> {
    let (row_id, token) = handle_of(q, handle)?;
    let n = c
        .prepare_cached(
            "DELETE FROM messages WHERE id = ?1 AND queue_id = ?2 AND receipt_token = ?3",
        )?
        .execute(params![row_id, q.id, token])?;
    Ok(n > 0)
}

/// A `ChangeMessageVisibility` checked against the message's row as stored
/// (`None`: no such message): the new `visible_ms`, or why not.
pub(crate) fn change_until(
    handle: &str,
    token: &str,
    row: Option<(Option<String>, i64, Option<i64>)>,
    visibility: u32,
    now: i64,
) -> Result<i64, QueueError> {
    let Some((current, visible_ms, last_receive_ms)) = row else {
        return Err(QueueError::param(
            "ReceiptHandle",
            handle,
            "Message does not exist or is not available for visibility timeout change.",
        ));
    };
    if current.as_deref() != Some(token) || visible_ms <= now {
        return Err(QueueError::MessageNotInflight {
            handle: handle.to_string(),
        });
    }
    let limit = last_receive_ms.unwrap_or(now) + i64::from(MAX_VISIBILITY_TIMEOUT) * 1000;
    let until = now + i64::from(visibility) * 1000;
    if until > limit {
        return Err(QueueError::param(
            "VisibilityTimeout",
            visibility,
            "Total VisibilityTimeout for the message is beyond the limit [43200 seconds].",
        ));
    }
    Ok(until)
}

/// Refuses a visibility timeout out of range.
pub(crate) fn check_visibility(visibility: u32) -> Result<(), QueueError> {
    if visibility > MAX_VISIBILITY_TIMEOUT {
        return Err(QueueError::param(
            "VisibilityTimeout",
            visibility,
            "Must be between 0 and 43200.",
        ));
    }
    Ok(())
}

fn change_one(
    c: &Connection,
    q: &QueueRow,
    handle: &str,
    visibility: u32,
    now: i64,
) -> Result<(), QueueError> {
    check_visibility(visibility)?;
    let (row_id, token) = handle_of(q, handle)?;
    let row: Option<(Option<String>, i64, Option<i64>)> = c
        .prepare_cached(
            "SELECT receipt_token, visible_ms, last_receive_ms FROM messages WHERE id = ?1 AND queue_id = ?2",
        )?
        .query_row(params![row_id, q.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let until = change_until(handle, &token, row, visibility, now)?;
    c.prepare_cached("UPDATE messages SET visible_ms = ?2 WHERE id = ?1")?
        .execute(params![row_id, until])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::*;
    use crate::error::QueueError;
    use crate::message::MessageAttributes;

    async fn per_receive_visibility_and_change_visibility(f: Fixture) {
        create(&f.q, "q", &[]).await;
        f.q.send("q", "m", MessageAttributes::new(), None)
            .await
            .unwrap();
        f.q.receive("q", 1, Some(5), NOW).await.unwrap().remove(0);
        f.clock.advance(Duration::from_secs(5));
        let m = f.q.receive("q", 1, Some(100), NOW).await.unwrap().remove(0);
        assert_eq!(m.receive_count, 2);
        // Longer, then back to visible at once.
        f.q.change_visibility("q", &m.receipt_handle, 600)
            .await
            .unwrap();
        f.clock.advance(Duration::from_secs(200));
        assert!(f.q.receive("q", 1, None, NOW).await.unwrap().is_empty());
        let e =
            f.q.change_visibility("q", &m.receipt_handle, 43_200)
                .await
                .unwrap_err();
        assert!(e.to_string().contains("beyond the limit"), "{e}");
        f.q.change_visibility("q", &m.receipt_handle, 0)
            .await
            .unwrap();
        assert_eq!(f.q.depth("q").await.unwrap().visible, 1);
        // Not in flight any more.
        let e =
            f.q.change_visibility("q", &m.receipt_handle, 10)
                .await
                .unwrap_err();
        assert!(matches!(e, QueueError::MessageNotInflight { .. }), "{e}");
        let again = f.q.receive("q", 1, None, NOW).await.unwrap().remove(0);
        // An older handle of a message received again is not in flight either.
        let e =
            f.q.change_visibility("q", &m.receipt_handle, 10)
                .await
                .unwrap_err();
        assert!(matches!(e, QueueError::MessageNotInflight { .. }), "{e}");
        f.q.change_visibility("q", &again.receipt_handle, 10)
            .await
            .unwrap();
    }

    async fn receipt_handles_are_checked(f: Fixture) {
        create(&f.q, "a", &[]).await;
        create(&f.q, "b", &[]).await;
        f.q.send("a", "m", MessageAttributes::new(), None)
            .await
            .unwrap();
        let m = f.q.receive("a", 1, None, NOW).await.unwrap().remove(0);
        for bad in ["garbage", "", "djE6MToxOnNob3J0"] {
            assert!(matches!(
                f.q.delete("a", bad).await,
                Err(QueueError::ReceiptHandleIsInvalid { .. })
            ));
        }
        assert!(matches!(
            f.q.delete("b", &m.receipt_handle).await,
            Err(QueueError::ReceiptHandleIsInvalid { .. })
        ));
        assert!(matches!(
            f.q.delete("nope", &m.receipt_handle).await,
            Err(QueueError::QueueDoesNotExist { .. })
        ));
    }

    on_both_backends!(
        manual per_receive_visibility_and_change_visibility,
        manual receipt_handles_are_checked,
    );
}
