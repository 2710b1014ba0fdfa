//! `stratus-metrics` owns Stratus's metrics, named as CloudWatch names them
//! (namespaces `AWS/Lambda` and `AWS/SQS`):
//!
//! - **recording** ([`Recorder`]): the invocation path hands an [`Event`] to an
//!   unbounded channel (`std::sync::mpsc`: one lock-free push, no lock shared with
//!   other invocations, no wake-up, no disk); everything else happens on the rollup
//!   task, which drains the channel every 50 ms;
//! - the **rollup task**: per-minute aggregates per metric and dimension set (sum,
//!   count, min, max and, for durations, a log-bucket [`Histogram`]), gauges sampled
//!   every second through a [`Sampler`], written in batches to SQLite (`store.rs`),
//!   pruned past the retention;
//! - **queries** ([`MetricsStore`]): CloudWatch statistics over periods, the list of
//!   metrics, the dashboard's per-minute series;
//! - the **Prometheus** text format with process metrics (`prom.rs`).
//!
//! It knows nothing of HTTP, the scheduler or the registry: the server feeds it
//! events and a sampler.

mod hist;
mod prom;
mod store;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use std::sync::mpsc;
use tokio::sync::oneshot;

pub use hist::Histogram;
pub use store::{
    dims, is_statistic, parse_dims, Agg, MetricId, MetricsStore, MinutesOf, SeriesPoint, StoreError,
};

/// CloudWatch namespace of function metrics.
pub const LAMBDA: &str = "AWS/Lambda";
/// CloudWatch namespace of queue metrics.
pub const SQS: &str = "AWS/SQS";

/// One thing that happened, as the invocation path (or the async queue) reports it.
#[derive(Debug)]
pub enum Event {
    /// An invocation ran (successfully or with a function error).
    Invocation(Invocation),
    /// An invocation was refused with 429.
    Throttle {
        /// Function name.
        function: Arc<str>,
        /// The ARN the caller used (its qualifier, if any, is the `Resource`).
        invoked_arn: Arc<str>,
    },
    /// Any other function metric, counted or measured once (async events,
    /// dead-letter and destination failures).
    Lambda {
        /// Metric name (`AsyncEventsReceived`, `AsyncEventAge`, …).
        metric: &'static str,
        /// Function name.
        function: Arc<str>,
        /// Qualifier the caller used.
        qualifier: Option<Arc<str>>,
        /// `1` for a count; milliseconds for an age.
        value: f64,
    },
    /// A queue counter (`NumberOfMessagesSent`, …) moved by `value`.
    Queue {
        /// Metric name.
        metric: &'static str,
        /// Queue name.
        queue: Arc<str>,
        /// How many messages.
        value: f64,
    },
    /// Answered once every event sent before it is applied.
    Sync(oneshot::Sender<()>),
}

/// One invocation that ran.
#[derive(Debug)]
pub struct Invocation {
    /// Function name.
    pub function: Arc<str>,
    /// The version that ran (`$LATEST` or a number): `ExecutedVersion`.
    pub version: Arc<str>,
    /// The ARN the caller used; its qualifier is the `Resource`.
    pub invoked_arn: Arc<str>,
    /// From hand-off to outcome.
    pub duration: Duration,
    /// Any function error (timeouts, crashes and init failures included).
    pub error: bool,
    /// A cold start's init duration.
    pub init: Option<Duration>,
    /// Ran on a provisioned environment.
    pub provisioned: bool,
    /// The version has provisioned concurrency, but this ran on demand.
    pub spillover: bool,
}

/// One gauge value (a sample), with its dimensions (see [`dims`]).
#[derive(Debug, Clone)]
pub struct Sample {
    /// [`LAMBDA`] or [`SQS`].
    pub namespace: &'static str,
    /// Metric name (`ConcurrentExecutions`, …).
    pub metric: &'static str,
    /// Canonical dimensions.
    pub dims: String,
    /// The value now.
    pub value: f64,
}

/// Gauges, read by the rollup task every second (`tick` counts seconds, so slow
/// sources can answer only every n-th tick and return nothing in between).
pub type Sampler =
    Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = Vec<Sample>> + Send>> + Send + Sync>;

/// Where the invocation path sends its events. Cheap to clone; a disabled recorder
/// does nothing at all (the benchmark's baseline).
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: Option<mpsc::Sender<Event>>,
}

impl Recorder {
    /// A recorder that drops everything.
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Whether events go anywhere.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Hands `event` to the rollup task. Never blocks; after shutdown it is dropped.
    #[inline]
    pub fn record(&self, event: Event) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }
}

/// Settings of the metrics store.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Per-minute rollups older than this are deleted.
    pub retention: Duration,
    /// Recording on (`false`: a disabled [`Recorder`]; queries still read the past).
    pub record: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            // CloudWatch keeps one-minute data points for 15 days.
            retention: Duration::from_secs(15 * 24 * 3600),
            record: true,
        }
    }
}

/// Opens (or creates) the rollup table in the SQLite database at `db`, and starts
/// the rollup task. Must run inside a tokio runtime.
pub fn start(
    db: &Path,
    settings: Settings,
    sampler: Sampler,
) -> Result<(Recorder, MetricsStore), StoreError> {
    let store = MetricsStore::open(db, settings.retention)?;
    if !settings.record {
        return Ok((Recorder::disabled(), store));
    }
    let (tx, rx) = mpsc::channel();
    store.set_sender(tx.clone());
    tokio::spawn(store.clone().run(rx, sampler));
    Ok((Recorder { tx: Some(tx) }, store))
}

/// The qualifier in an invoked function ARN
/// (`arn:aws:lambda:{region}:{account}:function:{name}:{qualifier}`).
pub fn qualifier_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(7).filter(|q| !q.is_empty())
}
