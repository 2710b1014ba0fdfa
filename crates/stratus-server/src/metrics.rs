//! Wiring of `stratus-metrics` into the server: the scheduler's invocation records
//! become metric events (one channel push each), and the sampler that reads the
//! gauges every second — concurrency from the scheduler, provisioned concurrency per
//! alias or version from the registry's settings, queue depths (every 10 s: each is
//! a query) from the queue service.

use std::sync::Arc;

use stratus_metrics::{dims, Event, Invocation, Recorder, Sample, Sampler, LAMBDA, SQS};
use stratus_scheduler::{InvocationRecord, MetricsSink, Scheduler};

use crate::registry::Registry;

/// Forwards the scheduler's records to the metrics recorder.
#[derive(Debug)]
pub(crate) struct SchedulerSink(pub(crate) Recorder);

impl MetricsSink for SchedulerSink {
    fn invocation(&self, r: InvocationRecord) {
        self.0.record(Event::Invocation(Invocation {
            function: r.function,
            version: r.version,
            invoked_arn: r.invoked_arn,
            duration: r.duration,
            error: r.error,
            init: r.init,
            provisioned: r.provisioned,
            spillover: r.spillover,
        }));
    }

    fn throttle(&self, function: &Arc<str>, invoked_arn: &Arc<str>) {
        self.0.record(Event::Throttle {
            function: function.clone(),
            invoked_arn: invoked_arn.clone(),
        });
    }
}

/// The gauges, read once a second (queue depths every 10th second).
pub(crate) fn sampler(
    scheduler: Scheduler,
    registry: Arc<Registry>,
    queues: Arc<stratus_queue::Queues>,
) -> Sampler {
    Arc::new(move |tick| {
        let (scheduler, registry, queues) = (scheduler.clone(), registry.clone(), queues.clone());
        Box::pin(async move {
            let mut out = lambda_gauges(&scheduler, &registry);
            if tick % 10 == 1 {
                out.extend(queue_gauges(&queues).await);
            }
            out
        })
    })
}

fn sample(namespace: &'static str, metric: &'static str, dims: String, value: f64) -> Sample {
    Sample {
        namespace,
        metric,
        dims,
        value,
    }
}

fn lambda_gauges(scheduler: &Scheduler, registry: &Registry) -> Vec<Sample> {
    let g = scheduler.gauges();
    let mut out = Vec::with_capacity(g.busy.len() + 2);
    let total: u32 = g.busy.iter().map(|(_, b)| b).sum();
    out.push(sample(
        LAMBDA,
        "ConcurrentExecutions",
        String::new(),
        total.into(),
    ));
    out.push(sample(
        LAMBDA,
        "UnreservedConcurrentExecutions",
        String::new(),
        g.unreserved_busy.into(),
    ));
    for (f, busy) in &g.busy {
        out.push(sample(
            LAMBDA,
            "ConcurrentExecutions",
            dims(&[("FunctionName", f)]),
            (*busy).into(),
        ));
    }
    // Provisioned concurrency is configured on an alias or a version; its metrics
    // carry that qualifier as the Resource.
    let mut by_function: std::collections::HashMap<&str, (f64, f64)> = Default::default();
    for (f, version, target, busy) in &g.provisioned {
        let Some(snap) = registry.snapshot(f) else {
            continue;
        };
        for q in snap.provisioned.keys() {
            let points_here = match snap.aliases.get(q) {
                Some(a) => a.function_version == **version,
                None => q == &**version,
            };
            if !points_here {
                continue;
            }
            let d = dims(&[("FunctionName", f), ("Resource", &format!("{f}:{q}"))]);
            let util = f64::from(*busy) / f64::from((*target).max(1));
            out.push(sample(
                LAMBDA,
                "ProvisionedConcurrentExecutions",
                d.clone(),
                (*busy).into(),
            ));
            out.push(sample(LAMBDA, "ProvisionedConcurrencyUtilization", d, util));
            let e = by_function.entry(f).or_default();
            e.0 += f64::from(*busy);
            e.1 += f64::from(*target);
        }
    }
    for (f, (busy, target)) in by_function {
        let d = dims(&[("FunctionName", f)]);
        out.push(sample(
            LAMBDA,
            "ProvisionedConcurrentExecutions",
            d.clone(),
            busy,
        ));
        out.push(sample(
            LAMBDA,
            "ProvisionedConcurrencyUtilization",
            d,
            busy / target.max(1.0),
        ));
    }
    out
}

async fn queue_gauges(queues: &stratus_queue::Queues) -> Vec<Sample> {
    let mut out = Vec::new();
    let Ok(names) = queues.list_queues(None).await else {
        return out;
    };
    for url in names {
        let name = url.rsplit('/').next().unwrap_or(&url).to_string();
        let Ok(depth) = queues.depth(&name).await else {
            continue;
        };
        let d = dims(&[("QueueName", &name)]);
        out.push(sample(
            SQS,
            "ApproximateNumberOfMessagesVisible",
            d.clone(),
            depth.visible as f64,
        ));
        out.push(sample(
            SQS,
            "ApproximateNumberOfMessagesNotVisible",
            d.clone(),
            depth.in_flight as f64,
        ));
        out.push(sample(
            SQS,
            "ApproximateNumberOfMessagesDelayed",
            d,
            depth.delayed as f64,
        ));
    }
    out
}
