//! Read queries of the CloudWatch Logs API over the log store: log groups, log
//! streams with their first and last event, one stream's events paged both ways
//! (GetLogEvents), and a group's events filtered and paged (FilterLogEvents).
//!
//! Every query is bounded: it walks an index from a position (a row id taken from
//! a page token, or found by bisection for a start time) and stops after a page or
//! after a fixed number of rows examined, handing back a token to continue from.
//! Nothing reads a whole group.

use rusqlite::{params, OptionalExtension};

use super::LogStore;

/// Most rows one FilterLogEvents page examines before it returns what it has (maybe
/// nothing) with a token to go on, as CloudWatch does when a search takes long.
pub const FILTER_SCAN_ROWS: usize = 20_000;

/// Most streams a `logStreamNamePrefix` selects in one FilterLogEvents call.
pub const MAX_PREFIX_STREAMS: i64 = 1000;

/// A log group and when its oldest kept line was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// `/aws/lambda/{name}`.
    pub name: String,
    /// Epoch ms of its oldest kept line (0 when none is left).
    pub creation_ms: i64,
}

/// A log stream with the time of its first and last kept event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// `YYYY/MM/DD/[$LATEST]hex`.
    pub name: String,
    /// Epoch ms of its first kept event.
    pub first_ms: i64,
    /// Epoch ms of its last event.
    pub last_ms: i64,
}

/// One stored line with its row id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Row id (increasing with insertion).
    pub id: i64,
    /// Epoch ms.
    pub ts: i64,
    /// Log stream name.
    pub stream: String,
    /// The line.
    pub message: String,
}

/// How DescribeLogStreams orders streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOrder {
    /// By name.
    Name,
    /// By the time of the last event (ties by name).
    LastEvent,
}

/// Where a DescribeLogStreams page starts: after this stream of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCursor {
    /// The previous page's last stream's last event time (LastEvent order).
    pub last_ms: i64,
    /// The previous page's last stream's name.
    pub name: String,
}

/// Which events of one stream GetLogEvents reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The oldest events with id > this, oldest first.
    After(i64),
    /// The newest events with id < this, returned oldest first.
    Before(i64),
}

/// Which events of a group one FilterLogEvents page reads.
#[derive(Debug, Clone, Copy)]
pub struct EventQuery<'a> {
    /// Only events with a greater id (where the previous page stopped).
    pub after: i64,
    /// Only events stamped at or after this (epoch ms).
    pub start_ms: Option<i64>,
    /// Only events stamped before this (epoch ms).
    pub end_ms: Option<i64>,
    /// Only events of these streams (ids); all when `None`.
    pub streams: Option<&'a [i64]>,
    /// At most this many events.
    pub limit: u32,
}

/// The result of one FilterLogEvents page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterPage {
    /// Matching events, oldest first.
    pub rows: Vec<Row>,
    /// The id to continue after, when the search did not reach the end.
    pub next: Option<i64>,
}

/// How far a line's timestamp may precede that of a line written before it: lines
/// are stamped in the environments and written in batches, so ids follow time only
/// roughly; a bisection by time starts this much earlier and filters exactly.
const CLOCK_SLACK_MS: i64 = 60_000;

impl LogStore {
    /// The id of a log group, if it exists.
    pub fn group_id(&self, name: &str) -> rusqlite::Result<Option<i64>> {
        let conn = self.reader.lock();
        let found = conn
            .prepare_cached("SELECT id FROM groups WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional();
        found
    }

    /// The id of the newest stored line (0 when there is none): a position after
    /// which every line is new.
    pub fn last_id(&self) -> rusqlite::Result<i64> {
        let conn = self.reader.lock();
        let id: Option<i64> = conn.query_row("SELECT max(id) FROM lines", [], |r| r.get(0))?;
        Ok(id.unwrap_or(0))
    }

    /// The name of the group with id `grp`.
    pub fn group_name(&self, grp: i64) -> rusqlite::Result<Option<String>> {
        let conn = self.reader.lock();
        let found = conn
            .prepare_cached("SELECT name FROM groups WHERE id = ?1")?
            .query_row([grp], |r| r.get(0))
            .optional();
        found
    }

    /// The streams of group `grp` whose name starts with `prefix`: ids and names,
    /// at most [`MAX_PREFIX_STREAMS`] (the newest, when more match).
    pub fn stream_ids_with_prefix(
        &self,
        grp: i64,
        prefix: &str,
    ) -> rusqlite::Result<Vec<(i64, String)>> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, name FROM streams
             WHERE grp = ?1 AND substr(name, 1, length(?2)) = ?2
             ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![grp, prefix, MAX_PREFIX_STREAMS], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect()
    }

    /// Log groups whose name starts with `prefix` (if any) and comes after `after`
    /// (if any), by name, at most `limit`.
    pub fn groups(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> rusqlite::Result<Vec<GroupInfo>> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT g.name,
                    coalesce((SELECT ts FROM lines WHERE grp = g.id ORDER BY id LIMIT 1), 0)
             FROM groups g
             WHERE (?1 IS NULL OR substr(g.name, 1, length(?1)) = ?1)
               AND (?2 IS NULL OR g.name > ?2)
             ORDER BY g.name LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![prefix, after, limit], |r| {
            Ok(GroupInfo {
                name: r.get(0)?,
                creation_ms: r.get(1)?,
            })
        })?;
        rows.collect()
    }

    /// The streams of group `grp` that still hold events, whose name starts with
    /// `prefix`, in `order` (descending if asked), after `cursor`, at most `limit`.
    pub fn streams(
        &self,
        grp: i64,
        prefix: Option<&str>,
        order: StreamOrder,
        descending: bool,
        cursor: Option<&StreamCursor>,
        limit: u32,
    ) -> rusqlite::Result<Vec<StreamInfo>> {
        // The first and last event of each stream come from the (stream, id) index:
        // two lookups per stream, whatever the stream's length.
        let key = match order {
            StreamOrder::Name => "name",
            StreamOrder::LastEvent => "last, name",
        };
        let (cmp, dir) = if descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let after = match order {
            StreamOrder::Name => format!("name {cmp} ?3"),
            StreamOrder::LastEvent => format!("(last, name) {cmp} (?4, ?3)"),
        };
        let order_by = key
            .split(", ")
            .map(|k| format!("{k} {dir}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT name, first, last FROM (
                SELECT s.name AS name,
                       (SELECT ts FROM lines WHERE stream = s.id ORDER BY id LIMIT 1) AS first,
                       (SELECT ts FROM lines WHERE stream = s.id ORDER BY id DESC LIMIT 1) AS last
                FROM streams s
                WHERE s.grp = ?1 AND (?2 IS NULL OR substr(s.name, 1, length(?2)) = ?2))
             WHERE last IS NOT NULL AND (?3 IS NULL OR {after})
             ORDER BY {order_by} LIMIT ?5"
        );
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                grp,
                prefix,
                cursor.map(|c| c.name.as_str()),
                cursor.map(|c| c.last_ms),
                limit
            ],
            |r| {
                Ok(StreamInfo {
                    name: r.get(0)?,
                    first_ms: r.get(1)?,
                    last_ms: r.get(2)?,
                })
            },
        )?;
        rows.collect()
    }

    /// The id of stream `name` of group `grp`, if it exists.
    pub fn stream_id(&self, grp: i64, name: &str) -> rusqlite::Result<Option<i64>> {
        let conn = self.reader.lock();
        let found = conn
            .prepare_cached("SELECT id FROM streams WHERE grp = ?1 AND name = ?2")?
            .query_row(params![grp, name], |r| r.get(0))
            .optional();
        found
    }

    /// Events of one stream in `[start_ms, end_ms)`, at most `limit`, from where
    /// `dir` says; always returned oldest first.
    pub fn stream_events(
        &self,
        stream: i64,
        start_ms: Option<i64>,
        end_ms: Option<i64>,
        dir: Direction,
        limit: u32,
    ) -> rusqlite::Result<Vec<Row>> {
        let conn = self.reader.lock();
        let sql = match dir {
            Direction::After(_) => {
                "SELECT id, ts, message FROM lines
                 WHERE stream = ?1 AND id > ?2 AND ts >= ?3 AND ts < ?4
                 ORDER BY id LIMIT ?5"
            }
            Direction::Before(_) => {
                "SELECT id, ts, message FROM lines
                 WHERE stream = ?1 AND id < ?2 AND ts >= ?3 AND ts < ?4
                 ORDER BY id DESC LIMIT ?5"
            }
        };
        // Ids grow with time: a time window narrows where the walk starts, so it
        // does not cross a long stream's lines outside the window one by one.
        let from = match dir {
            Direction::After(id) => match start_ms {
                Some(start) => {
                    id.max(first_id_at(&conn, start.saturating_sub(CLOCK_SLACK_MS))? - 1)
                }
                None => id,
            },
            Direction::Before(id) => match end_ms {
                Some(end) => id.min(first_id_at(&conn, end.saturating_add(CLOCK_SLACK_MS))?),
                None => id,
            },
        };
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(
            params![
                stream,
                from,
                start_ms.unwrap_or(i64::MIN),
                end_ms.unwrap_or(i64::MAX),
                limit
            ],
            |r| {
                Ok(Row {
                    id: r.get(0)?,
                    ts: r.get(1)?,
                    stream: String::new(),
                    message: r.get(2)?,
                })
            },
        )?;
        let mut out: Vec<Row> = rows.collect::<rusqlite::Result<_>>()?;
        if matches!(dir, Direction::Before(_)) {
            out.reverse();
        }
        Ok(out)
    }

    /// One page of FilterLogEvents: events of group `grp` that `q` selects and
    /// for which `keep` is true. Examines at most [`FILTER_SCAN_ROWS`] rows;
    /// [`FilterPage::next`] says where to go on.
    pub fn filter_events(
        &self,
        grp: i64,
        q: &EventQuery<'_>,
        keep: &dyn Fn(&str) -> bool,
    ) -> rusqlite::Result<FilterPage> {
        let EventQuery {
            after,
            start_ms,
            end_ms,
            streams,
            limit,
        } = *q;
        let conn = self.reader.lock();
        // Ids grow with time: skip to about the start time instead of walking the
        // group's older lines, and stop a little past the end time.
        let mut from = after;
        if let Some(start) = start_ms {
            from = from.max(first_id_at(&conn, start.saturating_sub(CLOCK_SLACK_MS))? - 1);
        }
        let upto = match end_ms {
            Some(end) => first_id_at(&conn, end.saturating_add(CLOCK_SLACK_MS))?,
            None => i64::MAX,
        };
        let mut stmt = conn.prepare_cached(
            "SELECT l.id, l.ts, l.stream, s.name, l.message FROM lines l JOIN streams s ON s.id = l.stream
             WHERE l.grp = ?1 AND l.id > ?2 AND l.id < ?3
             ORDER BY l.id LIMIT ?4",
        )?;
        let mut rows = Vec::new();
        let mut scanned = 0usize;
        let mut cursor = from;
        const CHUNK: usize = 1000;
        loop {
            let mut q = stmt.query(params![grp, cursor, upto, CHUNK as i64])?;
            let mut got = 0usize;
            while let Some(r) = q.next()? {
                got += 1;
                scanned += 1;
                let id: i64 = r.get(0)?;
                cursor = id;
                let ts: i64 = r.get(1)?;
                let in_time = start_ms.is_none_or(|s| ts >= s) && end_ms.is_none_or(|e| ts < e);
                let stream: i64 = r.get(2)?;
                if in_time && streams.is_none_or(|s| s.contains(&stream)) {
                    let message: String = r.get(4)?;
                    if keep(&message) {
                        rows.push(Row {
                            id,
                            ts,
                            stream: r.get(3)?,
                            message,
                        });
                        if rows.len() >= limit as usize {
                            return Ok(FilterPage {
                                rows,
                                next: Some(id),
                            });
                        }
                    }
                }
            }
            if got < CHUNK {
                // The end of the group (or of the time range): nothing to go on with.
                return Ok(FilterPage { rows, next: None });
            }
            if scanned >= FILTER_SCAN_ROWS {
                return Ok(FilterPage {
                    rows,
                    next: Some(cursor),
                });
            }
        }
    }
}

/// The smallest id whose line (or a later one's) is stamped at or after `ts_ms`,
/// found by bisecting ids through the primary key; past the last id when none is.
fn first_id_at(conn: &rusqlite::Connection, ts_ms: i64) -> rusqlite::Result<i64> {
    let lo: Option<i64> = conn.query_row("SELECT min(id) FROM lines", [], |r| r.get(0))?;
    let hi: Option<i64> = conn.query_row("SELECT max(id) FROM lines", [], |r| r.get(0))?;
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(0);
    };
    let mut first_ts =
        conn.prepare_cached("SELECT ts FROM lines WHERE id >= ?1 ORDER BY id LIMIT 1")?;
    if first_ts.query_row([lo], |r| r.get::<_, i64>(0))? >= ts_ms {
        return Ok(lo);
    }
    let (mut before, mut at) = (lo, hi + 1);
    while at - before > 1 {
        let mid = before + (at - before) / 2;
        if first_ts.query_row([mid], |r| r.get::<_, i64>(0))? < ts_ms {
            before = mid;
        } else {
            at = mid;
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use stratus_scheduler::{LogLine, LogSink};

    use super::super::LogLimits;
    use super::*;

    fn store_with(lines: &[(&str, i64, String)]) -> (tempfile::TempDir, Arc<LogStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(
            dir.path(),
            LogLimits::for_age(Duration::from_secs(3600 * 24 * 365 * 100)),
        )
        .unwrap();
        let g: Arc<str> = Arc::from("/aws/lambda/f");
        // Consecutive lines of one stream go in one batch, as an environment sends them.
        for run in lines.chunk_by(|a, b| a.0 == b.0) {
            let batch = run
                .iter()
                .map(|(_, ts, message)| LogLine {
                    ts_ms: *ts,
                    message: message.clone(),
                })
                .collect();
            store.write(&g, &Arc::from(run[0].0), batch);
        }
        store.close();
        (dir, store)
    }

    #[test]
    fn a_filter_page_stops_after_its_scan_budget_and_goes_on_from_there() {
        let n = FILTER_SCAN_ROWS as i64 + 2500;
        let lines: Vec<_> = (0..n)
            .map(|i| {
                (
                    "s",
                    1_000 + i * 100,
                    if i == n - 1 {
                        "needle".into()
                    } else {
                        format!("hay {i}")
                    },
                )
            })
            .collect();
        let (_dir, store) = store_with(&lines);
        let grp = store.group_id("/aws/lambda/f").unwrap().unwrap();
        let q = |after| EventQuery {
            after,
            start_ms: None,
            end_ms: None,
            streams: None,
            limit: 100,
        };
        let keep = |m: &str| m.contains("needle");
        let first = store.filter_events(grp, &q(0), &keep).unwrap();
        assert!(first.rows.is_empty());
        let next = first.next.expect("more to search");
        let second = store.filter_events(grp, &q(next), &keep).unwrap();
        assert_eq!(second.rows.len(), 1);
        assert_eq!(second.rows[0].message, "needle");
        assert_eq!(second.next, None);
        // A start time skips straight to the lines around it.
        let late = EventQuery {
            start_ms: Some(1_000 + (n - 3) * 100),
            limit: 10,
            ..q(0)
        };
        let page = store.filter_events(grp, &late, &|_| true).unwrap();
        let msgs: Vec<_> = page.rows.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert_eq!(msgs[2], "needle");
        assert_eq!(page.next, None);
        // One stream's events in a time window, both ways, far from either end.
        let s = store.stream_id(grp, "s").unwrap().unwrap();
        let (start, end) = (1_000 + 5_000 * 100, 1_000 + 5_003 * 100);
        for dir in [Direction::After(0), Direction::Before(i64::MAX)] {
            let got: Vec<String> = store
                .stream_events(s, Some(start), Some(end), dir, 10)
                .unwrap()
                .into_iter()
                .map(|r| r.message)
                .collect();
            assert_eq!(got, ["hay 5000", "hay 5001", "hay 5002"], "{dir:?}");
        }
    }

    #[test]
    fn streams_page_by_name_and_by_last_event_and_events_page_both_ways() {
        let (_dir, store) = store_with(&[
            ("b", 10, "b1".into()),
            ("a", 20, "a1".into()),
            ("c", 30, "c1".into()),
            ("b", 40, "b2".into()),
            ("b", 50, "b3".into()),
        ]);
        let grp = store.group_id("/aws/lambda/f").unwrap().unwrap();
        assert_eq!(store.group_id("/aws/lambda/none").unwrap(), None);
        let names = |v: Vec<StreamInfo>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
        let page1 = store
            .streams(grp, None, StreamOrder::Name, false, None, 2)
            .unwrap();
        assert_eq!(names(page1.clone()), ["a", "b"]);
        let cursor = StreamCursor {
            last_ms: page1[1].last_ms,
            name: page1[1].name.clone(),
        };
        let page2 = store
            .streams(grp, None, StreamOrder::Name, false, Some(&cursor), 2)
            .unwrap();
        assert_eq!(names(page2), ["c"]);
        let by_last = store
            .streams(grp, None, StreamOrder::LastEvent, true, None, 10)
            .unwrap();
        assert_eq!(
            by_last
                .iter()
                .map(|s| (s.name.as_str(), s.first_ms, s.last_ms))
                .collect::<Vec<_>>(),
            [("b", 10, 50), ("c", 30, 30), ("a", 20, 20)]
        );
        let b = store.stream_id(grp, "b").unwrap().unwrap();
        let msgs = |v: Vec<Row>| v.into_iter().map(|r| r.message).collect::<Vec<_>>();
        let newest = store
            .stream_events(b, None, None, Direction::Before(i64::MAX), 2)
            .unwrap();
        assert_eq!(msgs(newest.clone()), ["b2", "b3"]);
        let older = store
            .stream_events(b, None, None, Direction::Before(newest[0].id), 2)
            .unwrap();
        assert_eq!(msgs(older), ["b1"]);
        let after = store
            .stream_events(b, None, None, Direction::After(newest[0].id), 10)
            .unwrap();
        assert_eq!(msgs(after), ["b3"]);
        let window = store
            .stream_events(b, Some(40), Some(50), Direction::After(0), 10)
            .unwrap();
        assert_eq!(msgs(window), ["b2"]);
        assert_eq!(
            store.stream_ids_with_prefix(grp, "b").unwrap(),
            [(b, "b".to_string())]
        );
        let groups = store.groups(Some("/aws/"), None, 10).unwrap();
        assert_eq!(
            groups,
            [GroupInfo {
                name: "/aws/lambda/f".into(),
                creation_ms: 10
            }]
        );
        assert!(store
            .groups(None, Some("/aws/lambda/f"), 10)
            .unwrap()
            .is_empty());
    }
}
