//! The Prometheus side: cumulative counters, gauges and duration histograms since
//! the process started (kept by the rollup task, never by the invocation path), and
//! the usual process metrics read from `/proc` at scrape time, encoded with
//! `prometheus-client` in the OpenMetrics text format.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label pairs of one series.
pub(crate) type Labels = Vec<(String, String)>;
type Hist = Family<Labels, Histogram, fn() -> Histogram>;

/// Counters exported as `stratus_{lambda|sqs}_{snake}_total`.
const COUNTERS: &[(&str, &str)] = &[
    (crate::LAMBDA, "Invocations"),
    (crate::LAMBDA, "Errors"),
    (crate::LAMBDA, "Throttles"),
    (crate::LAMBDA, "ColdStarts"),
    (crate::LAMBDA, "ProvisionedConcurrencyInvocations"),
    (crate::LAMBDA, "ProvisionedConcurrencySpilloverInvocations"),
    (crate::LAMBDA, "AsyncEventsReceived"),
    (crate::LAMBDA, "AsyncEventsDropped"),
    (crate::LAMBDA, "DeadLetterErrors"),
    (crate::LAMBDA, "DestinationDeliveryFailures"),
    (crate::SQS, "NumberOfMessagesSent"),
    (crate::SQS, "NumberOfMessagesReceived"),
    (crate::SQS, "NumberOfMessagesDeleted"),
];

/// Gauges, set from each second's sample.
const GAUGES: &[(&str, &str)] = &[
    (crate::LAMBDA, "ConcurrentExecutions"),
    (crate::LAMBDA, "UnreservedConcurrentExecutions"),
    (crate::LAMBDA, "ProvisionedConcurrentExecutions"),
    (crate::LAMBDA, "ProvisionedConcurrencyUtilization"),
    (crate::SQS, "ApproximateNumberOfMessagesVisible"),
    (crate::SQS, "ApproximateNumberOfMessagesNotVisible"),
    (crate::SQS, "ApproximateNumberOfMessagesDelayed"),
];

/// Measurements in milliseconds, exported in seconds.
const HISTOGRAMS: &[&str] = &["Duration", "InitDuration", "AsyncEventAge"];

pub(crate) struct Prom {
    registry: Registry,
    counters: HashMap<&'static str, Family<Labels, Counter<f64, AtomicU64>>>,
    gauges: HashMap<&'static str, Family<Labels, Gauge<f64, AtomicU64>>>,
    histograms: HashMap<&'static str, Hist>,
}

impl std::fmt::Debug for Prom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prom")
    }
}

/// `ProvisionedConcurrencyUtilization` → `provisioned_concurrency_utilization`.
pub(crate) fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn prom_name(namespace: &str, metric: &str) -> String {
    let ns = if namespace == crate::SQS {
        "sqs"
    } else {
        "lambda"
    };
    format!("stratus_{ns}_{}", snake(metric))
}

fn duration_buckets() -> Histogram {
    // 1 ms to ~16 minutes (Lambda's 900 s timeout) in doublings.
    Histogram::new(exponential_buckets(0.001, 2.0, 21))
}

impl Prom {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let mut counters = HashMap::new();
        for (ns, m) in COUNTERS {
            let fam = Family::<Labels, Counter<f64, AtomicU64>>::default();
            registry.register(prom_name(ns, m), format!("{m} ({ns})"), fam.clone());
            counters.insert(*m, fam);
        }
        let mut gauges = HashMap::new();
        for (ns, m) in GAUGES {
            let fam = Family::<Labels, Gauge<f64, AtomicU64>>::default();
            registry.register(
                prom_name(ns, m),
                format!("{m} ({ns}), sampled every second"),
                fam.clone(),
            );
            gauges.insert(*m, fam);
        }
        let mut histograms = HashMap::new();
        for m in HISTOGRAMS {
            let fam: Hist = Family::new_with_constructor(duration_buckets);
            registry.register(
                format!("{}_seconds", prom_name(crate::LAMBDA, m)),
                format!("{m} (AWS/Lambda), in seconds"),
                fam.clone(),
            );
            histograms.insert(*m, fam);
        }
        registry.register_collector(Box::new(Process));
        Self {
            registry,
            counters,
            gauges,
            histograms,
        }
    }

    pub(crate) fn inc(&self, metric: &str, labels: &Labels, by: f64) {
        if let Some(f) = self.counters.get(metric) {
            f.get_or_create(labels).inc_by(by);
        }
    }

    pub(crate) fn set(&self, metric: &str, labels: &Labels, v: f64) {
        if let Some(f) = self.gauges.get(metric) {
            f.get_or_create(labels).set(v);
        }
    }

    pub(crate) fn observe_ms(&self, metric: &str, labels: &Labels, ms: f64) {
        if let Some(f) = self.histograms.get(metric) {
            f.get_or_create(labels).observe(ms / 1000.0);
        }
    }

    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process metrics of the Prometheus client libraries' conventions, from
/// `/proc/self` (Linux; elsewhere nothing is exported).
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = read_proc() else {
            return Ok(());
        };
        let counter = ConstCounter::new(p.cpu_seconds);
        let m = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            counter.metric_type(),
        )?;
        counter.encode(m)?;
        let gauges: [(&str, &str, f64); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.rss_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.vsize_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                p.start_time,
            ),
        ];
        for (name, help, v) in gauges {
            let g = ConstGauge::new(v);
            let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
            g.encode(m)?;
        }
        Ok(())
    }
}

struct ProcStats {
    cpu_seconds: f64,
    rss_bytes: f64,
    vsize_bytes: f64,
    open_fds: f64,
    max_fds: f64,
    start_time: f64,
}

fn read_proc() -> Option<ProcStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    // The kernel reports times in clock ticks (USER_HZ, 100 on every Linux ABI
    // Stratus runs on) and RSS in pages.
    let ticks = 100.0;
    let page = 4096.0;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    Some(ProcStats {
        cpu_seconds: (num(14)? + num(15)?) / ticks,
        vsize_bytes: num(23)?,
        rss_bytes: num(24)? * page,
        open_fds,
        max_fds,
        start_time: boot + num(22)? / ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_process_metrics() {
        assert_eq!(
            prom_name(crate::LAMBDA, "ProvisionedConcurrencyUtilization"),
            "stratus_lambda_provisioned_concurrency_utilization"
        );
        let p = Prom::new();
        let labels = vec![("function_name".to_string(), "f".to_string())];
        p.inc("Invocations", &labels, 2.0);
        p.observe_ms("Duration", &labels, 12.0);
        let text = p.encode();
        assert!(
            text.contains("stratus_lambda_invocations_total{function_name=\"f\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("stratus_lambda_duration_seconds_count{function_name=\"f\"} 1"),
            "{text}"
        );
        assert!(text.contains("process_open_fds "), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        let start = text
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .unwrap();
        assert!(start.parse::<f64>().unwrap() > 1.7e9, "{start}");
    }
}
