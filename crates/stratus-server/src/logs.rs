//! Log storage: every environment's lines in log group `/aws/lambda/{name}`, one
//! stream per environment, in SQLite (`logs.db`, WAL) beside the state database.
//!
//! Writing never blocks an invocation: [`LogStore`] implements the scheduler's
//! [`LogSink`] with a bounded channel; a writer thread drains it in batches (one
//! transaction per batch). When the channel is full, lines are dropped and counted,
//! and the writer records `[stratus] N log lines dropped` in the affected stream.
//! Retention ([`LogLimits`]) deletes lines older than a maximum age, and the oldest
//! lines whenever the database holds more than a maximum size (a load test writes
//! ~10 MB of logs a second; age alone would let that fill the disk).
//!
//! Tables: `groups` and `streams` name each log group and stream once; `lines` holds
//! one row per line with their integer ids (a line's id is the `nextToken` of the
//! read API). A database written before streams were normalized (one `events` table
//! with the names on every row) is migrated in place at open, ids kept.

pub mod pattern;
mod read;

pub use read::{
    Direction, EventQuery, FilterPage, GroupInfo, Row, StreamCursor, StreamInfo, StreamOrder,
    FILTER_SCAN_ROWS, MAX_PREFIX_STREAMS,
};

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
    /// Row id: increasing, so a tail resumes after the last id seen.
    pub id: i64,
    /// Epoch milliseconds.
    pub timestamp: i64,
    /// Log stream name.
    pub stream: String,
    /// The line.
    pub message: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY,
    grp INTEGER NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (grp, name)
);
CREATE TABLE IF NOT EXISTS lines (
    id INTEGER PRIMARY KEY,
    grp INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lines_grp ON lines (grp, id);
CREATE INDEX IF NOT EXISTS lines_stream ON lines (stream, id);
";

/// Moves the lines of a database from before `groups`/`streams` (an `events` table
/// naming its group and stream on every row) into `lines`, keeping their ids.
const MIGRATE_EVENTS: &str = "
INSERT OR IGNORE INTO groups (name) SELECT DISTINCT grp FROM events;
INSERT OR IGNORE INTO streams (grp, name)
    SELECT DISTINCT g.id, e.stream FROM events e JOIN groups g ON g.name = e.grp;
INSERT INTO lines (id, grp, stream, ts, message)
    SELECT e.id, g.id, s.id, e.ts, e.message FROM events e
    JOIN groups g ON g.name = e.grp
    JOIN streams s ON s.grp = g.id AND s.name = e.stream
    ORDER BY e.id;
DROP TABLE events;
";

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let tx = conn.transaction()?;
    tx.execute_batch(SCHEMA)?;
    let old: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events')",
        [],
        |r| r.get(0),
    )?;
    if old {
        tx.execute_batch(MIGRATE_EVENTS)?;
    }
    tx.commit()?;
    Ok(conn)
}

/// How long, and how much, the log store keeps.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Lines older than this are deleted.
    pub max_age: Duration,
    /// When the lines take more than this many bytes of `logs.db`, the oldest are
    /// deleted until they do not.
    pub max_bytes: u64,
}

impl LogLimits {
    /// Keep lines for `max_age`, in at most 2 GiB.
    pub fn for_age(max_age: Duration) -> Self {
        Self {
            max_age,
            max_bytes: 2 << 30,
        }
    }
}

impl LogStore {
    /// Opens `logs.db` in `dir` and starts the writer thread.
    pub fn open(dir: &Path, limits: LogLimits) -> rusqlite::Result<Arc<Self>> {
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
            .spawn(move || writer_loop(writer_conn, rx, weak, limits))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        *store.writer.lock() = Some(handle);
        Ok(store)
    }

    /// Lines dropped so far: because the buffer was full, or by an environment's
    /// log rate limit.
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
            "SELECT l.id, l.ts, s.name, l.message FROM lines l JOIN streams s ON s.id = l.stream
             WHERE l.grp = (SELECT id FROM groups WHERE name = ?1) AND l.id > ?2 AND l.ts >= ?3
               AND (?4 IS NULL OR instr(l.message, ?4) > 0)
             ORDER BY l.id LIMIT ?5",
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

    fn dropped(&self, lines: u64) {
        self.dropped_total.fetch_add(lines, Ordering::Relaxed);
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
    limits: LogLimits,
) {
    let mut last_prune: Option<Instant> = None;
    let mut prune_backlog = false;
    let mut over_size = false;
    let mut last_size_check = Instant::now();
    let mut last_size_warning: Option<Instant> = None;
    let mut stream_ids = StreamIds::new();
    let mut open = true;
    // A function flooding its output fills logs.db as fast as SQLite inserts
    // (~100 MB/s): a round takes at most a sixteenth of the limit, and the size is
    // checked again as soon as that much was written, so a flood overshoots the
    // limit by about one round instead of by a second's worth of inserts (the
    // file never shrinks: freed pages are only reused). What waits beyond a round
    // stays in the bounded channel, and what does not fit there is dropped and
    // counted, as for any other burst.
    let round_bytes_cap = (limits.max_bytes / 16).max(64 << 10);
    let mut written_since_check = 0u64;
    while open {
        let mut batches: Vec<Batch> = Vec::new();
        let (mut round_bytes, mut round_lines) = (0u64, 0usize);
        loop {
            match rx.try_recv() {
                Ok(b) => {
                    round_lines += b.2.len();
                    round_bytes += b.2.iter().map(line_cost).sum::<u64>();
                    batches.push(b);
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
            if batches.len() >= 8192 || round_bytes >= round_bytes_cap {
                break;
            }
        }
        written_since_check += round_bytes;
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
        let full = batches.len() >= 8192 || round_bytes >= round_bytes_cap;
        if !batches.is_empty() {
            if let Err(e) = insert(&mut conn, &mut stream_ids, &batches) {
                tracing::error!(error = %e, "cannot write logs");
            }
        }
        // Retention by age: once a minute, when closing, and on every round while
        // a backlog of expired lines remains. By size: once a second (reading the
        // page counts is cheap), and on every round while over the limit.
        if !open
            || prune_backlog
            || last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            last_prune = Some(Instant::now());
            let cutoff = stratus_now_ms() - limits.max_age.as_millis() as i64;
            match prune(&conn, cutoff, PRUNE_CHUNK) {
                Ok(deleted) => prune_backlog = deleted == PRUNE_CHUNK,
                Err(e) => {
                    prune_backlog = false;
                    tracing::error!(error = %e, "cannot apply log retention");
                }
            }
        }
        if !open
            || over_size
            || written_since_check >= round_bytes_cap
            || last_size_check.elapsed() >= Duration::from_secs(1)
        {
            last_size_check = Instant::now();
            written_since_check = 0;
            // While over, delete at least as many lines as came in, so a steady
            // flood of short lines cannot outpace the pruning.
            let chunk = PRUNE_CHUNK.max(round_lines.saturating_mul(2));
            match prune_to_size(&conn, limits.max_bytes, chunk) {
                Ok(deleted) => {
                    // Said once, then at most every ten minutes while it goes on.
                    let quiet =
                        last_size_warning.is_some_and(|t| t.elapsed() < Duration::from_secs(600));
                    if deleted > 0 && !quiet {
                        last_size_warning = Some(Instant::now());
                        tracing::warn!(
                            max_bytes = limits.max_bytes,
                            "logs.db is over its size limit: deleting the oldest log lines"
                        );
                    }
                    over_size = deleted > 0;
                }
                Err(e) => {
                    over_size = false;
                    tracing::error!(error = %e, "cannot apply the log size limit");
                }
            }
        }
        if open && !full {
            std::thread::sleep(WRITE_INTERVAL);
        }
    }
}

/// Roughly what a line takes in `logs.db`: its text and its row's other columns.
fn line_cost(l: &LogLine) -> u64 {
    l.message.len() as u64 + 24
}

/// Most lines one retention round deletes, so that the writer never stalls for long
/// (a backlog is worked off over the following rounds).
const PRUNE_CHUNK: usize = 50_000;

/// Deletes up to `limit` of the oldest lines older than `cutoff_ms`; returns how many.
///
/// Lines are inserted as they are written, so ids grow with time: the first line to
/// keep is found by bisecting ids through the primary key (a few dozen lookups)
/// instead of scanning every row's `ts`, which has no index (one would cost every
/// insert).
fn prune(conn: &Connection, cutoff_ms: i64, limit: usize) -> rusqlite::Result<usize> {
    // Two queries: SQLite answers a lone min() or max() of the rowid from the
    // b-tree's ends, but scans the table for both in one query.
    let lo: Option<i64> = conn.query_row("SELECT min(id) FROM lines", [], |r| r.get(0))?;
    let hi: Option<i64> = conn.query_row("SELECT max(id) FROM lines", [], |r| r.get(0))?;
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(0);
    };
    let mut first_ts =
        conn.prepare_cached("SELECT ts FROM lines WHERE id >= ?1 ORDER BY id LIMIT 1")?;
    // The smallest id whose line (or the next one after it) is recent enough.
    let (mut old, mut keep) = (lo, hi + 1);
    if first_ts.query_row([lo], |r| r.get::<_, i64>(0))? >= cutoff_ms {
        return Ok(0);
    }
    while keep - old > 1 {
        let mid = old + (keep - old) / 2;
        if first_ts.query_row([mid], |r| r.get::<_, i64>(0))? < cutoff_ms {
            old = mid;
        } else {
            keep = mid;
        }
    }
    delete_oldest(conn, keep, limit)
}

/// Deletes up to `limit` of the oldest lines with an id below `below`.
fn delete_oldest(conn: &Connection, below: i64, limit: usize) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM lines WHERE id IN (SELECT id FROM lines WHERE id < ?1 ORDER BY id LIMIT ?2)",
        [below, limit as i64],
    )
}

/// The writer's map from (group, stream) names to their ids.
type StreamIds = HashMap<StreamKey, (i64, i64)>;

/// The ids of `group` and `stream`, creating their rows on first sight.
fn stream_ids(
    tx: &rusqlite::Transaction<'_>,
    ids: &mut StreamIds,
    group: &Arc<str>,
    stream: &Arc<str>,
) -> rusqlite::Result<(i64, i64)> {
    let key = (group.clone(), stream.clone());
    if let Some(found) = ids.get(&key) {
        return Ok(*found);
    }
    tx.prepare_cached("INSERT OR IGNORE INTO groups (name) VALUES (?1)")?
        .execute([&**group])?;
    let g: i64 = tx
        .prepare_cached("SELECT id FROM groups WHERE name = ?1")?
        .query_row([&**group], |r| r.get(0))?;
    tx.prepare_cached("INSERT OR IGNORE INTO streams (grp, name) VALUES (?1, ?2)")?
        .execute(params![g, &**stream])?;
    let s: i64 = tx
        .prepare_cached("SELECT id FROM streams WHERE grp = ?1 AND name = ?2")?
        .query_row(params![g, &**stream], |r| r.get(0))?;
    // One entry per environment: the map stays small, but a long-lived server
    // sees many environments come and go.
    if ids.len() >= 4096 {
        ids.clear();
    }
    ids.insert(key, (g, s));
    Ok((g, s))
}

/// Bytes of `logs.db` in use (pages not on the free list).
fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pragma = |name: &str| -> rusqlite::Result<u64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
    };
    Ok(pragma("page_count")?.saturating_sub(pragma("freelist_count")?) * pragma("page_size")?)
}

/// Deletes the oldest lines if the database uses more than `max_bytes`: about as
/// many as make up the excess (by [`line_cost`]), at most `limit`; returns how many.
/// Freed pages are reused by later lines, so the file stops growing at about the
/// limit. Deleting by the excess rather than a fixed count matters when lines are
/// long or the limit small: 50,000 lines of 1 KB would empty a 16 MB store.
fn prune_to_size(conn: &Connection, max_bytes: u64, limit: usize) -> rusqlite::Result<usize> {
    let used = used_bytes(conn)?;
    if used <= max_bytes {
        return Ok(0);
    }
    let excess = (used - max_bytes) as i64;
    // The id of the first line at which the running cost of the oldest lines
    // reaches the excess, or the last of the `limit` oldest.
    let last: Option<i64> = conn
        .prepare_cached(
            "SELECT coalesce(
                (SELECT id FROM (SELECT id, sum(length(CAST(message AS BLOB)) + 24)
                                  OVER (ORDER BY id) AS cost
                                  FROM (SELECT id, message FROM lines ORDER BY id LIMIT ?2))
                 WHERE cost >= ?1 ORDER BY id LIMIT 1),
                (SELECT max(id) FROM (SELECT id FROM lines ORDER BY id LIMIT ?2)))",
        )?
        .query_row(params![excess, limit as i64], |r| r.get(0))?;
    match last {
        Some(last) => delete_oldest(conn, last + 1, limit),
        None => Ok(0),
    }
}

fn insert(conn: &mut Connection, ids: &mut StreamIds, batches: &[Batch]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let result = (|| -> rusqlite::Result<()> {
        for (g, s, lines) in batches {
            let (gid, sid) = stream_ids(&tx, ids, g, s)?;
            let mut stmt = tx.prepare_cached(
                "INSERT INTO lines (grp, stream, ts, message) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for l in lines {
                stmt.execute(params![gid, sid, l.ts_ms, l.message])?;
            }
        }
        Ok(())
    })();
    if result.is_err() {
        // Ids learned in a transaction that rolls back may not exist.
        ids.clear();
    }
    result?;
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
        let store =
            LogStore::open(dir.path(), LogLimits::for_age(Duration::from_secs(3600))).unwrap();
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
        let store =
            LogStore::open(dir.path(), LogLimits::for_age(Duration::from_secs(3600))).unwrap();
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
    fn prune_finds_the_cutoff_by_id_and_deletes_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("logs.db")).unwrap();
        let g: Arc<str> = Arc::from("/aws/lambda/p");
        // 1000 lines one second apart, then a gap in the ids.
        let lines = (0..1000)
            .map(|i| LogLine {
                ts_ms: 1_000_000 + i * 1000,
                message: format!("line {i}"),
            })
            .collect();
        insert(
            &mut conn,
            &mut StreamIds::new(),
            &[(g.clone(), g.clone(), lines)],
        )
        .unwrap();
        conn.execute("DELETE FROM lines WHERE id BETWEEN 100 AND 199", [])
            .unwrap();
        let count = |conn: &Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM lines", [], |r| r.get(0))
                .unwrap()
        };
        // Nothing is older than the oldest line.
        assert_eq!(prune(&conn, 1_000_000, 10_000).unwrap(), 0);
        // Lines 0..=449 are older than the cutoff; 100..=199 are already gone.
        let cutoff = 1_000_000 + 450 * 1000;
        assert_eq!(prune(&conn, cutoff, 200).unwrap(), 200, "one chunk");
        assert_eq!(prune(&conn, cutoff, 200).unwrap(), 150, "the rest");
        assert_eq!(prune(&conn, cutoff, 200).unwrap(), 0);
        assert_eq!(count(&conn), 550);
        let oldest: String = conn
            .query_row("SELECT message FROM lines ORDER BY id LIMIT 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(oldest, "line 450");
        // A cutoff past everything empties the table.
        assert_eq!(prune(&conn, i64::MAX, 10_000).unwrap(), 550);
        assert_eq!(prune(&conn, i64::MAX, 10_000).unwrap(), 0);
    }

    #[test]
    fn a_database_from_before_streams_were_normalized_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        {
            let old = Connection::open(dir.path().join("logs.db")).unwrap();
            old.execute_batch(
                "CREATE TABLE events (
                    id INTEGER PRIMARY KEY, grp TEXT NOT NULL, stream TEXT NOT NULL,
                    ts INTEGER NOT NULL, message TEXT NOT NULL);
                CREATE INDEX events_grp ON events (grp, id);
                INSERT INTO events VALUES (7, '/aws/lambda/a', 's1', 100, 'START one');
                INSERT INTO events VALUES (8, '/aws/lambda/b', 's2', 101, 'other');
                INSERT INTO events VALUES (9, '/aws/lambda/a', 's3', 102, 'END one');",
            )
            .unwrap();
        }
        let store = LogStore::open(
            dir.path(),
            LogLimits::for_age(Duration::from_secs(3600 * 24 * 365 * 100)),
        )
        .unwrap();
        let a = store.query("/aws/lambda/a", 0, None, None, 10).unwrap();
        let got: Vec<_> = a
            .iter()
            .map(|e| (e.id, e.timestamp, e.stream.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [(7, 100, "s1", "START one"), (9, 102, "s3", "END one")]
        );
        // New lines continue after the migrated ids.
        let g: Arc<str> = Arc::from("/aws/lambda/a");
        let line = LogLine {
            ts_ms: 103,
            message: "later".into(),
        };
        store.write(&g, &Arc::from("s1"), vec![line]);
        store.close();
        let a = store.query("/aws/lambda/a", 9, None, None, 10).unwrap();
        assert_eq!(a.len(), 1);
        assert!(a[0].id > 9 && a[0].stream == "s1" && a[0].message == "later");
        let conn = open(&dir.path().join("logs.db")).unwrap();
        let old_left: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'events')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!old_left, "the old table is gone");
    }

    #[test]
    fn the_oldest_lines_go_when_the_database_is_over_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("logs.db")).unwrap();
        let g: Arc<str> = Arc::from("/aws/lambda/big");
        let mut ids = StreamIds::new();
        // About 4 MB of lines.
        for batch in 0..40 {
            let lines = (0..1000)
                .map(|i| LogLine {
                    ts_ms: batch * 1000 + i,
                    message: format!("{batch:04}-{i:04} {}", "x".repeat(90)),
                })
                .collect();
            insert(&mut conn, &mut ids, &[(g.clone(), g.clone(), lines)]).unwrap();
        }
        let max = 1 << 20;
        assert!(used_bytes(&conn).unwrap() > 3 * max);
        let mut rounds = 0;
        while prune_to_size(&conn, max, 5_000).unwrap() > 0 {
            rounds += 1;
            assert!(rounds < 20, "pruning to size terminates");
        }
        assert!(rounds >= 2, "took {rounds} rounds");
        assert!(used_bytes(&conn).unwrap() <= max);
        // What is left is the newest lines, in order, up to the very last.
        let (first, last): (String, String) = conn
            .query_row(
                "SELECT (SELECT message FROM lines ORDER BY id LIMIT 1),
                        (SELECT message FROM lines ORDER BY id DESC LIMIT 1)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(first.as_str() > "0020", "{first}");
        assert!(last.starts_with("0039-0999"), "{last}");
        // Under the limit nothing is deleted.
        assert_eq!(prune_to_size(&conn, u64::MAX, 5_000).unwrap(), 0);
    }

    #[test]
    fn a_flood_overshoots_the_size_limit_by_about_one_round() {
        let dir = tempfile::tempdir().unwrap();
        let max = 1 << 20;
        let store = LogStore::open(
            dir.path(),
            LogLimits {
                max_age: Duration::from_secs(3600),
                max_bytes: max,
            },
        )
        .unwrap();
        let g: Arc<str> = Arc::from("/aws/lambda/flood");
        // 32 MB in 100 KB batches, as fast as the sink takes them.
        for b in 0..320 {
            let lines = (0..100)
                .map(|i| LogLine {
                    ts_ms: now_ms(),
                    message: format!("{b:04}-{i:03} {}", "x".repeat(1000)),
                })
                .collect();
            store.write(&g, &g, lines);
        }
        store.close();
        let size = std::fs::metadata(dir.path().join("logs.db")).unwrap().len();
        assert!(size <= 3 * max, "logs.db grew to {size} bytes");
        let conn = open(&dir.path().join("logs.db")).unwrap();
        assert!(used_bytes(&conn).unwrap() <= max);
        let last: String = conn
            .query_row(
                "SELECT message FROM lines ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            last.starts_with("0319-099"),
            "the newest lines are kept: {last}"
        );
    }

    #[test]
    fn a_closed_store_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            LogStore::open(dir.path(), LogLimits::for_age(Duration::from_secs(3600))).unwrap();
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
