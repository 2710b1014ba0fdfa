//! `stratus bench --async-accept [--nats URL]`: how long an asynchronous Invoke
//! (`X-Amz-Invocation-Type: Event`) takes to be answered 202, that is, to be stored
//! durably: in `events.db` (group-committed, fsync'd) or, with `--nats`, in the
//! JetStream stream (after its publish acknowledgement). Sequential requests give the
//! p50/p99; 16 concurrent callers give the rate and their p50/p99. Deliveries to a
//! trivial Node function (4 environments at most) run meanwhile, as they would; the
//! time the backlog takes to drain afterwards is reported too.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::percentile;
use crate::client::Api;

const FUNCTION: &str = "async-sink";

async fn accept(api: &Api) -> anyhow::Result<f64> {
    let t = Instant::now();
    let r = api
        .call(
            "POST",
            &format!("/2015-03-31/functions/{FUNCTION}/invocations"),
            &[("x-amz-invocation-type", "Event")],
            "{}",
        )
        .await?;
    let us = t.elapsed().as_secs_f64() * 1e6;
    if r.status != 202 {
        bail!(
            "async invoke answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    Ok(us)
}

fn report(what: &str, mut lat: Vec<f64>) {
    lat.sort_by(f64::total_cmp);
    println!(
        "{what}: p50 {:.0} µs, p99 {:.0} µs ({} requests)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.len()
    );
}

async fn pending(api: &Api) -> anyhow::Result<u64> {
    let v: serde_json::Value = api
        .call(
            "GET",
            &format!("/stratus/v1/async?function={FUNCTION}"),
            &[],
            "",
        )
        .await?
        .json()?;
    Ok(v["pending"].as_u64().unwrap_or(0))
}

/// Runs the measurement against the server behind `api`.
pub(super) async fn run(
    api: &Api,
    node_zip: &[u8],
    requests: u32,
    backend: &str,
) -> anyhow::Result<()> {
    super::create(api, FUNCTION, "nodejs20.x", "index.handler", node_zip).await?;
    // At most 4 environments deliver meanwhile (the rest of the backlog waits as
    // throttled events do), so cold starts of dozens of Node processes do not take
    // the CPU the accepts are measured on.
    let r = api
        .call(
            "PUT",
            &format!("/2017-10-31/functions/{FUNCTION}/concurrency"),
            &[],
            r#"{"ReservedConcurrentExecutions":4}"#,
        )
        .await?;
    if r.status != 200 {
        bail!(
            "cannot reserve concurrency: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    println!("async accept, events kept in {backend}");
    for _ in 0..100 {
        accept(api).await?;
    }
    let mut lat = Vec::with_capacity(requests as usize);
    for _ in 0..requests {
        lat.push(accept(api).await?);
    }
    report("  concurrency 1", lat);

    let callers = 16;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let api = api.clone();
        let n = requests / callers;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n as usize);
            for _ in 0..n {
                lat.push(accept(&api).await?);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "  concurrency 16: {:.0} accepted/s",
        lat.len() as f64 / secs
    );
    report("  concurrency 16", lat);

    let drain = Instant::now();
    while pending(api).await? > 0 {
        if drain.elapsed() > Duration::from_secs(120) {
            bail!("the backlog did not drain within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "  backlog delivered {:.2} s after the last accept",
        drain.elapsed().as_secs_f64()
    );
    Ok(())
}
