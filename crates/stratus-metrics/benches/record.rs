//! What recording costs the invocation path: the time of `Recorder::record` for one
//! invocation's event (the only metrics work an invocation does), from 1 and from 4
//! threads at once, with the rollup task consuming on the same runtime, against the
//! same loop with a disabled recorder. `cargo bench -p stratus-metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use stratus_metrics::{Event, Invocation, Recorder};

const N: u64 = 1_000_000;

fn event(f: &Arc<str>, v: &Arc<str>, arn: &Arc<str>, i: u64) -> Event {
    Event::Invocation(Invocation {
        function: f.clone(),
        version: v.clone(),
        invoked_arn: arn.clone(),
        duration: Duration::from_micros(100 + i % 1000),
        error: i.is_multiple_of(100),
        init: None,
        provisioned: true,
        spillover: false,
    })
}

/// Nanoseconds per `record` call, `threads` threads each recording `N / threads`.
fn measure(rec: &Recorder, threads: u64) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let rec = rec.clone();
            std::thread::spawn(move || {
                let f: Arc<str> = Arc::from(format!("fn{t}"));
                let v: Arc<str> = Arc::from("1");
                let arn: Arc<str> = Arc::from(format!(
                    "arn:aws:lambda:us-east-1:000000000000:function:fn{t}:live"
                ));
                for i in 0..N / threads {
                    rec.record(event(&f, &v, &arn, i));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed().as_nanos() as f64 / N as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (rec, store) = rt.block_on(async {
        stratus_metrics::start(
            &dir.path().join("state.db"),
            stratus_metrics::Settings::default(),
            Arc::new(|_| Box::pin(async { Vec::new() })),
        )
        .unwrap()
    });
    let off = Recorder::disabled();
    for threads in [1, 4] {
        // Alternate, best of three, so a noisy moment does not decide it.
        let (mut on_best, mut off_best) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            off_best = off_best.min(measure(&off, threads));
            on_best = on_best.min(measure(&rec, threads));
            rt.block_on(store.sync());
        }
        println!(
            "record one invocation, {threads} thread(s): {on_best:.1} ns (disabled recorder: {off_best:.1} ns; event built either way)"
        );
    }
    let start = Instant::now();
    rt.block_on(store.sync());
    println!("backlog drained in {:?}", start.elapsed());
}
