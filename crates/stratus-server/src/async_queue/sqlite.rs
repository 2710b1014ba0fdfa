//! The single-node event store: `events.db` (SQLite, WAL, `synchronous=FULL`).
//!
//! Events go to a writer thread that inserts every event waiting at that moment in
//! one transaction (a group commit: one fsync for a burst) and answers each caller
//! once it is on disk. A dispatcher task takes due events (oldest first) and hands
//! them to the shared delivery; an event row is deleted only once its outcome is
//! handled. The `dead_letters` table lives here with either backend.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{params, Connection};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use super::{Backend, DeadLetter, Delivery, Event, Outcome, QueueError};
use crate::logs::now_ms;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT,
    payload BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_due ON events (next_attempt_ms, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    function TEXT NOT NULL,
    condition TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    payload BLOB NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_fn ON dead_letters (function, id);
";

/// Opens (and creates or upgrades) `events.db`.
pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk (fsync'd) before we answer 202.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(SCHEMA)?;
    // Databases from before trace ids were kept gain the column (NULL: such an
    // event is delivered with a new trace id).
    let has_trace: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('events') WHERE name = 'trace_id')",
        [],
        |r| r.get(0),
    )?;
    if !has_trace {
        conn.execute_batch("ALTER TABLE events ADD COLUMN trace_id TEXT")?;
    }
    Ok(conn)
}

struct Enqueue {
    ev: Event,
    ack: oneshot::Sender<Result<(), String>>,
}

/// The writer thread's door, and the dispatcher's wake-up.
pub(super) struct Writer {
    tx: mpsc::Sender<Enqueue>,
    wake: Arc<Notify>,
}

impl Writer {
    /// Starts the writer thread on its own connection to `path`.
    pub(super) fn start(path: &Path) -> Result<Self, QueueError> {
        let conn = open(path)?;
        let (tx, rx) = mpsc::channel::<Enqueue>(16 * 1024);
        let wake = Arc::new(Notify::new());
        let w = wake.clone();
        std::thread::Builder::new()
            .name("stratus-events".into())
            .spawn(move || writer_loop(conn, rx, w))
            .map_err(|e| QueueError::Write(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { tx, wake })
    }

    /// Resolves once the event is committed.
    pub(super) async fn enqueue(&self, ev: Event) -> Result<(), QueueError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Enqueue { ev, ack })
            .await
            .map_err(|_| QueueError::ShutDown)?;
        done.await
            .map_err(|_| QueueError::ShutDown)?
            .map_err(QueueError::Write)
    }
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Enqueue>, wake: Arc<Notify>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO events (request_id, function, qualifier, payload, received_ms, next_attempt_ms, trace_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
                )?;
                for Enqueue { ev, .. } in &batch {
                    stmt.execute(params![
                        ev.request_id,
                        ev.function,
                        ev.qualifier,
                        &ev.payload[..],
                        ev.received_ms,
                        ev.trace_id
                    ])?;
                }
            }
            tx.commit()
        })();
        let reply = result.map_err(|e| e.to_string());
        for e in batch {
            let _ = e.ack.send(reply.clone());
        }
        wake.notify_one();
    }
}

/// Events waiting for delivery or a retry.
pub(super) fn pending(conn: &Connection, function: Option<&str>) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM events WHERE ?1 IS NULL OR function = ?1",
        [function],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// How many dead letters a function has (every function's with `None`).
pub(super) fn dead_letter_count(
    conn: &Connection,
    function: Option<&str>,
) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM dead_letters WHERE ?1 IS NULL OR function = ?1",
        [function],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// Dead letters of a function, oldest first.
pub(super) fn dead_letters(
    conn: &Connection,
    function: &str,
    limit: u32,
) -> rusqlite::Result<Vec<DeadLetter>> {
    let mut stmt = conn.prepare(
        "SELECT request_id, function, condition, attempts, error, payload, timestamp FROM dead_letters
         WHERE function = ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![function, limit], |r| {
        let payload: Vec<u8> = r.get(5)?;
        Ok(DeadLetter {
            request_id: r.get(0)?,
            function: r.get(1)?,
            condition: r.get(2)?,
            attempts: r.get::<_, i64>(3)? as u32,
            error: r.get(4)?,
            payload: String::from_utf8_lossy(&payload).into_owned(),
            timestamp: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Keeps a dead letter (inside the caller's transaction, when it has one).
pub(super) fn insert_dead_letter(
    conn: &Connection,
    ev: &Event,
    condition: &str,
    attempts: u32,
    error: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO dead_letters (request_id, function, condition, attempts, error, payload, timestamp)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![ev.request_id, ev.function, condition, attempts, error, &ev.payload[..], now_ms()],
    )?;
    Ok(())
}

/// Every stored event with its row id, oldest first (for moving them elsewhere).
pub(super) fn all_events(conn: &Connection) -> rusqlite::Result<Vec<(i64, Event)>> {
    select_events(conn, i64::MAX, usize::MAX)
}

/// Removes one event row.
pub(super) fn delete_event(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM events WHERE id = ?1", [id])?;
    Ok(())
}

fn select_events(
    conn: &Connection,
    due_by: i64,
    limit: usize,
) -> rusqlite::Result<Vec<(i64, Event)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, request_id, function, qualifier, payload, received_ms, attempts, trace_id FROM events
         WHERE next_attempt_ms <= ?1 ORDER BY next_attempt_ms, id LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![due_by, limit], |r| {
        let payload: Vec<u8> = r.get(4)?;
        Ok((
            r.get(0)?,
            Event {
                request_id: r.get(1)?,
                function: r.get(2)?,
                qualifier: r.get(3)?,
                payload: Bytes::from(payload),
                received_ms: r.get(5)?,
                attempts: r.get::<_, i64>(6)? as u32,
                trace_id: r.get(7)?,
            },
        ))
    })?;
    rows.collect()
}

/// Events with their row ids, and when the next one falls due (epoch ms).
type Due = (Vec<(i64, Event)>, Option<i64>);

/// Due events not already being delivered, and when the next one falls due.
fn due(conn: &Connection, now: i64, exclude: &HashSet<i64>, limit: usize) -> rusqlite::Result<Due> {
    let mut out = select_events(conn, now, limit + exclude.len())?;
    out.retain(|(id, _)| !exclude.contains(id));
    out.truncate(limit);
    let next: Option<i64> = conn
        .query_row(
            "SELECT MIN(next_attempt_ms) FROM events WHERE next_attempt_ms > ?1",
            [now],
            |r| r.get(0),
        )
        .unwrap_or(None);
    Ok((out, next))
}

/// Applies a delivery's outcome to the event's row.
fn settle(db: &Mutex<Connection>, id: i64, ev: &Event, outcome: Outcome) {
    let mut conn = db.lock();
    let r = match outcome {
        Outcome::Interrupted => Ok(()), // stays on disk for the next start
        Outcome::Delivered => delete_event(&conn, id),
        Outcome::Deferred(after) => reschedule(&conn, id, ev.attempts, after),
        Outcome::Retry { attempts, after } => reschedule(&conn, id, attempts, after),
        Outcome::DeadLettered {
            condition,
            attempts,
            error,
        } => (|| {
            let tx = conn.transaction()?;
            insert_dead_letter(&tx, ev, condition, attempts, error.as_deref())?;
            delete_event(&tx, id)?;
            tx.commit()
        })(),
    };
    if let Err(e) = r {
        tracing::error!(error = %e, request_id = %ev.request_id, "cannot settle an async event");
    }
}

fn reschedule(conn: &Connection, id: i64, attempts: u32, after: Duration) -> rusqlite::Result<()> {
    let at_ms = now_ms() + after.as_millis() as i64;
    conn.execute(
        "UPDATE events SET attempts = ?2, next_attempt_ms = ?3 WHERE id = ?1",
        params![id, attempts, at_ms],
    )?;
    Ok(())
}

/// The dispatcher: takes due events and delivers them, at most `max_in_flight` at once.
pub(super) async fn run(delivery: Delivery) {
    let Backend::Sqlite(writer) = &delivery.queue.inner.backend else {
        return;
    };
    let wake = writer.wake.clone();
    let db = delivery.queue.inner.db.clone();
    let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let slots = Arc::new(Semaphore::new(delivery.settings.max_in_flight));
    loop {
        let now = now_ms();
        let exclude = in_flight.lock().clone();
        let free = slots.available_permits();
        let (batch, next) = match due(&db.lock(), now, &exclude, free.max(1)) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the event queue");
                (Vec::new(), Some(now + 1000))
            }
        };
        for (id, ev) in batch {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            in_flight.lock().insert(id);
            let (d, db, inf, wake) = (
                delivery.clone(),
                db.clone(),
                in_flight.clone(),
                wake.clone(),
            );
            tokio::spawn(async move {
                let outcome = d.deliver(&ev).await;
                settle(&db, id, &ev, outcome);
                inf.lock().remove(&id);
                drop(permit);
                wake.notify_one();
            });
        }
        let wait = next
            .map(|t| Duration::from_millis((t - now_ms()).clamp(1, 1000) as u64))
            .unwrap_or(Duration::from_secs(1));
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        if delivery.scheduler.is_shut_down() {
            return;
        }
    }
}

#[cfg(test)]
mod trace_column_tests {
    use super::*;

    #[test]
    fn an_events_database_from_before_trace_ids_gains_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL,
                    function TEXT NOT NULL, qualifier TEXT, payload BLOB NOT NULL,
                    received_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_ms INTEGER NOT NULL);
                INSERT INTO events (request_id, function, payload, received_ms, next_attempt_ms)
                    VALUES ('r1', 'f', x'7b7d', 1, 1);",
            )
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let (id, trace): (String, Option<String>) = conn
            .query_row("SELECT request_id, trace_id FROM events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((id.as_str(), trace), ("r1", None));
        // Opening again (the column is there now) changes nothing.
        drop(conn);
        let conn = open(&path).unwrap();
        conn.execute(
            "INSERT INTO events (request_id, function, payload, received_ms, next_attempt_ms, trace_id)
             VALUES ('r2', 'f', x'7b7d', 2, 2, 'Root=1-00000000-000000000000000000000000')",
            [],
        )
        .unwrap();
    }
}
