//! Asynchronous invocation with `--nats`: accepted events live in a real NATS
//! JetStream (started by the test), so a node's death loses none, nodes on one NATS
//! share the work, and a NATS outage refuses async invokes (never a 202 for an event
//! that could be lost) while sync invokes go on.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use stratus_testkit::Nats;

fn count_id(out: &Path, id: &str) -> usize {
    deliveries(out).iter().filter(|d| d["id"] == id).count()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let t = Instant::now();
    while !check() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server on `nats` with the `process` driver (the recorder writes to a host dir).
async fn node(dir: &Path, name: &str, nats: &Nats, extra: &[&str]) -> Server {
    let url = nats.url();
    let mut args = vec!["--sandbox", "process", "--nats", url.as_str()];
    args.extend_from_slice(extra);
    Server::start(&dir.join(name), &args).await
}

async fn create_recorder(s: &Server, name: &str, out: &Path) {
    let cfg =
        json!({"Environment": {"Variables": {"OUT_DIR": out.to_str().unwrap()}}, "Timeout": 10});
    s.create_ok(
        name,
        "nodejs20.x",
        "index.record",
        &fixture_zip("node"),
        cfg,
    )
    .await;
}

async fn pending(s: &Server, function: &str) -> Value {
    let r = s
        .api
        .call(
            "GET",
            &format!("/stratus/v1/async?function={function}"),
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    json_body(&r)["pending"].clone()
}

/// Waits until the stream holds no event of `function`.
async fn wait_empty(s: &Server, function: &str) {
    let t = Instant::now();
    loop {
        let n = pending(s, function).await;
        if n == json!(0) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{function}: {n} events left in the stream"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// boto3's `invoke(InvocationType='Event')`; returns the status code it saw.
async fn boto3_event(s: &Server, function: &str, payload: Value) -> String {
    let script = "import boto3, sys\n\
        c = boto3.client('lambda', endpoint_url=sys.argv[1], region_name='us-east-1')\n\
        r = c.invoke(FunctionName=sys.argv[2], InvocationType='Event', Payload=sys.argv[3])\n\
        print(r['StatusCode'])\n";
    let out = tokio::process::Command::new("python3")
        .args(["-c", script, &format!("http://{}", s.addr), function])
        .arg(payload.to_string())
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            s.data_dir.join("credentials"),
        )
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .await
        .expect("run python3 (boto3 is installed by scripts/test)");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A serverless.yml naming the function `name`, for `stratus invoke -f`.
fn project(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join("project");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("serverless.yml"),
        format!(
            "service: svc\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  rec:\n    handler: index.record\n    name: {name}\n"
        ),
    )
    .unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_delivered_retried_and_dead_lettered_through_jetstream() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let s = node(dir.path(), "a", &nats, &["--async-retry-delay", "0.3"]).await;
    for f in ["rec", "on-failure", "dlq"] {
        create_recorder(&s, f, &out).await;
    }

    // The Invoke API, boto3 and the CLI: each 202, each delivered once.
    let r = event(&s, "rec", json!({"id": "api"})).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(boto3_event(&s, "rec", json!({"id": "boto3"})).await, "202");
    let p = project(dir.path(), "rec");
    let cli = stratus_ok(
        &p,
        &format!("http://{}", s.addr),
        &[
            "invoke",
            "-f",
            "rec",
            "-t",
            "Event",
            "-d",
            r#"{"id":"cli"}"#,
        ],
    )
    .await;
    assert!(cli.contains("Invocation accepted (Event)."), "{cli}");
    // Within Lambda's 1 MB but past a default nats-server's max_payload (1 MB with
    // the headers): refused, saying which setting to raise, never a 202.
    let r = event(&s, "rec", json!({"id": "big", "x": "a".repeat(1_048_550)})).await;
    assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        json_body(&r)["message"]
            .as_str()
            .unwrap()
            .contains("max_payload"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    wait_for("three deliveries", Duration::from_secs(60), || {
        ["api", "boto3", "cli"]
            .iter()
            .all(|id| count_id(&out, id) == 1)
    })
    .await;

    // Fails twice, succeeds on the third attempt (default MaximumRetryAttempts 2),
    // each retry after the back-off (0.3 s, then 0.6 s).
    let t = Instant::now();
    event(&s, "rec", json!({"id": "flaky", "failTimes": 2})).await;
    wait_for("the third attempt", Duration::from_secs(60), || {
        count_id(&out, "flaky") == 3
    })
    .await;
    assert!(
        t.elapsed() >= Duration::from_millis(850),
        "{:?}",
        t.elapsed()
    );

    // MaximumRetryAttempts 1, then OnFailure gets the record, the DLQ the event.
    let arn = |n: &str| format!("arn:aws:lambda:us-east-1:000000000000:function:{n}");
    let cfg = json!({"MaximumRetryAttempts": 1, "DestinationConfig": {"OnFailure": {"Destination": arn("on-failure")}}});
    let r = s
        .api
        .call(
            "PUT",
            "/2019-09-25/functions/rec/event-invoke-config",
            &[],
            cfg.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = s
        .api
        .call(
            "PUT",
            "/2015-03-31/functions/rec/configuration",
            &[],
            json!({"DeadLetterConfig": {"TargetArn": arn("dlq")}}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    event(&s, "rec", json!({"id": "bad", "failTimes": 1000})).await;
    wait_for("the failure record", Duration::from_secs(60), || {
        deliveries(&out)
            .iter()
            .any(|d| d["requestContext"]["condition"] == "RetriesExhausted")
    })
    .await;
    let d = deliveries(&out);
    let failure = d
        .iter()
        .find(|v| v["requestContext"]["condition"] == "RetriesExhausted")
        .unwrap();
    assert_eq!(failure["requestPayload"]["id"], "bad");
    assert_eq!(failure["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(
        failure["responsePayload"]["errorMessage"],
        "failing attempt 2"
    );
    // Two attempts of "rec", then the DLQ recorder got the original event (its own
    // failures and retries may add more deliveries later).
    wait_for("the DLQ delivery", Duration::from_secs(30), || {
        count_id(&out, "bad") >= 3
    })
    .await;
    let bad: Vec<Value> = deliveries(&out)
        .into_iter()
        .filter(|v| v["id"] == "bad")
        .collect();
    assert_eq!(bad[2], json!({"id": "bad", "failTimes": 1000}));
    let dl = json_body(
        &s.api
            .call("GET", "/stratus/v1/dead-letters?function=rec", &[], "")
            .await
            .unwrap(),
    );
    let dl = dl["deadLetters"].as_array().unwrap();
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert_eq!(dl[0]["condition"], "RetriesExhausted");
    assert_eq!(dl[0]["attempts"], 2);
    // Terminated, so gone from the stream.
    wait_empty(&s, "rec").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_publish_is_delivered_once_and_an_old_event_expires() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let s = node(dir.path(), "a", &nats, &[]).await;
    create_recorder(&s, "once", &out).await;

    // Another publisher (a node retrying a publish whose acknowledgement it lost)
    // sends the same request twice, in the stream's message format.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let publish = |request_id: &str, id: &str| {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Stratus-Function", "once");
        h.insert("Stratus-Request-Id", request_id);
        let received = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .to_string();
        h.insert("Stratus-Received-Ms", received.as_str());
        h.insert("Nats-Msg-Id", request_id);
        (h, bytes::Bytes::from(json!({ "id": id }).to_string()))
    };
    let mut duplicates = Vec::new();
    for _ in 0..2 {
        let (h, body) = publish("11111111-2222-3333-4444-555555555555", "dup");
        let ack = js
            .publish_with_headers("stratus.events.once", h, body)
            .await
            .unwrap()
            .await
            .unwrap();
        duplicates.push(ack.duplicate);
    }
    assert_eq!(
        duplicates,
        [false, true],
        "the stream saw the second as a duplicate"
    );
    // And through the API, an event after them.
    assert_eq!(event(&s, "once", json!({"id": "after"})).await.status, 202);
    wait_for("both events", Duration::from_secs(30), || {
        count_id(&out, "dup") >= 1 && count_id(&out, "after") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count_id(&out, "dup"), 1, "{:?}", deliveries(&out));
    assert_eq!(pending(&s, "once").await, 0);

    // An event first accepted two minutes ago (its age travels in the message) is
    // past a 60 s MaximumEventAgeInSeconds: OnFailure gets it, the function never.
    create_recorder(&s, "failures", &out).await;
    let cfg = json!({"MaximumEventAgeInSeconds": 60, "DestinationConfig": {"OnFailure": {"Destination": "failures"}}});
    let r = s
        .api
        .call(
            "PUT",
            "/2019-09-25/functions/once/event-invoke-config",
            &[],
            cfg.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (mut h, body) = publish("66666666-7777-8888-9999-000000000000", "old");
    let two_minutes_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 120_000;
    h.insert("Stratus-Received-Ms", two_minutes_ago.to_string().as_str());
    js.publish_with_headers("stratus.events.once", h, body)
        .await
        .unwrap()
        .await
        .unwrap();
    wait_for(
        "the expired event's failure record",
        Duration::from_secs(30),
        || {
            deliveries(&out)
                .iter()
                .any(|d| d["requestContext"]["condition"] == "EventAgeExceeded")
        },
    )
    .await;
    assert_eq!(
        count_id(&out, "old"),
        0,
        "an expired event is not attempted"
    );
    let dl = json_body(
        &s.api
            .call("GET", "/stratus/v1/dead-letters?function=once", &[], "")
            .await
            .unwrap(),
    );
    assert_eq!(dl["deadLetters"][0]["condition"], "EventAgeExceeded");
    wait_empty(&s, "once").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_no_accepted_event_another_node_delivers_them() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Node B's state gets the function first (in a cluster it would come from the
    // shared store): a single node, stopped again.
    let b = Server::start(&dir.path().join("b"), &["--sandbox", "process"]).await;
    create_recorder(&b, "held", &out).await;
    assert!(b.terminate().await.success());

    let a = node(dir.path(), "a", &nats, &[]).await;
    create_recorder(&a, "held", &out).await;
    // One at a time on node A, slowly: most events wait (throttled, back in the
    // stream), one is in flight when A dies.
    let r = a
        .api
        .call(
            "PUT",
            "/2017-10-31/functions/held/concurrency",
            &[],
            r#"{"ReservedConcurrentExecutions":1}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let mut accepted = HashSet::new();
    for i in 0..20 {
        let r = event(&a, "held", json!({"id": i, "sleepMs": 2000})).await;
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        accepted.insert(i);
    }
    wait_for("the first delivery on A", Duration::from_secs(30), || {
        !deliveries(&out).is_empty()
    })
    .await;
    // A's first delivery sleeps 2 s: it is still running when A dies.
    let pid = a.child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = deliveries(&out).len();

    // A new node with a data dir of its own, on the same NATS, delivers every
    // accepted event, the one A was running included: that one comes back after the
    // consumer's ack wait (30 s).
    let b = node(dir.path(), "b", &nats, &[]).await;
    wait_for(
        "every accepted event delivered by the new node",
        Duration::from_secs(120),
        || {
            let by_b: HashSet<i64> = deliveries(&out)[before..]
                .iter()
                .filter_map(|d| d["id"].as_i64())
                .collect();
            accepted.iter().all(|i| by_b.contains(i))
        },
    )
    .await;
    println!(
        "accepted {}, started by A before the kill {before}, deliveries in all {}",
        accepted.len(),
        deliveries(&out).len()
    );
    wait_empty(&b, "held").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_nats_share_a_burst() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let (out_a, out_b) = (dir.path().join("out-a"), dir.path().join("out-b"));
    std::fs::create_dir_all(&out_a).unwrap();
    std::fs::create_dir_all(&out_b).unwrap();
    let a = node(dir.path(), "a", &nats, &[]).await;
    let b = node(dir.path(), "b", &nats, &[]).await;
    // The same function on both nodes, each recording into its own directory.
    create_recorder(&a, "shared", &out_a).await;
    create_recorder(&b, "shared", &out_b).await;
    for s in [&a, &b] {
        let r = s
            .api
            .call(
                "PUT",
                "/2017-10-31/functions/shared/concurrency",
                &[],
                r#"{"ReservedConcurrentExecutions":4}"#,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    // Every event goes in through node A.
    let n = 80;
    for i in 0..n {
        let r = event(&a, "shared", json!({"id": i, "sleepMs": 50})).await;
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    }
    let ids = |out: &Path| -> Vec<i64> {
        deliveries(out)
            .iter()
            .map(|d| d["id"].as_i64().unwrap())
            .collect()
    };
    wait_for("every event delivered", Duration::from_secs(90), || {
        let mut seen: HashSet<i64> = ids(&out_a).into_iter().collect();
        seen.extend(ids(&out_b));
        seen.len() == n as usize
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (da, db) = (ids(&out_a), ids(&out_b));
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for i in da.iter().chain(&db) {
        *counts.entry(*i).or_default() += 1;
    }
    println!("node A delivered {}, node B {}", da.len(), db.len());
    assert_eq!(da.len() + db.len(), n as usize, "each event delivered once");
    assert!(
        !da.is_empty() && !db.is_empty(),
        "both nodes took a share: A {}, B {}",
        da.len(),
        db.len()
    );
    assert!(counts.values().all(|c| *c == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nats_async_invokes_are_refused_and_sync_ones_still_run() {
    let mut nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let s = node(dir.path(), "a", &nats, &[]).await;
    create_recorder(&s, "rec", &out).await;
    assert_eq!(event(&s, "rec", json!({"id": "before"})).await.status, 202);
    wait_for("the first delivery", Duration::from_secs(30), || {
        count_id(&out, "before") == 1
    })
    .await;

    nats.stop();
    let r = event(&s, "rec", json!({"id": "refused"})).await;
    assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-amzn-errortype"), Some("ServiceException"));
    let body = json_body(&r);
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains(&nats.url()) && msg.contains("not accepted"),
        "{msg}"
    );
    assert_eq!(body["Type"], "Service");
    // The CLI says so too, and fails.
    let p = project(dir.path(), "rec");
    let o = stratus_cmd(
        &p,
        &format!("http://{}", s.addr),
        &["invoke", "-f", "rec", "-t", "Event", "-d", "{}"],
    )
    .await;
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("NATS JetStream"),
        "{}",
        output_text(&o)
    );
    // Synchronous invocations do not need NATS.
    let r = s.invoke("rec", r#"{"id": "sync"}"#).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(json_body(&r), json!({"ok": "sync"}));

    nats.restart();
    let t = Instant::now();
    let r = loop {
        let r = event(&s, "rec", json!({"id": "after"})).await;
        if r.status == 202 || t.elapsed() > Duration::from_secs(20) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    wait_for(
        "delivery after NATS came back",
        Duration::from_secs(30),
        || count_id(&out, "after") == 1,
    )
    .await;
    assert_eq!(count_id(&out, "refused"), 0);
}

#[test]
fn a_server_refuses_to_start_on_an_unreachable_or_malformed_nats_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("nats://127.0.0.1:{}", stratus_testkit::free_port());
    let run = |nats: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
            .arg("server")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--nats", nats])
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let o = run(&url);
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains(&format!("cannot connect to NATS at {url}")),
        "{}",
        output_text(&o)
    );
    let o = run("http://127.0.0.1:4222");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        output_text(&o).contains("a NATS URL starts with nats:// or tls://"),
        "{}",
        output_text(&o)
    );
}
