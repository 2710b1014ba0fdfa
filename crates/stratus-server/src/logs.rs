//! Log storage: every environment's lines in log group `/aws/lambda/{name}`, one
//! stream per environment, in SQLite (`logs.db`, WAL) beside the state database.
//!
//! Writing never blocks an invocation: [`LogStore`] implements the scheduler's
//! [`LogSink`] with a bounded channel; a writer thread drains it in batches (one
//! transaction per batch). When the channel is full, lines are dropped and counted,
//! and the writer records `[stratus] N log lines dropped` in the affected stream.
//! A retention setting deletes old lines periodically.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{params, Connection};
use serde::Serialize;
use stratus_scheduler::{LogLine, LogSink};

type Batch = (Arc<str>, Arc<str>, Vec<LogLine>);
/// (group, stream).
type StreamKey = (Arc<str>, Arc<str>);

/// Lines buffered between environments and the writer thread (in batches).
const CHANNEL_BATCHES: usize = 16 * 1024;

/// The log store.
#[derive(Debug)]
pub struct LogStore {
    tx: Mutex<Option<SyncSender<Batch>>>,
    dropped: Mutex<HashMap<StreamKey, u64>>,
    dropped_total: AtomicU64,
    reader: Mutex<Connection>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// One stored event, as the native API returns it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LogEvent {
    pub id: i64,
    pub timestamp: i64,
    pub stream: String,
    pub message: String,
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY,
            grp TEXT NOT NULL,
            stream TEXT NOT NULL,
            ts INTEGER NOT NULL,
            message TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS events_grp ON events (grp, id);",
    )?;
    Ok(conn)
}

impl LogStore {
    /// Opens `logs.db` in `dir` and starts the writer thread.
    pub fn open(dir: &Path, retention: Duration) -> rusqlite::Result<Arc<Self>> {
        let path = dir.join("logs.db");
        let writer_conn = open(&path)?;
        let reader = open(&path)?;
        let (tx, rx) = mpsc::sync_channel(CHANNEL_BATCHES);
        let store = Arc::new(Self {
            tx: Mutex::new(Some(tx)),
            dropped: Mutex::new(HashMap::new()),
            dropped_total: AtomicU64::new(0),
            reader: Mutex::new(reader),
            writer: Mutex::new(None),
        });
        let weak = Arc::downgrade(&store);
        let handle = std::thread::Builder::new()
            .name("stratus-logs".into())
            .spawn(move || writer_loop(writer_conn, rx, weak, retention))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        *store.writer.lock() = Some(handle);
        Ok(store)
    }

    /// Lines dropped so far because the buffer was full.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Stops accepting lines and waits until everything buffered is written.
    pub fn close(&self) {
        self.tx.lock().take();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }

    /// Events of `group` with id > `after`, optionally from `start_ms` on and
    /// containing `filter`, oldest first, at most `limit`.
    pub fn query(
        &self,
        group: &str,
        after: i64,
        start_ms: Option<i64>,
        filter: Option<&str>,
        limit: u32,
    ) -> rusqlite::Result<Vec<LogEvent>> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, ts, stream, message FROM events
             WHERE grp = ?1 AND id > ?2 AND ts >= ?3 AND (?4 IS NULL OR instr(message, ?4) > 0)
             ORDER BY id LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![group, after, start_ms.unwrap_or(0), filter, limit],
            |r| {
                Ok(LogEvent {
                    id: r.get(0)?,
                    timestamp: r.get(1)?,
                    stream: r.get(2)?,
                    message: r.get(3)?,
                })
            },
        )?;
        rows.collect()
    }
}

impl LogSink for LogStore {
    fn write(&self, group: &Arc<str>, stream: &Arc<str>, lines: Vec<LogLine>) {
        let n = lines.len() as u64;
        let sent = match &*self.tx.lock() {
            Some(tx) => match tx.try_send((group.clone(), stream.clone(), lines)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        if !sent {
            self.dropped_total.fetch_add(n, Ordering::Relaxed);
            *self
                .dropped
                .lock()
                .entry((group.clone(), stream.clone()))
                .or_default() += n;
        }
    }
}

/// How often the writer looks for new lines. Polling (instead of blocking on the
/// channel) means writing a line never wakes a thread: the cost stays off the
/// invocation path and lines are written in large batches.
const WRITE_INTERVAL: Duration = Duration::from_millis(20);

fn writer_loop(
    mut conn: Connection,
    rx: Receiver<Batch>,
    store: std::sync::Weak<LogStore>,
    retention: Duration,
) {
    let mut last_prune: Option<Instant> = None;
    let mut open = true;
    while open {
        let mut batches: Vec<Batch> = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(b) => batches.push(b),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
            if batches.len() >= 8192 {
                break;
            }
        }
        if let Some(store) = store.upgrade() {
            let dropped = std::mem::take(&mut *store.dropped.lock());
            for ((g, s), n) in dropped {
                let line = LogLine {
                    ts_ms: stratus_now_ms(),
                    message: format!("[stratus] {n} log lines dropped: the log buffer was full"),
                };
                batches.push((g, s, vec![line]));
            }
        }
        let full = batches.len() >= 8192;
        if !batches.is_empty() {
            if let Err(e) = insert(&mut conn, &batches) {
                tracing::error!(error = %e, "cannot write logs");
            }
        }
        // Retention: once a minute, and when closing.
        if !open || last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            last_prune = Some(Instant::now());
            let cutoff = stratus_now_ms() - retention.as_millis() as i64;
            if let Err(e) = conn.execute("DELETE FROM events WHERE ts < ?1", [cutoff]) {
                tracing::error!(error = %e, "cannot apply log retention");
            }
        }
        if open && !full {
            std::thread::sleep(WRITE_INTERVAL);
        }
    }
}

fn insert(conn: &mut Connection, batches: &[Batch]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO events (grp, stream, ts, message) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (g, s, lines) in batches {
            for l in lines {
                stmt.execute(params![&**g, &**s, l.ts_ms, l.message])?;
            }
        }
    }
    tx.commit()
}

/// Current time, epoch milliseconds.
pub fn now_ms() -> i64 {
    stratus_now_ms()
}

fn stratus_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_in_order_and_queries_by_group_and_filter() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), Duration::from_secs(3600)).unwrap();
        let g: Arc<str> = Arc::from("/aws/lambda/a");
        let s: Arc<str> = Arc::from("2024/01/01/[$LATEST]x");
        let line = |m: &str| LogLine {
            ts_ms: stratus_now_ms(),
            message: m.into(),
        };
        store.write(&g, &s, vec![line("START"), line("hello")]);
        store.write(&Arc::from("/aws/lambda/b"), &s, vec![line("other")]);
        store.write(&g, &s, vec![line("END")]);
        store.close();
        let events = store.query("/aws/lambda/a", 0, None, None, 100).unwrap();
        let msgs: Vec<_> = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs, ["START", "hello", "END"]);
        let after = store
            .query("/aws/lambda/a", events[0].id, None, Some("ell"), 100)
            .unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].message, "hello");
    }

    #[test]
    fn retention_deletes_old_lines() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), Duration::from_secs(3600)).unwrap();
        let g: Arc<str> = Arc::from("/aws/lambda/r");
        let now = stratus_now_ms();
        store.write(
            &g,
            &g,
            vec![
                LogLine {
                    ts_ms: now - 2 * 3600 * 1000,
                    message: "old".into(),
                },
                LogLine {
                    ts_ms: now,
                    message: "new".into(),
                },
            ],
        );
        store.close();
        let left: Vec<_> = store
            .query("/aws/lambda/r", 0, None, None, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(left, ["new"], "lines older than the retention are deleted");
    }

    #[test]
    fn a_closed_store_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), Duration::from_secs(3600)).unwrap();
        store.close();
        let g: Arc<str> = Arc::from("g");
        store.write(
            &g,
            &g,
            vec![
                LogLine {
                    ts_ms: 0,
                    message: "x".into()
                };
                3
            ],
        );
        assert_eq!(store.dropped_total(), 3);
    }
}
