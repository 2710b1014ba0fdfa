//! What the cluster-wide concurrency limiter adds to a warm invocation.
//!
//! 1. The admission gate alone: `Grants::try_acquire` + `release` on a pool the node
//!    holds slots of (what every invocation in cluster mode does), single thread,
//!    best of three, against an empty loop.
//! 2. End to end: warm invocations of a trivial Node.js function through the API
//!    router in-process (no client socket), in rounds alternating the limiter off
//!    and on (`Scheduler::set_limiter`) on the same server, p50 and p99 per mode.
//!
//! Needs PostgreSQL (see `stratus-testkit`). `cargo bench -p stratus-server --bench grants`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::BodyExt as _;
use stratus_scheduler::{ConcurrencyLimiter, Gate, LimitPool};
use stratus_server::cluster::grants::{GrantSettings, Grants};
use tower::ServiceExt as _;

const GATE_N: u32 = 1_000_000;
const ROUNDS: usize = 6;
const PER_ROUND: usize = 1_000;

fn best_of_three(mut f: impl FnMut()) -> Duration {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

async fn invoke(app: &axum::Router) {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/2015-03-31/functions/noop/invocations")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    black_box(body);
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pg = stratus_testkit::Postgres::start();
    let url = pg.database();
    rt.block_on(async move {
        let grants = Grants::new(&url, "bench", GrantSettings::default()).await.unwrap();

        // 1. The gate alone.
        let pool = LimitPool::Account;
        assert!(grants.acquire(pool.clone(), 900).await, "a first grant");
        let g = grants.clone();
        let gate = best_of_three(|| {
            for _ in 0..GATE_N {
                let now = Instant::now();
                assert_eq!(g.try_acquire(black_box(&pool), 900, now), Gate::Admitted);
                g.release(&pool);
            }
        });
        let empty = best_of_three(|| {
            for i in 0..GATE_N {
                black_box(Instant::now());
                black_box(i);
            }
        });
        grants.release(&pool);
        let per = (gate.as_nanos() as f64 - empty.as_nanos() as f64) / f64::from(GATE_N);
        println!("gate: try_acquire + release {per:.1} ns per invocation (loop with Instant::now() alone {:.1} ns)", empty.as_nanos() as f64 / f64::from(GATE_N));

        // 2. End to end.
        let dir = tempfile::tempdir().unwrap();
        let cfg = stratus_server::ServerConfig::new(
            dir.path().join("data"),
            "127.0.0.1:0".parse().unwrap(),
        );
        let server = stratus_server::start(cfg).await.unwrap();
        let app = server.router();
        let code = tempfile::tempdir().unwrap();
        std::fs::write(code.path().join("index.js"), "exports.handler = async () => 'ok';\n").unwrap();
        let zip = stratus_package::zip_dir(code.path()).unwrap();
        let create = serde_json::json!({
            "FunctionName": "noop", "Runtime": "nodejs20.x", "Handler": "index.handler",
            "Role": "arn:aws:iam::000000000000:role/r",
            "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
        });
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/2015-03-31/functions")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(create.to_string()))
            .unwrap();
        assert_eq!(app.clone().oneshot(req).await.unwrap().status(), 201);
        for _ in 0..200 {
            invoke(&app).await; // warm up: the environment, the grant
        }
        let mut off = Vec::new();
        let mut on = Vec::new();
        for round in 0..ROUNDS {
            let limited = round % 2 == 1;
            server.scheduler().set_limiter(
                limited.then(|| grants.clone() as Arc<dyn ConcurrencyLimiter>),
            );
            let into = if limited { &mut on } else { &mut off };
            for _ in 0..PER_ROUND {
                let t = Instant::now();
                invoke(&app).await;
                into.push(t.elapsed());
            }
        }
        server.scheduler().set_limiter(None);
        for (name, v) in [("without the limiter", &mut off), ("with the limiter", &mut on)] {
            v.sort();
            println!(
                "warm invoke {name}: p50 {:.1} µs, p99 {:.1} µs ({} invocations)",
                pct(v, 0.5),
                pct(v, 0.99),
                v.len()
            );
        }
        println!("slots held after the run: {:?}", grants.held(&pool));
        grants.shutdown().await;
        server.shutdown().await;
    });
}
