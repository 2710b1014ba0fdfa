//! Provisioned-concurrency autoscaling as one cluster-wide service, end to end:
//! three real `stratus server` processes on one real PostgreSQL and NATS, the
//! autoscaler's clock run 60 times faster (the same simulated time on every node,
//! anchored at the cluster's creation). A target and scheduled actions registered
//! through one node are listed through every node; a scheduled action moves the
//! provisioned concurrency exactly once (one activity, whichever node lists them);
//! after the leader is SIGKILLed, the next scheduled action runs on the new leader,
//! and the one already run is not run again. Target tracking reads the cluster's
//! utilization: load on the two followers' provisioned environments (the leader's
//! own idle) scales the target out.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::{json, Value};

const DIM: &str = "lambda:function:ProvisionedConcurrency";
const RID: &str = "function:scaled:live";

/// One Application Auto Scaling call through `s`; asserts it succeeded.
async fn aas(s: &Server, op: &str, body: Value) -> Value {
    let target = format!("AnyScaleFrontendService.{op}");
    let r = s
        .api
        .call(
            "POST",
            "/",
            &[
                ("x-amz-target", target.as_str()),
                ("content-type", "application/x-amz-json-1.1"),
            ],
            body.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{op}: {}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice(&r.body).unwrap()
}

/// Provisioned concurrency requested on `scaled:q` through `s` (0 when none).
async fn requested(s: &Server, q: &str) -> u64 {
    let path = format!("/2019-09-30/functions/scaled/provisioned-concurrency?Qualifier={q}");
    let r = s.api.call("GET", &path, &[], "").await.unwrap();
    if r.status != 200 {
        return 0;
    }
    r.json().unwrap()["RequestedProvisionedConcurrentExecutions"]
        .as_u64()
        .unwrap_or(0)
}

/// The causes of the target's activities as `s` lists them, newest first.
async fn causes(s: &Server) -> Vec<String> {
    let v = aas(
        s,
        "DescribeScalingActivities",
        json!({"ServiceNamespace": "lambda", "ResourceId": RID, "ScalableDimension": DIM}),
    )
    .await;
    v["ScalingActivities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Cause"].as_str().unwrap().to_string())
        .collect()
}

fn count(causes: &[String], cause: &str) -> usize {
    causes.iter().filter(|c| *c == cause).count()
}

/// `at(…)` of simulated epoch seconds `t`.
fn at(t: f64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(t as i64).unwrap();
    format!(
        "at({:04}-{:02}-{:02}T{:02}:{:02}:{:02})",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

async fn leader_seen_by(s: &Server) -> Option<String> {
    status(s).await["leader"]["node"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_actions_run_once_cluster_wide_and_after_the_leader_dies() {
    let c = Cluster::new();
    let flags = ["--autoscale-clock-speed", "60"];
    let mut nodes = Vec::new();
    for id in ["n1", "n2", "n3"] {
        nodes.push((id.to_string(), c.node_with(id, &flags).await));
    }
    let leader = {
        let t0 = Instant::now();
        loop {
            if let Some(l) = leader_seen_by(&nodes[0].1).await {
                break l;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "no leader elected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    eprintln!("{leader} leads");

    // A function with version 1 behind alias `live`, deployed through n1.
    let n1 = &nodes[0].1;
    n1.create_ok(
        "scaled",
        "nodejs20.x",
        "index.handler",
        &node_zip("scaled"),
        json!({}),
    )
    .await;
    let v = n1.publish("scaled").await;
    let r = n1
        .api
        .call(
            "POST",
            "/2015-03-31/functions/scaled/aliases",
            &[],
            json!({"Name": "live", "FunctionVersion": v}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let n2 = &nodes[1].1;
    until(
        "the alias visible on n2",
        Duration::from_secs(5),
        || async {
            n2.api
                .call("GET", "/2015-03-31/functions/scaled/aliases/live", &[], "")
                .await
                .unwrap()
                .status
                == 200
        },
    )
    .await;

    // Registered through n2 (min 1: the current capacity is clamped up at once).
    aas(
        n2,
        "RegisterScalableTarget",
        json!({"ServiceNamespace": "lambda", "ResourceId": RID, "ScalableDimension": DIM,
               "MinCapacity": 1, "MaxCapacity": 4}),
    )
    .await;
    let registered = Instant::now();
    let t = aas(
        n2,
        "DescribeScalableTargets",
        json!({"ServiceNamespace": "lambda"}),
    )
    .await;
    let created = t["ScalableTargets"][0]["CreationTime"].as_f64().unwrap();
    // Two scheduled actions through n2: `first` two simulated minutes after the
    // registration (2 s), `second` 25 minutes after (25 s), after the leader's
    // death below.
    for (name, when, min) in [("first", 120.0, 2), ("second", 1500.0, 3)] {
        aas(
            n2,
            "PutScheduledAction",
            json!({"ServiceNamespace": "lambda", "ResourceId": RID, "ScalableDimension": DIM,
                   "ScheduledActionName": name, "Schedule": at(created + when),
                   "ScalableTargetAction": {"MinCapacity": min, "MaxCapacity": 4}}),
        )
        .await;
    }

    // Every node lists the target and both actions.
    let n3 = &nodes[2].1;
    let seen = until(
        "the target and its actions listed through n3",
        Duration::from_secs(5),
        || async {
            let t = aas(
                n3,
                "DescribeScalableTargets",
                json!({"ServiceNamespace": "lambda", "ResourceIds": [RID]}),
            )
            .await;
            let s = aas(
                n3,
                "DescribeScheduledActions",
                json!({"ServiceNamespace": "lambda", "ResourceId": RID}),
            )
            .await;
            t["ScalableTargets"].as_array().unwrap().len() == 1
                && s["ScheduledActions"].as_array().unwrap().len() == 2
        },
    )
    .await;
    eprintln!("registered through n2, listed through n3 after {seen:?}");
    let t = aas(
        n3,
        "DescribeScalableTargets",
        json!({"ServiceNamespace": "lambda"}),
    )
    .await;
    let t = &t["ScalableTargets"][0];
    assert_eq!(t["ResourceId"], RID);
    assert_eq!(t["MinCapacity"], 1);
    assert_eq!(t["MaxCapacity"], 4);
    assert_eq!(requested(n3, "live").await, 1);

    // `first` runs: the floor goes to 2, seen through every node.
    until(
        "`first` raised the capacity to 2",
        Duration::from_secs(20),
        || async { requested(n1, "live").await == 2 },
    )
    .await;
    eprintln!(
        "`first` ran {:?} after the registration",
        registered.elapsed()
    );
    // Give every node's loop several ticks (a simulated minute is a real second) to
    // run it again if it would.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (id, s) in &nodes {
        let cs = causes(s).await;
        assert_eq!(
            count(&cs, "scheduled action name first was triggered"),
            1,
            "activities through {id}: {cs:?}"
        );
        assert_eq!(
            count(&cs, "minimum capacity was set to 2"),
            1,
            "activities through {id}: {cs:?}"
        );
        let t = aas(
            s,
            "DescribeScalableTargets",
            json!({"ServiceNamespace": "lambda"}),
        )
        .await;
        assert_eq!(t["ScalableTargets"][0]["MinCapacity"], 2, "through {id}");
    }

    // SIGKILL the leader before `second` is due.
    assert!(
        registered.elapsed() < Duration::from_secs(20),
        "too slow to reach the leader's death before `second` is due"
    );
    let at_kill = nodes.iter().position(|(id, _)| *id == leader).unwrap();
    let (_, mut dead) = nodes.remove(at_kill);
    dead.child.start_kill().unwrap();
    dead.child.wait().await.unwrap();
    let killed = Instant::now();
    let asked = &nodes[0].1;
    let successor = loop {
        if let Some(l) = leader_seen_by(asked).await.filter(|l| *l != leader) {
            break l;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "no other node took over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "leader {leader} SIGKILLed: {successor} leads after {:?}",
        killed.elapsed()
    );
    assert_eq!(requested(asked, "live").await, 2, "`second` ran too early");

    // `second` runs on the new leader; `first` (within the new leader's look-back)
    // is not run again.
    let (_, s0) = &nodes[0];
    until(
        "`second` raised the capacity to 3",
        Duration::from_secs(40),
        || async { requested(s0, "live").await == 3 },
    )
    .await;
    eprintln!(
        "`second` ran {:?} after the registration",
        registered.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (id, s) in &nodes {
        let cs = causes(s).await;
        for cause in [
            "scheduled action name first was triggered",
            "minimum capacity was set to 2",
            "scheduled action name second was triggered",
            "minimum capacity was set to 3",
        ] {
            assert_eq!(count(&cs, cause), 1, "{cause} through {id}: {cs:?}");
        }
        let t = aas(
            s,
            "DescribeScalableTargets",
            json!({"ServiceNamespace": "lambda"}),
        )
        .await;
        assert_eq!(t["ScalableTargets"][0]["MinCapacity"], 3, "through {id}");
    }

    // A deregistration through one node is seen by the other.
    aas(
        &nodes[1].1,
        "DeregisterScalableTarget",
        json!({"ServiceNamespace": "lambda", "ResourceId": RID, "ScalableDimension": DIM}),
    )
    .await;
    let other = &nodes[0].1;
    until(
        "the deregistration seen",
        Duration::from_secs(5),
        || async {
            aas(
                other,
                "DescribeScalableTargets",
                json!({"ServiceNamespace": "lambda"}),
            )
            .await["ScalableTargets"]
                .as_array()
                .unwrap()
                .is_empty()
        },
    )
    .await;
}

/// Provisioned environments on node `id`, from its heartbeat as `s` reports it.
async fn provisioned_on(s: &Server, id: &str) -> u64 {
    status(s).await["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .and_then(|n| n["provisioned"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn target_tracking_reads_the_utilization_of_every_node() {
    let c = Cluster::new();
    let flags = ["--autoscale-clock-speed", "60"];
    let mut nodes = Vec::new();
    for id in ["n1", "n2", "n3"] {
        nodes.push((id.to_string(), c.node_with(id, &flags).await));
    }
    let leader = {
        let t0 = Instant::now();
        loop {
            if let Some(l) = leader_seen_by(&nodes[0].1).await {
                break l;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "no leader elected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let followers: Vec<&Server> = nodes
        .iter()
        .filter(|(id, _)| *id != leader)
        .map(|(_, s)| s)
        .collect();
    let (a, b) = (followers[0], followers[1]);

    // Each call keeps its environment busy for 1.5 s.
    let zip = raw_zip(&[(
        "index.js",
        b"exports.handler = async () => { await new Promise(r => setTimeout(r, 1500)); return { ok: true }; };\n",
    )]);
    a.create_ok(
        "scaled",
        "nodejs20.x",
        "index.handler",
        &zip,
        json!({"Timeout": 10}),
    )
    .await;
    let v = a.publish("scaled").await;
    let r = a
        .api
        .call(
            "POST",
            "/2015-03-31/functions/scaled/aliases",
            &[],
            json!({"Name": "live", "FunctionVersion": v}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    // min 3: three provisioned environments, one on each node.
    aas(
        a,
        "RegisterScalableTarget",
        json!({"ServiceNamespace": "lambda", "ResourceId": RID, "ScalableDimension": DIM,
               "MinCapacity": 3, "MaxCapacity": 6}),
    )
    .await;
    a.wait_ready("scaled", "live").await;
    until(
        "one provisioned environment per node",
        Duration::from_secs(30),
        || async {
            let mut all = true;
            for (id, _) in &nodes {
                all &= provisioned_on(a, id).await == 1;
            }
            all
        },
    )
    .await;
    aas(
        b,
        "PutScalingPolicy",
        json!({"PolicyName": "util", "ServiceNamespace": "lambda", "ResourceId": RID,
               "ScalableDimension": DIM, "PolicyType": "TargetTrackingScaling",
               "TargetTrackingScalingPolicyConfiguration": {
                   "TargetValue": 0.4, "ScaleInCooldown": 0, "ScaleOutCooldown": 0,
                   "PredefinedMetricSpecification": {"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"}}}),
    )
    .await;

    // One caller through each follower keeps that follower's environment busy; the
    // leader's stays idle. Its own share reads 0 % — the cluster's reads 2/3, above
    // the target 0.4, so the leader scales out.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers = Vec::new();
    for s in [a, b] {
        let (api, stop) = (s.api.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            let mut calls = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = api.invoke("scaled:live", "{}").await.unwrap();
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                calls += 1;
            }
            calls
        }));
    }
    let took = until(
        "a scale-out on the cluster's utilization",
        Duration::from_secs(40),
        || async { requested(a, "live").await >= 4 },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in callers {
        assert!(c.await.unwrap() > 0);
    }
    let n = requested(a, "live").await;
    eprintln!("scaled out to {n} after {took:?} of load through the two followers");
    let cs = causes(b).await;
    assert!(
        cs.iter()
            .any(|c| c.starts_with("monitor alarm TargetTracking-function:scaled:live-AlarmHigh-")),
        "{cs:?}"
    );
}
