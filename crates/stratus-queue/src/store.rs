//! `queues.db`: SQLite in WAL mode with `synchronous=FULL`, owned by one writer
//! thread. Every operation is a closure run on that thread; all the operations
//! waiting at one moment run in one transaction, each inside its own savepoint (a
//! failing operation rolls back alone), and their callers are answered only after
//! the commit is on disk: one fsync for a burst (group commit). Because one thread
//! runs everything in order, an operation's reads and writes are atomic with
//! respect to every other operation, with no locks in the callers.
//!
//! Message bodies and message attributes are stored sealed (see [`seal_aad`]);
//! opening a database written before that seals its plaintext rows in place and
//! leaves no copy of them in free pages or the WAL ([`seal_plaintext_rows`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection};
use stratus_seal::Sealer;
use tokio::sync::{mpsc, oneshot};

/// Most operations committed together.
const MAX_GROUP: usize = 512;

/// A failure of the database itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the queue directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("cannot open the queue database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the queue writer thread: {0}")]
    Thread(std::io::Error),
    /// A statement failed.
    #[error("queue database error: {0}")]
    Sqlite(rusqlite::Error),
    /// The transaction could not be committed; nothing of it was kept.
    #[error("cannot commit to the queue database: {0}")]
    Commit(String),
    /// Stored data that cannot be read back (or written out).
    #[error("the queue database holds unreadable data: {0}")]
    Corrupt(String),
    /// The writer thread has stopped.
    #[error("the queue store is shut down")]
    ShutDown,
    /// A message could not be sealed.
    #[error("cannot seal a message: {0}")]
    Seal(#[from] stratus_seal::SealError),
    /// The PostgreSQL queue database could not be reached or migrated at start.
    #[error("cannot open the queue database {url}: {reason}")]
    PgOpen {
        /// The URL, its password hidden.
        url: String,
        /// What PostgreSQL (or the migration) said.
        reason: String,
    },
    /// No connection to the PostgreSQL queue database could be had.
    #[error("queue store unavailable: {0}")]
    Unavailable(String),
    /// A PostgreSQL statement failed; nothing of the operation was kept.
    #[error("queue database: cannot {what}: {reason}")]
    Pg {
        /// What was being done.
        what: &'static str,
        /// What PostgreSQL said.
        reason: String,
    },
}

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queues (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}',
    created_ms INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT,
    system_attributes TEXT,
    sent_ms INTEGER NOT NULL,
    -- When the message can next be received: sent + delay, or receive + visibility.
    visible_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_receive_ms INTEGER,
    last_receive_ms INTEGER,
    -- The secret of the latest receipt handle; NULL before the first receive.
    receipt_token TEXT,
    group_id TEXT,
    dedup_id TEXT,
    dead_letter_source TEXT
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue_id, visible_ms, id);
CREATE INDEX IF NOT EXISTS messages_age ON messages (queue_id, sent_ms);
CREATE TABLE IF NOT EXISTS dedup (
    queue_id INTEGER NOT NULL,
    dedup_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (queue_id, dedup_id)
);
";

/// Deletes every message past its queue's retention period (`?1` is now).
const SWEEP: &str = "DELETE FROM messages WHERE sent_ms <= ?1 - 1000 * (
    SELECT json_extract(q.config, '$.retention_seconds') FROM queues q WHERE q.id = messages.queue_id)";

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is fsync'd before any caller of that group is answered.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Deleted and replaced rows are overwritten with zeros, not left in free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// The associated data of a message's sealed `column` (`body` or `attributes`):
/// its message id, unique per message, so a sealed value cannot be moved to
/// another message. A redrive keeps the message id, so it needs no re-sealing.
pub(crate) fn seal_aad(message_id: &str, column: &str) -> String {
    format!("queues/messages/{message_id}/{column}")
}

/// `PRAGMA user_version` of a `queues.db` whose every message is sealed.
const SEALED_FORMAT: i64 = 1;

/// Seals every message body and attribute set stored in plain text (by a
/// Stratus from before encryption at rest), then rebuilds the file (`VACUUM`) and
/// empties the WAL, so the plaintext survives nowhere in `queues.db*`. Returns
/// how many rows were sealed. Done once: the database then carries
/// [`SEALED_FORMAT`], so later starts skip the scan of every message.
fn seal_plaintext_rows(conn: &mut Connection, sealer: &Sealer) -> Result<usize, StoreError> {
    let format: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if format >= SEALED_FORMAT {
        return Ok(0);
    }
    let tx = conn.transaction()?;
    let rows: Vec<(i64, String, rusqlite::types::Value, rusqlite::types::Value)> = tx
        .prepare(
            "SELECT id, message_id, body, attributes FROM messages
             WHERE typeof(body) = 'text' OR typeof(attributes) = 'text'",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    for (id, message_id, body, attributes) in &rows {
        use rusqlite::types::Value;
        let seal = |column: &str, v: &Value| -> Result<Value, StoreError> {
            Ok(match v {
                Value::Text(t) => Value::Blob(sealer.seal_str(&seal_aad(message_id, column), t)?),
                other => other.clone(),
            })
        };
        tx.execute(
            "UPDATE messages SET body = ?2, attributes = ?3 WHERE id = ?1",
            params![id, seal("body", body)?, seal("attributes", attributes)?],
        )?;
    }
    tx.pragma_update(None, "user_version", SEALED_FORMAT)?;
    tx.commit()?;
    if !rows.is_empty() {
        conn.execute_batch("VACUUM")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(rows.len())
}

/// Answers an operation's caller, given the group's commit error (if any).
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// How an operation ends: whether its savepoint is kept, and how to answer its
/// caller once the group's commit outcome is known.
struct Completion {
    keep: bool,
    answer: Answer,
}

/// An operation: given the connection (or why there is none), does its work.
type Job = Box<dyn FnOnce(Result<&Connection, &str>) -> Completion + Send>;

/// Handle to the writer thread. Dropping it stops the thread and waits until the
/// database is closed.
pub(crate) struct Store {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Store {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            // Wait for the close: the SQLite that rusqlite 0.38 bundles (3.51.1) can
            // deadlock when one thread closes a WAL database while another opens the
            // same file (fixed in SQLite 3.51.2), so a reopen must not overlap it.
            if thread.join().is_err() {
                tracing::error!("the queue writer thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating) `queues.db` in `dir`, deletes messages older than their
    /// queue's retention period at `now_ms`, seals rows stored in plain text by an
    /// older Stratus, and starts the writer thread.
    pub(crate) fn open(dir: &Path, now_ms: i64, sealer: &Sealer) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("queues.db");
        let conn = open(&path)
            .and_then(|c| {
                c.execute(SWEEP, [now_ms])?;
                Ok(c)
            })
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        let mut conn = conn;
        let sealed = seal_plaintext_rows(&mut conn, sealer)?;
        if sealed > 0 {
            tracing::info!(
                messages = sealed,
                "sealed queue messages stored in plain text by an older Stratus"
            );
        }
        let (tx, rx) = mpsc::channel::<Job>(16 * 1024);
        let thread = std::thread::Builder::new()
            .name("stratus-queues".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(StoreError::Thread)?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `f` on the writer thread inside the current group transaction and
    /// resolves once its effects are committed. An `Err` from `f` rolls back what
    /// `f` did (and only that).
    pub(crate) async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn| match conn {
            Err(why) => {
                let _ = reply.send(Err(StoreError::Commit(why.to_string()).into()));
                Completion {
                    keep: false,
                    answer: Box::new(|_| {}),
                }
            }
            Ok(conn) => {
                let result = f(conn);
                Completion {
                    keep: result.is_ok(),
                    answer: Box::new(move |commit_error| {
                        let result = match commit_error {
                            Some(e) if result.is_ok() => {
                                Err(StoreError::Commit(e.to_string()).into())
                            }
                            _ => result,
                        };
                        let _ = reply.send(result);
                    }),
                }
            }
        });
        let tx = self.tx.as_ref().ok_or(StoreError::ShutDown)?;
        tx.send(job)
            .await
            .map_err(|_| E::from(StoreError::ShutDown))?;
        answer.await.map_err(|_| E::from(StoreError::ShutDown))?
    }
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        run_group(&mut conn, jobs);
    }
}

fn run_group(conn: &mut Connection, jobs: Vec<Job>) {
    let mut tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            let why = e.to_string();
            tracing::error!(error = %why, "cannot begin a queue transaction");
            for job in jobs {
                (job(Err(&why)).answer)(Some(&why));
            }
            return;
        }
    };
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        let done = match tx.savepoint() {
            Ok(mut sp) => {
                let c: &Connection = &sp;
                let done = job(Ok(c));
                let kept = if done.keep {
                    sp.commit()
                } else {
                    sp.set_drop_behavior(rusqlite::DropBehavior::Rollback);
                    sp.finish()
                };
                if let Err(e) = kept {
                    tracing::error!(error = %e, "cannot close a queue savepoint");
                }
                done
            }
            Err(e) => job(Err(&e.to_string())),
        };
        answers.push(done.answer);
    }
    let commit_error = tx.commit().err().map(|e| {
        tracing::error!(error = %e, "cannot commit queue operations");
        e.to_string()
    });
    for answer in answers {
        answer(commit_error.as_deref());
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Failed;

    impl From<StoreError> for Failed {
        fn from(_: StoreError) -> Self {
            Failed
        }
    }

    #[tokio::test]
    async fn a_failing_operation_rolls_back_alone_and_the_rest_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 0, &Sealer::ephemeral().unwrap()).unwrap();
        let insert = |name: &'static str, fail: bool| {
            store.run(move |c| -> Result<(), Failed> {
                c.execute(
                    "INSERT INTO queues (name, config, created_ms, modified_ms) VALUES (?1, '{}', 0, 0)",
                    [name],
                )
                .map_err(|_| Failed)?;
                if fail {
                    Err(Failed)
                } else {
                    Ok(())
                }
            })
        };
        // Issued together, so they share one transaction.
        let (a, b, c) = tokio::join!(insert("a", false), insert("b", true), insert("c", false));
        assert!(a.is_ok() && b.is_err() && c.is_ok());
        drop(store);
        // Reopen: what was answered Ok is on disk, the failed insert is not.
        let conn = open(&dir.path().join("queues.db")).unwrap();
        let names: Vec<String> = conn
            .prepare("SELECT name FROM queues ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(names, ["a", "c"]);
    }
}
