//! The queue core: [`Queues`] implements SQS's semantics on [`crate::store`] and is
//! the library API the rest of Stratus uses (the SQS event-source poller included).
//! It knows nothing of HTTP.
//!
//! - **Visibility**: each message row has `visible_ms`, the moment it can next be
//!   received: sent time plus delay, then receive time plus visibility timeout.
//!   A message is *delayed* (never received, not yet visible), *in flight*
//!   (received, not yet visible again) or *visible*.
//! - **Receipt handles** name the queue, the message row and a random token that
//!   changes on every receive. `DeleteMessage` with an older handle of a message
//!   that has since been received again succeeds without deleting (SQS: "the
//!   request will succeed, but the message might not be deleted"); with the latest
//!   handle it deletes, even after the visibility timeout ran out.
//! - **Retention**: a message older than the queue's `MessageRetentionPeriod`
//!   (measured from its first `SentTimestamp`, also in a dead-letter queue) is
//!   deleted before any read of its queue, and at start-up.
//! - **Redrive**: a receive that meets a message already received
//!   `maxReceiveCount` times moves it to the dead-letter queue (same message id,
//!   body and attributes, receive count reset) instead of returning it.
//! - **Long polling** waits on a per-queue [`Notify`] that every send, visibility
//!   change and redrive into the queue wakes, and otherwise sleeps exactly until
//!   the next delayed or in-flight message becomes visible.
//! - **FIFO** queues (`.fifo`): messages of one group are received in order and a
//!   group with a message in flight yields nothing else; `MessageDeduplicationId`
//!   (or a SHA-256 of the body with `ContentBasedDeduplication`) suppresses a
//!   duplicate sent within 5 minutes.
//!
//! The operations are grouped by family, one file each, all of them `impl Queues`
//! blocks on the handle defined here:
//! - `identity`: queue URLs and ARNs.
//! - `lifecycle`: CreateQueue, DeleteQueue, ListQueues, GetQueueUrl (existence),
//!   PurgeQueue, queue attributes and message counts.
//! - `tags`: TagQueue, UntagQueue, ListQueueTags.
//! - `send`: SendMessage(Batch), validation, delays, FIFO deduplication.
//! - `receive`: ReceiveMessage, long polling, FIFO group ordering.
//! - `peek`: an operator's read of a queue's messages that receives nothing.
//! - `receipt`: receipt handles and what they allow: DeleteMessage(Batch),
//!   ChangeMessageVisibility(Batch).
//! - `redrive`: dead-letter queues (moving messages, checking targets, sources).
//! - `retention`: `MessageRetentionPeriod` expiry.
//!
//! **Backends.** `Backend` is where the rows live: `queues.db` ([`crate::store`],
//! the single node) or PostgreSQL (`crate::postgres`, a cluster: every node sees
//! the same queues). Each operation validates and decides in the family's file
//! (pure helpers both backends call: `plan_insert`, `fifo_candidates`,
//! `must_redrive`, `received`, `change_until`, `peeked`, …) and only reads and
//! writes rows per backend: the SQLite closure next to it, the PostgreSQL
//! transaction in `crate::postgres`. An enum, not a trait object: two backends,
//! settled in one `match` per operation.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension};
use stratus_seal::Sealer;
use tokio::sync::Notify;

use crate::attributes::QueueConfig;
use crate::clock::{Clock, SystemClock};
use crate::error::QueueError;
use crate::store::{Store, StoreError};

pub(crate) mod identity;
pub(crate) mod lifecycle;
pub(crate) mod peek;
pub(crate) mod receipt;
pub(crate) mod receive;
pub(crate) mod redrive;
pub(crate) mod retention;
pub(crate) mod send;
pub(crate) mod tags;
#[cfg(test)]
pub(crate) mod test_support;

pub(crate) use identity::Identity;
pub use lifecycle::Depth;
pub use peek::{MessageState, Peek, Peeked, MAX_PEEK_MESSAGES};
pub use receive::{Received, MAX_RECEIVE_MESSAGES};
pub use send::{SendMessage, Sent, DEDUPLICATION_WINDOW};
pub use tags::MAX_TAGS;

/// A queue as loaded inside an operation.
#[derive(Debug, Clone)]
pub(crate) struct QueueRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) config: QueueConfig,
    pub(crate) created_ms: i64,
    pub(crate) modified_ms: i64,
}

fn load_queue(c: &Connection, name: &str) -> Result<QueueRow, QueueError> {
    load_queue_opt(c, name)?.ok_or_else(|| QueueError::no_queue(name))
}

fn load_queue_opt(c: &Connection, name: &str) -> Result<Option<QueueRow>, QueueError> {
    let row = c
        .prepare_cached("SELECT id, config, created_ms, modified_ms FROM queues WHERE name = ?1")?
        .query_row([name], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    let Some((id, config, created_ms, modified_ms)) = row else {
        return Ok(None);
    };
    queue_row(id, name, &config, created_ms, modified_ms).map(Some)
}

/// A queue row from its columns (`config` as stored, JSON).
pub(crate) fn queue_row(
    id: i64,
    name: &str,
    config: &str,
    created_ms: i64,
    modified_ms: i64,
) -> Result<QueueRow, QueueError> {
    let config = serde_json::from_str(config).map_err(|e| {
        tracing::error!(queue = name, error = %e, "unreadable queue configuration");
        QueueError::Store(StoreError::Corrupt(format!(
            "the stored configuration of queue {name} is unreadable: {e}"
        )))
    })?;
    Ok(QueueRow {
        id,
        name: name.to_string(),
        config,
        created_ms,
        modified_ms,
    })
}

pub(crate) fn config_json(config: &QueueConfig) -> Result<String, QueueError> {
    serde_json::to_string(config).map_err(|e| {
        QueueError::Store(StoreError::Corrupt(format!(
            "cannot encode a queue configuration: {e}"
        )))
    })
}

/// A message or request id (UUID v4).
pub(crate) fn new_uuid() -> String {
    stratus_rules::uuid_v4()
}

/// Where the queues' rows live.
pub(crate) enum Backend {
    /// `queues.db` (the single node).
    Sqlite(Store),
    /// The cluster's PostgreSQL (every node sees the same queues).
    Postgres(crate::postgres::PgStore),
}

/// Queues with SQS semantics, stored in `queues.db` or in PostgreSQL. Cheap to
/// share (`Arc`).
pub struct Queues {
    backend: Backend,
    /// Seals bodies and attributes on send, opens them on receive.
    sealer: Sealer,
    identity: Arc<Identity>,
    clock: Arc<dyn Clock>,
    /// Long-poll wake-ups, per queue name.
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    /// Told how many messages each send, receive and delete moved (metrics).
    counter: std::sync::OnceLock<Counter>,
}

/// Receives `(metric, queue, n)` for `NumberOfMessagesSent`, `…Received` and
/// `…Deleted`, as the AWS/SQS namespace names them. Must not block.
pub type Counter = Arc<dyn Fn(&'static str, &str, u64) + Send + Sync>;

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Queues {
    /// Opens (creating) `queues.db` in `dir`; message bodies and attributes are
    /// stored sealed by `sealer`. Queue URLs are `{endpoint}/{account}/{name}` and
    /// ARNs `arn:aws:sqs:{region}:{account}:{name}`.
    pub fn open(
        dir: &Path,
        endpoint: &str,
        region: &str,
        account: &str,
        sealer: Sealer,
    ) -> Result<Arc<Self>, QueueError> {
        Self::open_with_clock(
            dir,
            endpoint,
            region,
            account,
            sealer,
            Arc::new(SystemClock),
        )
    }

    /// [`Queues::open`] with another clock (tests move time with
    /// [`crate::ManualClock`]).
    pub fn open_with_clock(
        dir: &Path,
        endpoint: &str,
        region: &str,
        account: &str,
        sealer: Sealer,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, QueueError> {
        let store = Store::open(dir, clock.now_ms(), &sealer)?;
        Ok(Self::with_backend(
            Backend::Sqlite(store),
            endpoint,
            region,
            account,
            sealer,
            clock,
        ))
    }

    /// Opens the queues kept in the PostgreSQL database at `url` (a cluster's:
    /// every node that opens it sees the same queues), migrating its schema first
    /// and deleting messages past their retention. Bodies and attributes are sealed
    /// by `sealer`, which must be the same on every node (the cluster's). A send
    /// through any node wakes the long polls of every node (`LISTEN`). Must be
    /// called inside a Tokio runtime; the connections run on it.
    pub async fn open_postgres(
        url: &str,
        endpoint: &str,
        region: &str,
        account: &str,
        sealer: Sealer,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, QueueError> {
        let store = crate::postgres::PgStore::open(url, clock.now_ms()).await?;
        let queues = Self::with_backend(
            Backend::Postgres(store),
            endpoint,
            region,
            account,
            sealer,
            clock,
        );
        if let Backend::Postgres(pg) = &queues.backend {
            pg.listen(url, Arc::downgrade(&queues));
        }
        Ok(queues)
    }

    /// Whether the queues live in PostgreSQL (shared by a cluster).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    fn with_backend(
        backend: Backend,
        endpoint: &str,
        region: &str,
        account: &str,
        sealer: Sealer,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        Arc::new(Self {
            backend,
            sealer,
            identity: Arc::new(Identity {
                endpoint: endpoint.trim_end_matches('/').to_string(),
                region: region.to_string(),
                account: account.to_string(),
            }),
            clock,
            waiters: Mutex::new(HashMap::new()),
            counter: std::sync::OnceLock::new(),
        })
    }

    /// Reports message counts to `counter` from now on (once; later calls are
    /// ignored).
    pub fn set_counter(&self, counter: Counter) {
        let _ = self.counter.set(counter);
    }

    fn count(&self, metric: &'static str, queue: &str, n: usize) {
        if let (Some(c), true) = (self.counter.get(), n > 0) {
            c(metric, queue, n as u64);
        }
    }

    /// The wake-up of `queue`'s long polls, held while one polls. The entry exists
    /// only while someone polls: the last poller to leave removes it, so requests
    /// naming queues that do not exist (or polls that ended) leave nothing behind.
    fn waiter(&self, queue: &str) -> Waiter<'_> {
        let notify = self
            .waiters
            .lock()
            .entry(queue.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        Waiter {
            queues: self,
            queue: queue.to_string(),
            notify,
        }
    }

    /// Wakes the long polls of a queue (they look again).
    pub(crate) fn wake(&self, queue: &str) {
        if let Some(n) = self.waiters.lock().get(queue) {
            n.notify_waiters();
        }
    }

    /// Wakes every long poll (they look again): after a missed notification.
    pub(crate) fn wake_all(&self) {
        for n in self.waiters.lock().values() {
            n.notify_waiters();
        }
    }
}

/// One long poll's hold on its queue's wake-up (see [`Queues::waiter`]).
struct Waiter<'a> {
    queues: &'a Queues,
    queue: String,
    notify: Arc<Notify>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut waiters = self.queues.waiters.lock();
        // The map's reference and ours: no other poll holds it. Counted under the
        // lock, as new holds are taken under it too.
        let last = waiters
            .get(&self.queue)
            .is_some_and(|n| Arc::ptr_eq(n, &self.notify) && Arc::strong_count(n) == 2);
        if last {
            waiters.remove(&self.queue);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::message::MessageAttributes;

    #[tokio::test]
    async fn sent_messages_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::ephemeral().unwrap();
        let open =
            || Queues::open(dir.path(), "http://h", "us-east-1", "1", sealer.clone()).unwrap();
        let q = open();
        create(&q, "q", &[]).await;
        q.send("q", "kept", MessageAttributes::new(), None)
            .await
            .unwrap();
        q.send("q", "in flight", MessageAttributes::new(), None)
            .await
            .unwrap();
        let m = q.receive("q", 1, Some(600), NOW).await.unwrap().remove(0);
        drop(q);
        let q = open();
        assert_eq!(
            q.depth("q").await.unwrap(),
            Depth {
                visible: 1,
                in_flight: 1,
                delayed: 0
            }
        );
        assert!(q.delete("q", &m.receipt_handle).await.unwrap());
    }

    /// Every file of the queue database (`queues.db`, `-wal`, `-shm`) as bytes.
    fn db_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("queues.db")
            })
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect()
    }

    fn holds(files: &[(String, Vec<u8>)], needle: &str) -> Vec<String> {
        files
            .iter()
            .filter(|(_, b)| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .map(|(n, _)| n.clone())
            .collect()
    }

    #[tokio::test]
    async fn bodies_and_attributes_are_sealed_on_disk_and_tampering_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::ephemeral().unwrap();
        let q = Queues::open(dir.path(), "http://h", "us-east-1", "1", sealer.clone()).unwrap();
        create(&q, "q", &[]).await;
        let secret = format!("body-{}", stratus_rules::uuid_v4());
        let attr = format!("attr-{}", stratus_rules::uuid_v4());
        let mut attrs = MessageAttributes::new();
        attrs.insert("a".into(), crate::MessageAttribute::string(&attr));
        q.send("q", secret.clone(), attrs, None).await.unwrap();
        q.send("q", "other", MessageAttributes::new(), None)
            .await
            .unwrap();
        let files = db_files(dir.path());
        assert!(holds(&files, &secret).is_empty(), "plaintext body on disk");
        assert!(
            holds(&files, &attr).is_empty(),
            "plaintext attribute on disk"
        );
        let got = q.receive("q", 10, Some(0), NOW).await.unwrap();
        let m = got
            .iter()
            .find(|m| m.body == secret)
            .expect("the secret message");
        assert_eq!(
            m.message_attributes["a"].value,
            crate::AttributeValue::String(attr)
        );
        drop(q);

        // One body moved onto the other message, as someone with the file could.
        let conn = Connection::open(dir.path().join("queues.db")).unwrap();
        conn.execute(
            "UPDATE messages SET body = (SELECT body FROM messages WHERE id = 1) WHERE id = 2",
            [],
        )
        .unwrap();
        drop(conn);
        let q = Queues::open(dir.path(), "http://h", "us-east-1", "1", sealer.clone()).unwrap();
        let err = q.receive("q", 10, Some(0), NOW).await.unwrap_err();
        assert!(
            matches!(&err, QueueError::Store(StoreError::Corrupt(m)) if m.contains("does not open")),
            "{err:?}"
        );
        // Another key: the same clear error, never garbage.
        drop(q);
        let q = Queues::open(
            dir.path(),
            "http://h",
            "us-east-1",
            "1",
            Sealer::ephemeral().unwrap(),
        )
        .unwrap();
        assert!(matches!(
            q.receive("q", 10, Some(0), NOW).await,
            Err(QueueError::Store(StoreError::Corrupt(_)))
        ));
    }

    #[tokio::test]
    async fn plaintext_rows_of_an_older_stratus_are_sealed_in_place_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let secret = format!("legacy-{}", stratus_rules::uuid_v4());
        {
            // A queues.db as Stratus wrote it before encryption at rest: text
            // columns, no secure_delete, the rows still in the WAL.
            let conn = Connection::open(dir.path().join("queues.db")).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            conn.execute_batch(crate::store::SCHEMA).unwrap();
            conn.execute(
                "INSERT INTO queues (name, config, created_ms, modified_ms) VALUES ('q', ?1, 0, 0)",
                [serde_json::to_string(&QueueConfig::default()).unwrap()],
            )
            .unwrap();
            for i in 0..50 {
                conn.execute(
                    "INSERT INTO messages (queue_id, message_id, body, attributes, sent_ms, visible_ms)
                     VALUES (1, ?1, ?2, ?3, ?4, 0)",
                    rusqlite::params![
                        format!("m{i}"),
                        format!("{secret} #{i}"),
                        format!(r#"{{"k":{{"t":"String","s":"{secret}"}}}}"#),
                        i64::MAX / 2,
                    ],
                )
                .unwrap();
            }
            // Deleted rows leave their text in free pages unless scrubbed.
            conn.execute("DELETE FROM messages WHERE message_id = 'm0'", [])
                .unwrap();
            std::mem::forget(conn); // as a crash would: the WAL is left behind
        }
        assert!(!holds(&db_files(dir.path()), &secret).is_empty());
        let q = Queues::open(
            dir.path(),
            "http://h",
            "us-east-1",
            "1",
            Sealer::ephemeral().unwrap(),
        )
        .unwrap();
        let found = holds(&db_files(dir.path()), &secret);
        assert!(found.is_empty(), "plaintext left in {found:?}");
        let conn = Connection::open(dir.path().join("queues.db")).unwrap();
        let format: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            format, 1,
            "marked as converted, so the next start skips the scan"
        );
        drop(conn);
        let got = q.receive("q", 10, Some(0), NOW).await.unwrap();
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|m| m.body.starts_with(&secret)));
        assert_eq!(
            got[0].message_attributes["k"].value,
            crate::AttributeValue::String(secret.clone())
        );
    }
}
