//! Placement, routing and failover in a cluster (issue 11, parts 4 and 7): three
//! real `stratus server` processes on one real PostgreSQL and one real NATS.
//!
//! - Provisioned environments are split over the nodes (P=2 on three: 1/1/0), each
//!   node reports the cluster-wide figures, and an invocation through the node
//!   without one runs warm on another (no Init Duration, no environment there),
//!   with the same answer (payload, function error, log tail) as a local one; the
//!   internal route refuses unsigned callers.
//! - SIGKILL of a node under mixed sync/async load from clients of all three: no
//!   accepted event lost, the survivors' clients see no error beyond the calls in
//!   flight on the killed node, its provisioned share re-created on the survivors
//!   (the time is printed), and after a restart it rejoins and the split rebalances.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::{json, Value};

/// Provisioned environments alive per healthy node, as `GET /stratus/v1/cluster`
/// through `s` reports them (each node's last heartbeat).
async fn provisioned_by_node(s: &Server) -> BTreeMap<String, u64> {
    let v = status(s).await;
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["health"] == "healthy")
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_string(),
                n["provisioned"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

async fn provisioned_config(s: &Server, name: &str, q: &str) -> Value {
    let path = format!("/2019-09-30/functions/{name}/provisioned-concurrency?Qualifier={q}");
    let r = s.api.call("GET", &path, &[], "").await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    json_body(&r)
}

async fn put_provisioned(s: &Server, name: &str, q: &str, n: u32) {
    let path = format!("/2019-09-30/functions/{name}/provisioned-concurrency?Qualifier={q}");
    let r = s
        .api
        .call(
            "PUT",
            &path,
            &[],
            json!({ "ProvisionedConcurrentExecutions": n }).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
}

/// Environments (any kind) on node `id`, from its heartbeat.
async fn environments_of(s: &Server, id: &str) -> u64 {
    let v = status(s).await;
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .map(|n| n["environments"].as_u64().unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provisioned_environments_are_split_and_calls_go_where_one_is_warm() {
    let c = Cluster::new();
    let nodes = [c.node("n1").await, c.node("n2").await, c.node("n3").await];
    let ids = ["n1", "n2", "n3"];
    let n1 = &nodes[0];
    // Each node reads the membership every second: let every one see all three
    // (a floor set before that is split over fewer nodes, then moved).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    n1.create_ok(
        "warm",
        "nodejs20.x",
        "index.handler",
        &fixture_zip("node"),
        json!({}),
    )
    .await;
    let v = n1.publish("warm").await;
    assert_eq!(v, "1");
    put_provisioned(n1, "warm", "1", 2).await;

    // Two environments over three nodes: one each on two of them, none on the third,
    // and every node reports the cluster's figures.
    let split = until(
        "2 provisioned over the nodes",
        Duration::from_secs(30),
        || async move {
            let by = provisioned_by_node(n1).await;
            by.len() == 3 && by.values().sum::<u64>() == 2
        },
    )
    .await;
    eprintln!("P=2 over 3 nodes placed after {split:?}");
    let by = provisioned_by_node(n1).await;
    assert!(by.values().all(|n| *n <= 1), "{by:?}");
    let cold_id = by.iter().find(|(_, n)| **n == 0).unwrap().0.clone();
    let cold = &nodes[ids.iter().position(|i| *i == cold_id).unwrap()];
    let warm_node = &nodes[ids.iter().position(|i| *i != cold_id).unwrap()];
    eprintln!("split {by:?}: {cold_id} keeps none");
    for s in &nodes {
        s.wait_ready("warm", "1").await;
        let cfg = provisioned_config(s, "warm", "1").await;
        assert_eq!(cfg["RequestedProvisionedConcurrentExecutions"], 2, "{cfg}");
        assert_eq!(cfg["AllocatedProvisionedConcurrentExecutions"], 2, "{cfg}");
        assert_eq!(cfg["AvailableProvisionedConcurrentExecutions"], 2, "{cfg}");
        assert_eq!(cfg["Status"], "READY", "{cfg}");
    }
    // The cold node reads the others' heartbeats every second.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // Through the node without one: warm, on another node, one call after another.
    let mut routed_ms = Vec::new();
    for i in 0..6 {
        let t = Instant::now();
        let (r, tail) = cold
            .invoke_tail("warm:1", &json!({ "i": i }).to_string())
            .await;
        routed_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let body = json_body(&r);
        assert_eq!(body["initType"], "provisioned-concurrency", "{body}");
        assert_eq!(body["event"]["i"], i);
        let rid = r.header("x-amzn-requestid").unwrap();
        assert_eq!(body["context"]["requestId"], rid, "the origin's request id");
        assert!(tail.contains(&format!("START RequestId: {rid}")), "{tail}");
        assert!(tail.contains(&format!("REPORT RequestId: {rid}")), "{tail}");
        assert!(!tail.contains("Init Duration"), "a cold start: {tail}");
        assert_eq!(r.header("x-amz-executed-version"), Some("1"));
    }
    let envs = environments_of(n1, &cold_id).await;
    if envs != 0 {
        eprintln!("{:#}", status(n1).await);
        eprintln!(
            "{}",
            std::fs::read_to_string(cold.data_dir.with_extension("server.log")).unwrap()
        );
    }
    assert_eq!(envs, 0, "an environment was started on {cold_id}");

    let mut local_ms = Vec::new();
    for _ in 0..6 {
        let t = Instant::now();
        let r = warm_node.invoke("warm:1", "{}").await;
        local_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.status, 200);
    }
    eprintln!("client-side latency (debug build, loaded VM), ms: routed {routed_ms:.1?}, local {local_ms:.1?}");

    // A function error routed is the same answer as a local one.
    let error = r#"{"action":"error","detail":"routed"}"#;
    let (local, local_tail) = warm_node.invoke_tail("warm:1", error).await;
    let (routed, routed_tail) = cold.invoke_tail("warm:1", error).await;
    for r in [&local, &routed] {
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    }
    let names = |r: &stratus_cli::client::Reply| {
        let mut v: Vec<String> = r.headers.keys().map(|k| k.to_string()).collect();
        v.retain(|k| k != "date");
        v.sort();
        v
    };
    assert_eq!(names(&local), names(&routed));
    // The stack trace names the data dir of the node that ran it.
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("stackTrace");
        v
    };
    assert_eq!(
        strip(json_body(&local)),
        strip(json_body(&routed)),
        "the function error's payload"
    );
    assert!(routed_tail.contains("bad thing: routed"), "{routed_tail}");
    assert_eq!(
        local_tail.lines().count(),
        routed_tail.lines().count(),
        "{local_tail}\n---\n{routed_tail}"
    );
    assert_eq!(environments_of(n1, &cold_id).await, 0);

    // The REPORT lines are written on the nodes that ran the calls.
    let t = Instant::now();
    let reports = loop {
        let mut reports = Vec::new();
        for s in &nodes {
            reports.extend(
                s.logs("warm")
                    .await
                    .into_iter()
                    .filter(|l| l.starts_with("REPORT RequestId")),
            );
        }
        if reports.len() >= 8 {
            break reports;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{reports:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        reports.iter().all(|l| !l.contains("Init Duration")),
        "{reports:#?}"
    );

    // The internal route takes only calls signed by the cluster.
    for headers in [
        vec![],
        vec![
            ("x-stratus-forward", "e30="),
            ("x-stratus-forward-signature", "00"),
        ],
    ] {
        let r = cold
            .api
            .call("POST", "/stratus/v1/internal/invoke", &headers, "{}")
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    }

    // Deleting the config stops every node's share.
    let r = n1
        .api
        .call(
            "DELETE",
            "/2019-09-30/functions/warm/provisioned-concurrency?Qualifier=1",
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    until(
        "no provisioned left",
        Duration::from_secs(15),
        || async move { provisioned_by_node(n1).await.values().sum::<u64>() == 0 },
    )
    .await;
}

/// Outcomes of one client's calls.
#[derive(Default)]
struct Tally {
    ok: usize,
    /// Calls that failed, with what the client saw.
    errors: Vec<String>,
    /// Request ids of accepted (202) async events.
    accepted: Vec<String>,
}

/// A client of `api` (node `node`) until `stop`: a sync call and an async event
/// each round.
async fn client(
    node: &'static str,
    n: usize,
    api: stratus_cli::client::Api,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) {
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let id = format!("s-{node}.{n}-{k}");
        match api
            .invoke("rec:1", &json!({ "id": id, "sleepMs": 30 }).to_string())
            .await
        {
            Ok(r) if r.status == 200 && r.header("x-amz-function-error").is_none() => {
                tally.lock().unwrap().ok += 1
            }
            Ok(r) => tally.lock().unwrap().errors.push(format!(
                "sync {id}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )),
            Err(e) => tally
                .lock()
                .unwrap()
                .errors
                .push(format!("sync {id}: {e:#}")),
        }
        let id = format!("a-{node}.{n}-{k}");
        match api
            .call(
                "POST",
                "/2015-03-31/functions/rec:1/invocations",
                &[("x-amz-invocation-type", "Event")],
                // Long enough that some are running on n3 when it dies.
                json!({ "id": id, "sleepMs": 300 }).to_string(),
            )
            .await
        {
            Ok(r) if r.status == 202 => tally.lock().unwrap().accepted.push(id),
            Ok(r) => tally.lock().unwrap().errors.push(format!(
                "async {id}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )),
            Err(e) => tally
                .lock()
                .unwrap()
                .errors
                .push(format!("async {id}: {e:#}")),
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

fn delivered_ids(out: &Path) -> HashSet<String> {
    deliveries(out)
        .iter()
        .filter_map(|d| d["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_under_load_loses_nothing_and_its_share_moves() {
    let c = Cluster::new();
    let n1 = c.node("n1").await;
    let n2 = c.node("n2").await;
    let mut n3 = c.node("n3").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let out = c.tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    n1.create_ok(
        "rec",
        "nodejs20.x",
        "index.record",
        &fixture_zip("node"),
        json!({"Environment": {"Variables": {"OUT_DIR": out.to_str().unwrap()}}, "Timeout": 10}),
    )
    .await;
    assert_eq!(n1.publish("rec").await, "1");
    const P: u64 = 3;
    put_provisioned(&n1, "rec", "1", P as u32).await;
    let n1r = &n1;
    until("1/1/1", Duration::from_secs(30), || async move {
        let by = provisioned_by_node(n1r).await;
        by.len() == 3 && by.values().all(|n| *n == 1)
    })
    .await;
    n2.wait_ready("rec", "1").await;

    // Mixed load from two clients per node.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tallies = Vec::new();
    let mut tasks = Vec::new();
    for (id, s) in [("n1", &n1), ("n2", &n2), ("n3", &n3)] {
        for n in 0..2 {
            let t = Arc::new(Mutex::new(Tally::default()));
            tallies.push((id, t.clone()));
            tasks.push(tokio::spawn(client(id, n, s.api.clone(), stop.clone(), t)));
        }
    }
    tokio::time::sleep(Duration::from_secs(4)).await;

    // SIGKILL n3 mid-load.
    n3.child.start_kill().unwrap();
    n3.child.wait().await.unwrap();
    let killed = Instant::now();
    eprintln!("SIGKILLed n3");
    // Its share comes back on the survivors: the cluster's provisioned count is P
    // again on the healthy nodes (n3 counted dead after 5 s without a heartbeat).
    until(
        "n3's provisioned share re-created on n1 and n2",
        Duration::from_secs(30),
        || async move {
            let by = provisioned_by_node(n1r).await;
            !by.contains_key("n3") && by.values().sum::<u64>() == P
        },
    )
    .await;
    let recreated = killed.elapsed();
    eprintln!(
        "provisioned share of the SIGKILLed node re-created on the survivors {recreated:?} after the kill (of which 5 s until it is counted dead; heartbeats are read every second)"
    );
    let cfg = provisioned_config(&n2, "rec", "1").await;
    assert_eq!(cfg["Status"], "READY", "{cfg}");
    assert_eq!(cfg["AvailableProvisionedConcurrentExecutions"], P, "{cfg}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    // The survivors' clients: no error but calls that were on n3 when it died.
    let mut accepted = Vec::new();
    let (mut ok, mut on_killed) = (0, Vec::new());
    for (id, t) in &tallies {
        let t = t.lock().unwrap();
        accepted.extend(t.accepted.iter().cloned());
        if *id == "n3" {
            continue;
        }
        ok += t.ok;
        for e in &t.errors {
            assert!(
                e.contains("cluster node n3"),
                "a client of {id} saw an error not caused by n3's death: {e}"
            );
            on_killed.push(e.clone());
        }
    }
    eprintln!(
        "survivors' clients: {ok} sync calls answered, {} failed in flight on n3: {on_killed:?}; {} async events accepted by all nodes",
        on_killed.len(),
        accepted.len()
    );
    assert!(ok > 20, "too little load: {ok}");
    assert!(
        on_killed.len() <= 4,
        "more failures than calls that can be in flight on n3 at once: {on_killed:?}"
    );

    // Every accepted event is delivered, at least once (one running on n3 comes
    // back after JetStream's ack wait).
    let accepted_set: HashSet<String> = accepted.iter().cloned().collect();
    let t = Instant::now();
    loop {
        let d = delivered_ids(&out);
        let missing: Vec<&String> = accepted_set.iter().filter(|id| !d.contains(*id)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "{} accepted events never delivered: {missing:?}",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "all {} accepted events delivered ({:?} after the load stopped)",
        accepted_set.len(),
        t.elapsed()
    );

    // n3 restarts: it rejoins, and the split goes back to 1/1/1.
    let restarted = Instant::now();
    let n3 = c.node("n3").await;
    until("n3 healthy again", Duration::from_secs(10), || async move {
        health_of(&status(n1r).await, "n3") == "healthy"
    })
    .await;
    let rebalanced = until("1/1/1 again", Duration::from_secs(30), || async move {
        let by = provisioned_by_node(n1r).await;
        by.len() == 3 && by.values().all(|n| *n == 1)
    })
    .await;
    eprintln!(
        "n3 restarted: split back to 1/1/1 {:?} after its start ({rebalanced:?} after it was healthy)",
        restarted.elapsed()
    );
    let r = n3.invoke("rec:1", r#"{"id":"after-restart"}"#).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}
