//! What tracing adds to a warm invocation: the `invoke` span (request id, function,
//! version) as `Scheduler::invoke` makes and enters it, with the server's log
//! filter above its level (`STRATUS_LOG=warn`) and at it (`info`, the default),
//! and a new X-Ray trace id. Each is timed over many iterations and must stay far
//! below a warm invocation's ~100 µs round trip; the figures are printed
//! (`cargo test --release -p stratus-scheduler --test warm_path_cost -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const N: u32 = 200_000;

/// Nanoseconds per iteration of `f`, the best of three rounds (the machine is shared).
fn ns_per(mut f: impl FnMut(u32)) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            for i in 0..N {
                f(i);
            }
            t.elapsed()
        })
        .min()
        .map(|d: Duration| d.as_nanos() as f64 / f64::from(N))
        .unwrap()
}

/// The span of one invocation, made and entered as the scheduler does.
fn one_invocation(request_id: &Arc<str>, function: &Arc<str>, version: &Arc<str>) {
    let span = tracing::info_span!(
        "invoke",
        request_id = %request_id,
        function = %function,
        version = %version,
    );
    let _entered = span.enter();
    black_box(&span);
}

fn with_filter(filter: &str) -> f64 {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::sink)
        .json()
        .finish();
    let (id, f, v): (Arc<str>, Arc<str>, Arc<str>) = (
        Arc::from("6f1c0f8e-1d7b-4c38-9a53-8d1b2f0c9e11"),
        Arc::from("hello"),
        Arc::from("$LATEST"),
    );
    tracing::subscriber::with_default(subscriber, || {
        ns_per(|_| one_invocation(black_box(&id), &f, &v))
    })
}

#[test]
fn the_invoke_span_and_the_trace_id_cost_next_to_nothing() {
    let baseline = ns_per(|i| {
        black_box(i);
    });
    let filtered = with_filter("warn") - baseline;
    let enabled = with_filter("info") - baseline;
    let trace = ns_per(|_| {
        black_box(stratus_scheduler::trace::new_trace_id());
    }) - baseline;
    println!(
        "per invocation: invoke span filtered out {filtered:.1} ns, enabled (json) {enabled:.1} ns; new trace id {trace:.1} ns"
    );
    // Filtered out, the span is a check of a cached flag: nothing next to a warm
    // invocation (~100 µs). The bounds leave room for a debug build on a busy machine.
    assert!(filtered < 500.0, "filtered-out span: {filtered:.1} ns");
    assert!(enabled < 20_000.0, "enabled span: {enabled:.1} ns");
    assert!(trace < 5_000.0, "trace id: {trace:.1} ns");
}
