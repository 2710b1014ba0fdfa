//! Per-minute rollups: the live minutes in memory (the rollup task applies events
//! and samples to them), written in batches to the `metric_minutes` table of the data
//! dir's SQLite every few seconds and at shutdown, pruned past the retention; and
//! every read (statistics over periods, the list of metrics, the dashboard series),
//! which merges the stored minutes with the live ones.
//!
//! A metric is kept once per dimension set it can be asked for (no dimensions,
//! `FunctionName`, `FunctionName`+`Resource`, …+`ExecutedVersion`, `QueueName`), so
//! every read is one exact key and a gauge's Maximum over all functions is the
//! maximum of their sum, as CloudWatch reports it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::mpsc;
use tokio::sync::{oneshot, Notify};

use crate::hist::Histogram;
use crate::prom::{Labels, Prom};
use crate::{qualifier_of, Event, Sample, Sampler, LAMBDA, SQS};

/// Errors of the metrics store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or prepared.
    #[error("cannot open the metrics table in {path}: {source}")]
    Open {
        /// Database file.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A read failed.
    #[error("cannot read metrics: {0}")]
    Read(#[from] rusqlite::Error),
}

/// The aggregate of one metric, one dimension set, over a minute or more.
#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    /// Sum of the values.
    pub sum: f64,
    /// Number of values (CloudWatch's SampleCount).
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Distribution, for measured metrics (durations, ages).
    pub hist: Option<Histogram>,
}

impl Agg {
    fn one(v: f64, measured: bool) -> Self {
        let mut hist = None;
        if measured {
            let mut h = Histogram::default();
            h.record(v);
            hist = Some(h);
        }
        Self {
            sum: v,
            count: 1,
            min: v,
            max: v,
            hist,
        }
    }

    fn add(&mut self, v: f64) {
        self.sum += v;
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if let Some(h) = &mut self.hist {
            h.record(v);
        }
    }

    /// Adds `other` (a later or parallel minute).
    pub fn merge(&mut self, other: &Agg) {
        self.sum += other.sum;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        match (&mut self.hist, &other.hist) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => self.hist = Some(b.clone()),
            _ => {}
        }
    }

    /// A statistic by CloudWatch's name: `Sum`, `Average`, `Minimum`, `Maximum`,
    /// `SampleCount` or a percentile `p0.0`–`p100` (measured metrics only).
    pub fn stat(&self, name: &str) -> Option<f64> {
        match name {
            "Sum" => Some(self.sum),
            "SampleCount" => Some(self.count as f64),
            "Average" => (self.count > 0).then(|| self.sum / self.count as f64),
            "Minimum" => Some(self.min),
            "Maximum" => Some(self.max),
            p => {
                let p: f64 = p.strip_prefix('p')?.parse().ok()?;
                self.hist.as_ref()?.percentile(p)
            }
        }
    }
}

/// Whether `name` is a statistic [`Agg::stat`] knows (percentiles included).
pub fn is_statistic(name: &str) -> bool {
    matches!(
        name,
        "Sum" | "SampleCount" | "Average" | "Minimum" | "Maximum"
    ) || name
        .strip_prefix('p')
        .and_then(|p| p.parse::<f64>().ok())
        .is_some_and(|p| (0.0..=100.0).contains(&p))
}

/// Canonical dimensions: `Name=Value` pairs sorted by name, joined by `,`.
pub fn dims(pairs: &[(&str, &str)]) -> String {
    let mut v: Vec<_> = pairs.to_vec();
    v.sort_unstable();
    let mut s = String::new();
    for (i, (n, val)) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(n);
        s.push('=');
        s.push_str(val);
    }
    s
}

/// The pairs of canonical dimensions.
pub fn parse_dims(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// A metric as ListMetrics names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetricId {
    /// Namespace.
    pub namespace: String,
    /// Metric name.
    pub metric: String,
    /// Canonical dimensions.
    pub dims: String,
}

/// One minute of the dashboard's series (field names are the dashboard contract).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[allow(non_snake_case)]
#[allow(missing_docs)]
pub struct SeriesPoint {
    pub timestamp: i64,
    pub Invocations: f64,
    pub Errors: f64,
    pub Throttles: f64,
    pub ColdStarts: f64,
    pub InitDurationAvg: Option<f64>,
    pub DurationAvg: Option<f64>,
    pub DurationP50: Option<f64>,
    pub DurationP90: Option<f64>,
    pub DurationP99: Option<f64>,
    pub DurationMax: Option<f64>,
    pub ConcurrentExecutionsMax: f64,
    pub ProvisionedConcurrentExecutionsMax: f64,
    pub ProvisionedConcurrencyUtilizationMax: Option<f64>,
    pub ProvisionedConcurrencyInvocations: f64,
    pub ProvisionedConcurrencySpilloverInvocations: f64,
    pub AsyncEventsReceived: f64,
    pub AsyncEventsDropped: f64,
    pub DeadLetterErrors: f64,
}

type RowKey = (&'static str, &'static str, String, i64);

/// Per-minute aggregates of one `AWS/Lambda` metric: (metric, dimensions, from, to).
pub type MinutesOf<'a, E> = dyn Fn(&str, &str, i64, i64) -> Result<BTreeMap<i64, Agg>, E> + 'a;

/// Measured metrics keep a histogram (for percentiles).
fn measured(metric: &str) -> bool {
    matches!(metric, "Duration" | "InitDuration" | "AsyncEventAge")
}

/// Epoch seconds now.
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn minute_of(secs: i64) -> i64 {
    secs.div_euclid(60) * 60
}

/// The metrics store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MetricsStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: Mutex<Connection>,
    live: Mutex<HashMap<RowKey, Agg>>,
    retention: Duration,
    tx: OnceLock<mpsc::Sender<Event>>,
    /// Wakes the rollup task at once (a reader waiting in [`MetricsStore::sync`]).
    wake: Notify,
    prom: Prom,
}

impl MetricsStore {
    pub(crate) fn open(path: &Path, retention: Duration) -> Result<Self, StoreError> {
        let err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS metric_minutes (
                namespace TEXT NOT NULL, metric TEXT NOT NULL, dims TEXT NOT NULL,
                minute INTEGER NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL,
                min REAL NOT NULL, max REAL NOT NULL, hist TEXT,
                PRIMARY KEY (namespace, metric, dims, minute)) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS metric_minutes_by_minute ON metric_minutes (minute);",
        )
        .map_err(err)?;
        let store = Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                live: Mutex::default(),
                retention,
                tx: OnceLock::new(),
                wake: Notify::new(),
                prom: Prom::new(),
            }),
        };
        let _ = store.prune(now_secs());
        Ok(store)
    }

    pub(crate) fn set_sender(&self, tx: mpsc::Sender<Event>) {
        let _ = self.inner.tx.set(tx);
    }

    /// Waits until every event recorded before this call is applied (so a read that
    /// follows sees it). Returns at once when recording is off.
    pub async fn sync(&self) {
        let Some(tx) = self.inner.tx.get() else {
            return;
        };
        let (done, wait) = oneshot::channel();
        if tx.send(Event::Sync(done)).is_ok() {
            self.inner.wake.notify_one();
            let _ = wait.await;
        }
    }

    /// Applies what is queued and writes the live minutes to SQLite (at shutdown).
    pub async fn flush(&self) {
        self.sync().await;
        let store = self.clone();
        let _ = tokio::task::spawn_blocking(move || store.write_live(now_secs())).await;
    }

    /// The rollup task: drains the events every 50 ms (or at once for a reader in
    /// [`MetricsStore::sync`]), samples gauges every second, writes the live minutes
    /// every 5 seconds and prunes hourly. It polls rather than waits on the channel
    /// so that no invocation ever pays for waking it (a futex call per event).
    pub(crate) async fn run(self, rx: mpsc::Receiver<Event>, sampler: Sampler) {
        const DRAIN: Duration = Duration::from_millis(50);
        let mut drain = tokio::time::interval(DRAIN);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first sample is taken at once, so gauges exist from the start (a
        // reader in the first second would otherwise find none).
        let mut last_sample = tokio::time::Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(tokio::time::Instant::now);
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = drain.tick() => {}
                _ = self.inner.wake.notified() => {}
            }
            let mut closed = false;
            let events = std::iter::from_fn(|| match rx.try_recv() {
                Ok(e) => Some(e),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => {
                    closed = true;
                    None
                }
            });
            self.apply(events);
            if closed {
                return;
            }
            if last_sample.elapsed() < Duration::from_secs(1) {
                continue;
            }
            last_sample = tokio::time::Instant::now();
            n += 1;
            let samples = sampler(n).await;
            self.apply_samples(&samples);
            if n.is_multiple_of(5) {
                let store = self.clone();
                let now = now_secs();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = store.write_live(now) {
                        tracing::warn!(error = %e, "cannot write metrics");
                    }
                    if n.is_multiple_of(3600) {
                        let _ = store.prune(now);
                    }
                })
                .await;
            }
        }
    }

    fn apply(&self, events: impl Iterator<Item = Event>) {
        let minute = minute_of(now_secs());
        let mut replies = Vec::new();
        let mut queue_events = Vec::new();
        {
            let mut live = self.inner.live.lock();
            let live = &mut *live;
            let mut add = |metric: &'static str, ds: &[String], v: f64| {
                add_to(live, LAMBDA, metric, ds, v, minute)
            };
            let prom = &self.inner.prom;
            for ev in events {
                match ev {
                    Event::Invocation(i) => {
                        let q = qualifier_of(&i.invoked_arn);
                        let ds = lambda_dims(&i.function, q, Some(&i.version));
                        let labels = labels(&i.function, q);
                        let ms = i.duration.as_secs_f64() * 1000.0;
                        let err = f64::from(u8::from(i.error));
                        add("Invocations", &ds, 1.0);
                        add("Errors", &ds, err);
                        add("Duration", &ds, ms);
                        prom.inc("Invocations", &labels, 1.0);
                        prom.inc("Errors", &labels, err);
                        prom.observe_ms("Duration", &labels, ms);
                        if let Some(init) = i.init {
                            let ms = init.as_secs_f64() * 1000.0;
                            add("ColdStarts", &ds, 1.0);
                            add("InitDuration", &ds, ms);
                            prom.inc("ColdStarts", &labels, 1.0);
                            prom.observe_ms("InitDuration", &labels, ms);
                        }
                        if i.provisioned {
                            add("ProvisionedConcurrencyInvocations", &ds, 1.0);
                            prom.inc("ProvisionedConcurrencyInvocations", &labels, 1.0);
                        }
                        if i.spillover {
                            add("ProvisionedConcurrencySpilloverInvocations", &ds, 1.0);
                            prom.inc("ProvisionedConcurrencySpilloverInvocations", &labels, 1.0);
                        }
                    }
                    Event::Throttle {
                        function,
                        invoked_arn,
                    } => {
                        let q = qualifier_of(&invoked_arn);
                        add("Throttles", &lambda_dims(&function, q, None), 1.0);
                        prom.inc("Throttles", &labels(&function, q), 1.0);
                    }
                    Event::Lambda {
                        metric,
                        function,
                        qualifier,
                        value,
                    } => {
                        let q = qualifier.as_deref();
                        add(metric, &lambda_dims(&function, q, None), value);
                        let l = labels(&function, q);
                        if measured(metric) {
                            prom.observe_ms(metric, &l, value);
                        } else {
                            prom.inc(metric, &l, value);
                        }
                    }
                    Event::Queue {
                        metric,
                        queue,
                        value,
                    } => {
                        let d = [dims(&[("QueueName", &queue)])];
                        queue_events.push((metric, d, value));
                        prom.inc(
                            metric,
                            &vec![("queue_name".into(), queue.to_string())],
                            value,
                        );
                    }
                    Event::Sync(done) => replies.push(done),
                }
            }
            for (metric, d, v) in queue_events {
                add_to(live, SQS, metric, &d, v, minute);
            }
        }
        for r in replies {
            let _ = r.send(());
        }
    }

    fn apply_samples(&self, samples: &[Sample]) {
        let minute = minute_of(now_secs());
        let mut live = self.inner.live.lock();
        for s in samples {
            live.entry((s.namespace, s.metric, s.dims.clone(), minute))
                .and_modify(|a| a.add(s.value))
                .or_insert_with(|| Agg::one(s.value, false));
            let labels: Labels = parse_dims(&s.dims)
                .into_iter()
                .map(|(n, v)| (crate::prom::snake(&n), v))
                .collect();
            self.inner.prom.set(s.metric, &labels, s.value);
        }
    }

    /// Writes every live minute (replacing the stored row) and forgets the minutes
    /// that are over.
    fn write_live(&self, now: i64) -> Result<(), rusqlite::Error> {
        let current = minute_of(now);
        let rows: Vec<(RowKey, Agg)> = self
            .inner
            .live
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = self.inner.conn.lock();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO metric_minutes
                 (namespace, metric, dims, minute, sum, count, min, max, hist)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for ((ns, m, d, minute), a) in &rows {
                st.execute(params![
                    ns,
                    m,
                    d,
                    minute,
                    a.sum,
                    a.count as i64,
                    a.min,
                    a.max,
                    a.hist.as_ref().map(Histogram::encode)
                ])?;
            }
        }
        tx.commit()?;
        drop(conn);
        // Events are stamped when applied, so a past minute no longer changes.
        self.inner
            .live
            .lock()
            .retain(|(_, _, _, m), _| *m >= current);
        Ok(())
    }

    fn prune(&self, now: i64) -> Result<usize, rusqlite::Error> {
        let cutoff = now - self.inner.retention.as_secs() as i64;
        self.inner
            .conn
            .lock()
            .execute("DELETE FROM metric_minutes WHERE minute < ?1", [cutoff])
    }

    /// Per-minute aggregates of one metric and dimension set, minutes in
    /// `[from, to)` (epoch seconds), stored and live merged.
    pub fn minutes(
        &self,
        namespace: &str,
        metric: &str,
        dims: &str,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<i64, Agg>, StoreError> {
        let mut out = BTreeMap::new();
        {
            let conn = self.inner.conn.lock();
            let mut st = conn.prepare_cached(
                "SELECT minute, sum, count, min, max, hist FROM metric_minutes
                 WHERE namespace = ?1 AND metric = ?2 AND dims = ?3 AND minute >= ?4 AND minute < ?5",
            )?;
            let rows = st.query_map(
                params![namespace, metric, dims, minute_of(from), to],
                row_agg,
            )?;
            for r in rows {
                let (m, a) = r?;
                out.insert(m, a);
            }
        }
        let live = self.inner.live.lock();
        for ((ns, m, d, minute), a) in live.iter() {
            if *ns == namespace
                && *m == metric
                && d == dims
                && *minute >= minute_of(from)
                && *minute < to
            {
                out.insert(*minute, a.clone());
            }
        }
        Ok(out)
    }

    /// CloudWatch statistics: the minutes of `[start, end)` merged per `period`
    /// seconds (a multiple of 60), each bucket stamped with its start; buckets with
    /// no data are left out, as CloudWatch does.
    pub fn statistics(
        &self,
        namespace: &str,
        metric: &str,
        dims: &str,
        start: i64,
        end: i64,
        period: i64,
    ) -> Result<Vec<(i64, Agg)>, StoreError> {
        let start = minute_of(start);
        let period = period.max(60);
        let mut buckets: BTreeMap<i64, Agg> = BTreeMap::new();
        for (m, a) in self.minutes(namespace, metric, dims, start, end)? {
            let b = start + (m - start).div_euclid(period) * period;
            buckets.entry(b).and_modify(|x| x.merge(&a)).or_insert(a);
        }
        Ok(buckets.into_iter().collect())
    }

    /// Every metric with data in the store, filtered: `namespace`, `metric`, and
    /// dimension filters (`name`, optionally `= value`) that must all be present.
    pub fn list_metrics(
        &self,
        namespace: Option<&str>,
        metric: Option<&str>,
        filters: &[(String, Option<String>)],
    ) -> Result<Vec<MetricId>, StoreError> {
        let mut set = std::collections::BTreeSet::new();
        {
            let conn = self.inner.conn.lock();
            let mut st =
                conn.prepare_cached("SELECT DISTINCT namespace, metric, dims FROM metric_minutes")?;
            let rows = st.query_map([], |r| {
                Ok(MetricId {
                    namespace: r.get(0)?,
                    metric: r.get(1)?,
                    dims: r.get(2)?,
                })
            })?;
            for r in rows {
                set.insert(r?);
            }
        }
        for (ns, m, d, _) in self.inner.live.lock().keys() {
            set.insert(MetricId {
                namespace: ns.to_string(),
                metric: m.to_string(),
                dims: d.clone(),
            });
        }
        Ok(set
            .into_iter()
            .filter(|id| namespace.is_none_or(|n| n == id.namespace))
            .filter(|id| metric.is_none_or(|m| m == id.metric))
            .filter(|id| {
                let have = parse_dims(&id.dims);
                filters.iter().all(|(n, v)| {
                    have.iter()
                        .any(|(hn, hv)| hn == n && v.as_ref().is_none_or(|v| v == hv))
                })
            })
            .collect())
    }

    /// The dashboard's series: one point per `period` seconds (a multiple of 60)
    /// from the minute of `from` to the one of `to` (the current, partial one last),
    /// every period present.
    pub fn series(
        &self,
        function: Option<&str>,
        qualifier: Option<&str>,
        from: i64,
        to: i64,
        period: i64,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        Self::series_of(function, qualifier, from, to, period, &|m, d, a, b| {
            self.minutes(LAMBDA, m, d, a, b)
        })
    }

    /// [`MetricsStore::series`] over the per-minute aggregates `minutes` answers
    /// (metric, dimensions, from, to) — e.g. several stores' minutes merged.
    pub fn series_of<E>(
        function: Option<&str>,
        qualifier: Option<&str>,
        from: i64,
        to: i64,
        period: i64,
        minutes: &MinutesOf<'_, E>,
    ) -> Result<Vec<SeriesPoint>, E> {
        let d = match (function, qualifier) {
            (None, _) => String::new(),
            (Some(f), None) => dims(&[("FunctionName", f)]),
            (Some(f), Some(q)) => dims(&[("FunctionName", f), ("Resource", &format!("{f}:{q}"))]),
        };
        let period = (period.max(60) / 60) * 60;
        let (from, to) = (minute_of(from), minute_of(to) + 60);
        let get = |m: &str| -> Result<BTreeMap<i64, Agg>, E> {
            let mut out: BTreeMap<i64, Agg> = BTreeMap::new();
            for (minute, a) in minutes(m, &d, from, to)? {
                let b = from + (minute - from).div_euclid(period) * period;
                out.entry(b).and_modify(|x| x.merge(&a)).or_insert(a);
            }
            Ok(out)
        };
        let inv = get("Invocations")?;
        let err = get("Errors")?;
        let thr = get("Throttles")?;
        let cold = get("ColdStarts")?;
        let init = get("InitDuration")?;
        let dur = get("Duration")?;
        let conc = get("ConcurrentExecutions")?;
        let pconc = get("ProvisionedConcurrentExecutions")?;
        let util = get("ProvisionedConcurrencyUtilization")?;
        let pinv = get("ProvisionedConcurrencyInvocations")?;
        let spill = get("ProvisionedConcurrencySpilloverInvocations")?;
        let arecv = get("AsyncEventsReceived")?;
        let adrop = get("AsyncEventsDropped")?;
        let dle = get("DeadLetterErrors")?;
        let sum = |map: &BTreeMap<i64, Agg>, m: i64| map.get(&m).map_or(0.0, |a| a.sum);
        let stat = |map: &BTreeMap<i64, Agg>, m: i64, s: &str| map.get(&m).and_then(|a| a.stat(s));
        let mut out = Vec::new();
        let mut m = from;
        while m < to {
            out.push(SeriesPoint {
                timestamp: m,
                Invocations: sum(&inv, m),
                Errors: sum(&err, m),
                Throttles: sum(&thr, m),
                ColdStarts: sum(&cold, m),
                InitDurationAvg: stat(&init, m, "Average"),
                DurationAvg: stat(&dur, m, "Average"),
                DurationP50: stat(&dur, m, "p50"),
                DurationP90: stat(&dur, m, "p90"),
                DurationP99: stat(&dur, m, "p99"),
                DurationMax: stat(&dur, m, "Maximum"),
                ConcurrentExecutionsMax: stat(&conc, m, "Maximum").unwrap_or(0.0),
                ProvisionedConcurrentExecutionsMax: stat(&pconc, m, "Maximum").unwrap_or(0.0),
                ProvisionedConcurrencyUtilizationMax: stat(&util, m, "Maximum"),
                ProvisionedConcurrencyInvocations: sum(&pinv, m),
                ProvisionedConcurrencySpilloverInvocations: sum(&spill, m),
                AsyncEventsReceived: sum(&arecv, m),
                AsyncEventsDropped: sum(&adrop, m),
                DeadLetterErrors: sum(&dle, m),
            });
            m += period;
        }
        Ok(out)
    }

    /// The per-minute Maximum of `ProvisionedConcurrencyUtilization` (0..1) of
    /// `function`'s `qualifier` (alias or version) for the minutes in
    /// `[from, to)` (epoch seconds), oldest first; minutes without provisioned
    /// concurrency are absent. For autoscaling.
    pub fn provisioned_utilization_max(
        &self,
        function: &str,
        qualifier: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let d = dims(&[
            ("FunctionName", function),
            ("Resource", &format!("{function}:{qualifier}")),
        ]);
        Ok(self
            .minutes(LAMBDA, "ProvisionedConcurrencyUtilization", &d, from, to)?
            .into_iter()
            .map(|(m, a)| (m, a.max))
            .collect())
    }

    /// The Prometheus text exposition (OpenMetrics), process metrics included.
    pub fn prometheus(&self) -> String {
        self.inner.prom.encode()
    }

    /// The newest stored minute (tests and diagnostics).
    pub fn newest_stored_minute(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .inner
            .conn
            .lock()
            .query_row("SELECT MAX(minute) FROM metric_minutes", [], |r| r.get(0))
            .optional()?
            .flatten())
    }
}

fn add_to(
    live: &mut HashMap<RowKey, Agg>,
    ns: &'static str,
    metric: &'static str,
    ds: &[String],
    v: f64,
    minute: i64,
) {
    for d in ds {
        live.entry((ns, metric, d.clone(), minute))
            .and_modify(|a| a.add(v))
            .or_insert_with(|| Agg::one(v, measured(metric)));
    }
}

fn row_agg(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Agg)> {
    let hist: Option<String> = r.get(5)?;
    Ok((
        r.get(0)?,
        Agg {
            sum: r.get(1)?,
            count: r.get::<_, i64>(2)? as u64,
            min: r.get(3)?,
            max: r.get(4)?,
            hist: hist.as_deref().map(Histogram::decode),
        },
    ))
}

/// The dimension sets a function metric is kept under: none (all functions),
/// `FunctionName`, and with a qualifier `FunctionName`+`Resource` (`name:qualifier`),
/// plus `ExecutedVersion` when an alias ran a version.
fn lambda_dims(function: &str, qualifier: Option<&str>, version: Option<&str>) -> Vec<String> {
    let mut out = vec![String::new(), dims(&[("FunctionName", function)])];
    if let Some(q) = qualifier {
        let resource = format!("{function}:{q}");
        out.push(dims(&[("FunctionName", function), ("Resource", &resource)]));
        if let Some(v) = version.filter(|v| *v != q) {
            out.push(dims(&[
                ("FunctionName", function),
                ("Resource", &resource),
                ("ExecutedVersion", v),
            ]));
        }
    }
    out
}

/// Prometheus labels of a function metric: `resource` is CloudWatch's `Resource`
/// (`name:qualifier`), empty for unqualified calls.
fn labels(function: &str, qualifier: Option<&str>) -> Labels {
    vec![
        ("function_name".into(), function.into()),
        (
            "resource".into(),
            qualifier.map_or_else(String::new, |q| format!("{function}:{q}")),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Invocation;

    fn inv(f: &str, arn_q: &str, ms: u64, error: bool) -> Event {
        Event::Invocation(Invocation {
            function: f.into(),
            version: "1".into(),
            invoked_arn: format!("arn:aws:lambda:us-east-1:0:function:{f}{arn_q}").into(),
            duration: Duration::from_millis(ms),
            error,
            init: None,
            provisioned: false,
            spillover: false,
        })
    }

    #[test]
    fn rollups_survive_reopening_and_merge_periods() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let s = MetricsStore::open(&db, Duration::from_secs(3600)).unwrap();
        s.apply(
            vec![
                inv("f", "", 10, false),
                inv("f", ":live", 30, true),
                inv("g", "", 1000, false),
            ]
            .into_iter(),
        );
        let now = now_secs();
        s.write_live(now).unwrap();
        let s = MetricsStore::open(&db, Duration::from_secs(3600)).unwrap();
        let f = dims(&[("FunctionName", "f")]);
        let st = s
            .statistics(LAMBDA, "Invocations", &f, now - 600, now + 60, 600)
            .unwrap();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].1.sum, 2.0);
        let all = s
            .statistics(LAMBDA, "Duration", "", now - 60, now + 60, 60)
            .unwrap();
        assert_eq!(all[0].1.stat("Maximum"), Some(1000.0));
        let live = dims(&[("FunctionName", "f"), ("Resource", "f:live")]);
        let e = s
            .statistics(LAMBDA, "Errors", &live, now - 60, now + 60, 60)
            .unwrap();
        assert_eq!(e[0].1.sum, 1.0);
        let ids = s
            .list_metrics(
                Some(LAMBDA),
                Some("Invocations"),
                &[("Resource".into(), None)],
            )
            .unwrap();
        assert_eq!(ids.len(), 2, "{ids:?}"); // Resource, Resource+ExecutedVersion
        let series = s.series(Some("f"), None, now - 120, now, 60).unwrap();
        assert_eq!(series.len(), 3);
        assert_eq!(series[2].Invocations, 2.0);
        assert_eq!(series[0].Invocations, 0.0);
        assert_eq!(series[0].DurationAvg, None);
        let hourly = s.series(Some("f"), None, now - 7200, now, 3600).unwrap();
        assert_eq!(hourly.iter().map(|p| p.Invocations).sum::<f64>(), 2.0);
        assert!(hourly.len() == 2 || hourly.len() == 3, "{hourly:?}");
    }

    #[test]
    fn provisioned_utilization_is_the_maximum_of_each_minutes_samples() {
        let dir = tempfile::tempdir().unwrap();
        let s =
            MetricsStore::open(&dir.path().join("state.db"), Duration::from_secs(3600)).unwrap();
        let d = dims(&[("FunctionName", "f"), ("Resource", "f:live")]);
        for v in [0.5, 1.0, 0.25] {
            s.apply_samples(&[Sample {
                namespace: LAMBDA,
                metric: "ProvisionedConcurrencyUtilization",
                dims: d.clone(),
                value: v,
            }]);
        }
        let now = now_secs();
        let got = s
            .provisioned_utilization_max("f", "live", now - 60, now + 60)
            .unwrap();
        assert_eq!(got.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![1.0]);
        assert!(s
            .provisioned_utilization_max("f", "other", now - 60, now + 60)
            .unwrap()
            .is_empty());
        let avg = s
            .statistics(
                LAMBDA,
                "ProvisionedConcurrencyUtilization",
                &d,
                now - 60,
                now + 60,
                60,
            )
            .unwrap();
        assert_eq!(avg[0].1.stat("Average"), Some(1.75 / 3.0));
        assert_eq!(avg[0].1.stat("Minimum"), Some(0.25));
    }

    #[test]
    fn retention_prunes_old_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let s = MetricsStore::open(&db, Duration::from_secs(120)).unwrap();
        s.apply(vec![inv("f", "", 1, false)].into_iter());
        s.write_live(now_secs()).unwrap();
        assert!(s.newest_stored_minute().unwrap().is_some());
        // Invocations, Errors, Duration for all functions and for `f`.
        assert_eq!(s.prune(now_secs() + 600).unwrap(), 6);
    }
}
