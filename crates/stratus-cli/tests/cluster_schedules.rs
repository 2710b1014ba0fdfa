//! Schedules and leadership in a cluster, end to end: three real `stratus server`
//! processes on one real PostgreSQL and NATS elect one leader, a `rate(1 minute)`
//! schedule (its clock run 30 times faster, the same on every node) fires exactly
//! once per period across the three, the leader is SIGKILLed and another node
//! takes over with no period fired twice and none lost (then a clean stop of the
//! new leader hands over the same way); and the per-function scaling rate is
//! shared among the three nodes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::{json, Value};

/// Schedule time per real second: `rate(1 minute)` fires every 2 s.
const SPEED: &str = "30";

/// The leader `s` reports (`None` while an election is under way).
async fn leader_seen_by(s: &Server) -> Option<String> {
    status(s).await["leader"]["node"]
        .as_str()
        .map(str::to_string)
}

/// What the recorder function wrote: schedule time (epoch ms) → the distinct event
/// ids that carried it, and how many lines in all.
fn firings(out: &Path) -> (BTreeMap<i64, BTreeSet<String>>, usize) {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut by_time: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut lines = 0;
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        by_time
            .entry(v["t"].as_i64().unwrap())
            .or_default()
            .insert(v["id"].as_str().unwrap().to_string());
        lines += 1;
    }
    (by_time, lines)
}

/// Whether the periods recorded are every minute from the first to the last.
fn contiguous(by_time: &BTreeMap<i64, BTreeSet<String>>) -> bool {
    let times: Vec<i64> = by_time.keys().copied().collect();
    times.windows(2).all(|w| w[1] - w[0] == 60_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_fires_once_per_period_across_three_nodes_and_after_its_leader_dies() {
    let c = Cluster::new();
    let flags = ["--schedule-clock-speed", SPEED];
    let mut nodes = Vec::new();
    for id in ["n1", "n2", "n3"] {
        nodes.push((id, c.node_with(id, &flags).await));
    }

    // One leader, the same whichever node is asked, marked in the node list.
    let t0 = Instant::now();
    let leader = loop {
        if let Some(l) = leader_seen_by(&nodes[0].1).await {
            break l;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no leader elected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "{leader} leads (seen {:?} after the third node started)",
        t0.elapsed()
    );
    for (_, s) in &nodes {
        let v = status(s).await;
        assert_eq!(v["leader"]["node"], leader, "{v:#}");
        assert!(v["leader"]["epoch"].as_i64().unwrap() >= 1, "{v:#}");
        let marked: Vec<&str> = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["leader"] == true)
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert_eq!(marked, [leader.as_str()], "{v:#}");
    }
    let table = stratus_ok(c.tmp.path(), &ep(&nodes[2].1), &["cluster", "status"]).await;
    assert!(table.starts_with("mode: cluster (3 nodes"), "{table}");
    assert!(
        table.contains(&format!("leader: {leader} (epoch ")),
        "{table}"
    );

    // A service with a schedule, deployed through a node that does not lead. The
    // function appends each event's schedule time and id to a file.
    let via = &nodes.iter().find(|(id, _)| *id != leader).unwrap().1;
    let svc = c.tmp.path().join("svc");
    std::fs::create_dir_all(&svc).unwrap();
    let out = c.tmp.path().join("fired.jsonl");
    std::fs::write(
        svc.join("serverless.yml"),
        format!(
            "service: sch\nprovider:\n  name: aws\n  runtime: nodejs20.x\n  environment:\n    OUT: {}\nfunctions:\n  tick:\n    handler: h.tick\n    events:\n      - schedule: rate(1 minute)\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::write(
        svc.join("h.js"),
        "exports.tick = async (e) => { require('fs').appendFileSync(process.env.OUT, \
         JSON.stringify({ t: Date.parse(e.time), id: e.id }) + '\\n'); };\n",
    )
    .unwrap();
    let o = stratus_ok(&svc, &ep(via), &["deploy"]).await;
    assert!(o.contains("sch-dev-tick (created"), "{o}");

    // Four periods (8 s) with all three nodes up.
    until("four periods fired", Duration::from_secs(60), || {
        let out = out.clone();
        async move { firings(&out).0.len() >= 4 }
    })
    .await;
    let (before, _) = firings(&out);
    assert!(
        before.values().all(|ids| ids.len() == 1),
        "a period fired more than once with three nodes up: {before:?}"
    );

    // SIGKILL the leader: another node leads within seconds.
    let at = nodes.iter().position(|(id, _)| *id == leader).unwrap();
    let (_, mut dead) = nodes.remove(at);
    dead.child.start_kill().unwrap();
    dead.child.wait().await.unwrap();
    let killed = Instant::now();
    let fired_at_kill = firings(&out).0.len();
    let asked = &nodes[0].1;
    let mut successor = None;
    while successor.is_none() {
        successor = leader_seen_by(asked).await.filter(|l| *l != leader);
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "no other node took over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let successor = successor.unwrap();
    eprintln!(
        "leader {leader} SIGKILLed: {successor} leads after {:?}",
        killed.elapsed()
    );
    assert!(nodes.iter().any(|(id, _)| *id == successor));

    // The schedule goes on: four more periods, every period from the first one
    // fired exactly once (an event the killed node had taken but not run is
    // delivered again after the function's timeout: the same event, not a second
    // firing).
    until(
        "four more periods, none missing",
        Duration::from_secs(60),
        || {
            let out = out.clone();
            async move {
                let (by_time, _) = firings(&out);
                by_time.len() >= fired_at_kill + 4 && contiguous(&by_time)
            }
        },
    )
    .await;
    let (by_time, lines) = firings(&out);
    let twice: Vec<_> = by_time.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "periods fired more than once: {twice:?}");
    eprintln!(
        "{} periods fired once each ({lines} invocations; {} re-deliveries of the same event)",
        by_time.len(),
        lines - by_time.len()
    );

    // The killed node restarts and follows; the leader stays.
    let back = c.node_with(leader.as_str(), &flags).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        leader_seen_by(&back).await.as_deref(),
        Some(successor.as_str())
    );

    // A clean stop (SIGTERM) of the leader hands over at once, and the schedule
    // still fires once per period.
    let at = nodes.iter().position(|(id, _)| *id == successor).unwrap();
    let (_, stopped) = nodes.remove(at);
    let fired_at_stop = firings(&out).0.len();
    let stopping = Instant::now();
    let exited = tokio::spawn(stopped.terminate());
    let third = loop {
        if let Some(l) = leader_seen_by(&back).await.filter(|l| *l != successor) {
            break l;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "no node took over from a clean stop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "leader {successor} stopped (SIGTERM): {third} leads after {:?}",
        stopping.elapsed()
    );
    assert!(exited.await.unwrap().success());
    until(
        "three more periods after the clean stop, none missing",
        Duration::from_secs(60),
        || {
            let out = out.clone();
            async move {
                let (by_time, _) = firings(&out);
                by_time.len() >= fired_at_stop + 3 && contiguous(&by_time)
            }
        },
    )
    .await;
    let (by_time, _) = firings(&out);
    let twice: Vec<_> = by_time.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "periods fired more than once: {twice:?}");
    eprintln!("{} periods in all, each fired once", by_time.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scaling_rate_is_shared_among_the_healthy_nodes() {
    let c = Cluster::new();
    // Six new environments per function per 10 s, cluster-wide: two per node.
    let flags = ["--scaling-rate", "6"];
    let n1 = c.node_with("n1", &flags).await;
    let n2 = c.node_with("n2", &flags).await;
    let n3 = c.node_with("n3", &flags).await;
    n1.create_ok(
        "slow",
        "nodejs20.x",
        "index.handler",
        &raw_zip(&[(
            "index.js",
            b"exports.handler = async () => { await new Promise(r => setTimeout(r, 3000)); return { ok: true }; };\n",
        )]),
        json!({"Timeout": 10}),
    )
    .await;
    // Every node has the function and counts three healthy nodes (the share is
    // read every second).
    for s in [&n2, &n3] {
        let api = s.api.clone();
        until(
            "the function on every node",
            Duration::from_secs(10),
            || {
                let api = api.clone();
                async move {
                    let r = api
                        .call("GET", "/2015-03-31/functions/slow", &[], "")
                        .await
                        .unwrap();
                    r.status == 200
                }
            },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Ten callers on each node at once: each node starts its share, the rest are
    // throttled for the scaling rate. Without the share, 18 would start.
    let (a, b, d) = tokio::join!(
        n1.invoke_concurrently("slow", "{}", 10),
        n2.invoke_concurrently("slow", "{}", 10),
        n3.invoke_concurrently("slow", "{}", 10),
    );
    let mut started = Vec::new();
    for replies in [a, b, d] {
        let ok = replies.iter().filter(|r| r.status == 200).count();
        for r in replies.iter().filter(|r| r.status != 200) {
            assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
            assert_eq!(
                reason(r).as_deref(),
                Some("FunctionInvocationRateLimitExceeded"),
                "{}",
                String::from_utf8_lossy(&r.body)
            );
        }
        started.push(ok);
    }
    let total: usize = started.iter().sum();
    eprintln!("environments started per node with a rate of 6 per 10 s: {started:?}");
    assert!(
        started.iter().all(|n| (2..=3).contains(n)),
        "each node starts its share of two (three with a refill): {started:?}"
    );
    assert!(total <= 8, "the cluster started {total}: {started:?}");
}

/// `--schedule-clock-speed` outside 1..=3600 is refused, naming the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_schedule_clock_speed_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["0.5", "0", "-3", "7200", "fast", "NaN"] {
        let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
            .arg("server")
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .arg(format!("--schedule-clock-speed={bad}"))
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{bad}: {err}");
        assert!(
            err.contains("--schedule-clock-speed")
                && err.contains("from 1 (the real clock) to 3600"),
            "{bad}: {err}"
        );
    }
}
