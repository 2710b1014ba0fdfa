//! What the scheduler tells a metrics recorder: one [`InvocationRecord`] per
//! invocation that ran and one throttle per refusal, handed to a [`MetricsSink`] set
//! once at start (read without a lock on the invocation path), and a [`Gauges`]
//! snapshot of concurrency that the recorder samples on its own schedule.

use std::sync::Arc;
use std::time::Duration;

use crate::{FunctionSpec, Scheduler};

/// One invocation that ran (or failed its init), as the metrics see it.
#[derive(Debug, Clone)]
pub struct InvocationRecord {
    /// Function name.
    pub function: Arc<str>,
    /// Version that ran.
    pub version: Arc<str>,
    /// ARN the caller used.
    pub invoked_arn: Arc<str>,
    /// From hand-off to outcome (zero when the init failed).
    pub duration: Duration,
    /// Any function error.
    pub error: bool,
    /// Init duration of a cold start.
    pub init: Option<Duration>,
    /// Ran on a provisioned environment.
    pub provisioned: bool,
    /// The version has provisioned concurrency but this ran on demand.
    pub spillover: bool,
}

/// Receives invocation outcomes. Implementations must not block (the call is on the
/// invocation path): push to a queue and return.
pub trait MetricsSink: Send + Sync + std::fmt::Debug {
    /// An invocation ran.
    fn invocation(&self, record: InvocationRecord);
    /// An invocation was refused with 429.
    fn throttle(&self, function: &Arc<str>, invoked_arn: &Arc<str>);
}

/// Concurrency now.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Busy environments counted against the unreserved pool.
    pub unreserved_busy: u32,
    /// Busy environments per function.
    pub busy: Vec<(Arc<str>, u32)>,
    /// Per version with provisioned concurrency: (function, version, target, busy
    /// provisioned environments).
    pub provisioned: Vec<(Arc<str>, Arc<str>, u32, u32)>,
}

impl Scheduler {
    /// Sends every invocation's outcome to `sink` from now on (once; later calls are
    /// ignored).
    pub fn set_metrics_sink(&self, sink: Arc<dyn MetricsSink>) {
        let _ = self.inner.metrics.set(sink);
    }

    /// Concurrency now, for sampled metrics.
    pub fn gauges(&self) -> Gauges {
        self.inner.state.lock().gauges()
    }

    pub(crate) fn record_throttle(&self, spec: &FunctionSpec, invoked_arn: &Arc<str>) {
        if let Some(m) = self.inner.metrics.get() {
            m.throttle(&spec.function_name, invoked_arn);
        }
    }

    pub(crate) fn record(&self, record: impl FnOnce() -> InvocationRecord) {
        if let Some(m) = self.inner.metrics.get() {
            m.invocation(record());
        }
    }
}
