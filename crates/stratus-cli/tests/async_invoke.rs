//! Asynchronous invocation: durable acceptance, retries with back-off, maximum event
//! age, destinations and dead letters, the event-invoke-config API, throttled events
//! waiting, and nothing lost across a SIGKILL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let t = Instant::now();
    while !check() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The recorder writes each delivery to a host directory the test reads, so servers
/// running it use the `process` driver: under `linux` a function cannot see the host.
async fn create_recorder(s: &Server, name: &str, out: &Path, extra: Value) {
    let mut cfg =
        json!({"Environment": {"Variables": {"OUT_DIR": out.to_str().unwrap()}}, "Timeout": 10});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    s.create_ok(
        name,
        "nodejs20.x",
        "index.record",
        &fixture_zip("node"),
        cfg,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_accepted_delivered_retried_and_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &["--sandbox", "process", "--async-retry-delay", "0.3"],
    )
    .await;
    create_recorder(&s, "rec", &out, json!({})).await;
    create_recorder(&s, "on-success", &out, json!({})).await;
    create_recorder(&s, "on-failure", &out, json!({})).await;
    create_recorder(&s, "dlq", &out, json!({})).await;

    // 202, then delivered.
    let r = event(&s, "rec", json!({"id": "plain"})).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("x-amzn-requestid").is_some());
    wait_for("delivery", || {
        deliveries(&out).iter().any(|d| d["id"] == "plain")
    })
    .await;

    // Fails twice, succeeds on the third attempt (default MaximumRetryAttempts 2),
    // each retry after the back-off.
    let t = Instant::now();
    event(&s, "rec", json!({"id": "flaky", "failTimes": 2})).await;
    wait_for("the third attempt", || {
        deliveries(&out)
            .iter()
            .filter(|d| d["id"] == "flaky")
            .count()
            == 3
    })
    .await;
    assert!(
        t.elapsed() >= Duration::from_millis(850),
        "back-off 0.3 s then 0.6 s: {:?}",
        t.elapsed()
    );

    // Destinations and DLQ through the event-invoke-config API and DeadLetterConfig.
    let arn = |n: &str| format!("arn:aws:lambda:us-east-1:000000000000:function:{n}");
    let cfg = json!({"MaximumRetryAttempts": 1, "DestinationConfig": {"OnSuccess": {"Destination": arn("on-success")}, "OnFailure": {"Destination": arn("on-failure")}}});
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
    assert_eq!(
        json_body(&r)["FunctionArn"],
        format!("{}:$LATEST", arn("rec"))
    );
    let r = s
        .api
        .call(
            "GET",
            "/2019-09-25/functions/rec/event-invoke-config",
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(json_body(&r)["MaximumRetryAttempts"], 1);
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
    assert_eq!(json_body(&r)["DeadLetterConfig"]["TargetArn"], arn("dlq"));

    event(&s, "rec", json!({"id": "good"})).await;
    event(&s, "rec", json!({"id": "bad", "failTimes": 5})).await;
    wait_for("destination records and the dead letter", || {
        let d = deliveries(&out);
        let records: Vec<&Value> = d
            .iter()
            .filter(|v| v["requestContext"].is_object())
            .collect();
        records.len() >= 2 && d.iter().filter(|v| v["id"] == "bad").count() >= 3
    })
    .await;
    let d = deliveries(&out);
    let success = d
        .iter()
        .find(|v| v["requestContext"]["condition"] == "Success")
        .expect("OnSuccess record");
    assert_eq!(success["requestPayload"]["id"], "good");
    assert_eq!(success["responsePayload"], json!({"ok": "good"}));
    assert_eq!(
        success["requestContext"]["functionArn"],
        format!("{}:$LATEST", arn("rec"))
    );
    assert_eq!(success["version"], "1.0");
    let failure = d
        .iter()
        .find(|v| v["requestContext"]["condition"] == "RetriesExhausted")
        .expect("OnFailure record");
    assert_eq!(failure["requestPayload"]["id"], "bad");
    assert_eq!(
        failure["requestContext"]["approximateInvokeCount"], 2,
        "one retry"
    );
    assert_eq!(failure["responseContext"]["functionError"], "Unhandled");
    assert_eq!(
        failure["responsePayload"]["errorMessage"],
        "failing attempt 2"
    );
    // The DLQ target got the original event (a third delivery of "bad", unchanged).
    // The DLQ target is a recorder too, and "bad" makes it fail as well, so its own
    // asynchronous retries may add later deliveries: count only the first three.
    let bad: Vec<&Value> = d.iter().filter(|v| v["id"] == "bad").collect();
    assert!(bad.len() >= 3, "{bad:?}");
    assert_eq!(*bad[2], json!({"id": "bad", "failTimes": 5}));
    let dl = json_body(
        &s.api
            .call("GET", "/stratus/v1/dead-letters?function=rec", &[], "")
            .await
            .unwrap(),
    );
    let dl = dl["deadLetters"].as_array().unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0]["condition"], "RetriesExhausted");
    assert_eq!(dl[0]["attempts"], 2);

    // Validation of the config API and of async payloads.
    let r = s
        .api
        .call(
            "PUT",
            "/2019-09-25/functions/rec/event-invoke-config",
            &[],
            r#"{"MaximumRetryAttempts":3}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(json_body(&r)["message"]
        .as_str()
        .unwrap()
        .contains("maximumRetryAttempts"));
    let r = s
        .api
        .call(
            "PUT",
            "/2019-09-25/functions/rec/event-invoke-config",
            &[],
            r#"{"MaximumEventAgeInSeconds":30}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let big = json!({"x": "a".repeat(1024 * 1024)});
    let r = event(&s, "rec", big).await;
    assert_eq!(r.status, 413);
    assert_eq!(
        json_body(&r)["message"],
        "Request must be smaller than 1048576 bytes for the InvokeFunction operation"
    );
    assert_eq!(event(&s, "missing", json!({})).await.status, 404);
    let r = s
        .api
        .call(
            "DELETE",
            "/2019-09-25/functions/rec/event-invoke-config",
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(
        s.api
            .call(
                "GET",
                "/2019-09-25/functions/rec/event-invoke-config",
                &[],
                ""
            )
            .await
            .unwrap()
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_events_wait_and_are_never_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let s = Server::start(&dir.path().join("data"), &["--sandbox", "process"]).await;
    create_recorder(&s, "slow", &out, json!({})).await;
    s.api
        .call(
            "PUT",
            "/2017-10-31/functions/slow/concurrency",
            &[],
            r#"{"ReservedConcurrentExecutions":1}"#,
        )
        .await
        .unwrap();
    for i in 0..6 {
        assert_eq!(
            event(&s, "slow", json!({"id": i, "sleepMs": 150}))
                .await
                .status,
            202
        );
    }
    wait_for("all six", || deliveries(&out).len() == 6).await;
    let ids: HashSet<i64> = deliveries(&out)
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 6);
    let mut m = Value::Null;
    for _ in 0..100 {
        m = json_body(
            &s.api
                .call("GET", "/stratus/v1/metrics?function=slow", &[], "")
                .await
                .unwrap(),
        );
        if m["invocations"] == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(m["invocations"], 6, "none lost: {m}");
    assert!(
        m["throttles"].as_u64().unwrap() > 0,
        "deliveries beyond the reservation were throttled and waited: {m}"
    );
    assert_eq!(
        json_body(
            &s.api
                .call("GET", "/stratus/v1/async?function=slow", &[], "")
                .await
                .unwrap()
        )["pending"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_expire_into_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let s = Server::start(
        &data,
        &["--sandbox", "process", "--async-retry-delay", "600"],
    )
    .await;
    create_recorder(&s, "aging", &out, json!({})).await;
    create_recorder(&s, "failures", &out, json!({})).await;
    let cfg = json!({"MaximumEventAgeInSeconds": 60, "DestinationConfig": {"OnFailure": {"Destination": "failures"}}});
    let r = s
        .api
        .call(
            "PUT",
            "/2019-09-25/functions/aging/event-invoke-config",
            &[],
            cfg.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The first attempt fails; its retry is 10 minutes away.
    event(&s, "aging", json!({"id": "old", "failTimes": 9})).await;
    wait_for("the first attempt", || deliveries(&out).len() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        json_body(
            &s.api
                .call("GET", "/stratus/v1/async?function=aging", &[], "")
                .await
                .unwrap()
        )["pending"],
        1
    );
    assert!(s.terminate().await.success());

    // Move the stored event two minutes into the past and make its retry due: the
    // clock is faked through the durable state, the way a long outage would age it.
    let db = data.join("events.db");
    let sql = "UPDATE events SET received_ms = received_ms - 120000, next_attempt_ms = 0";
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            &format!(
                "import sqlite3; c = sqlite3.connect({:?}); c.execute({sql:?}); c.commit()",
                db.to_str().unwrap()
            ),
        ])
        .status()
        .unwrap();
    assert!(status.success());

    let s = Server::start(
        &data,
        &["--sandbox", "process", "--async-retry-delay", "600"],
    )
    .await;
    wait_for("the expired event's failure record", || {
        deliveries(&out)
            .iter()
            .any(|d| d["requestContext"]["condition"] == "EventAgeExceeded")
    })
    .await;
    assert_eq!(
        deliveries(&out).iter().filter(|d| d["id"] == "old").count(),
        1,
        "an expired event is not attempted again"
    );
    let dl = json_body(
        &s.api
            .call("GET", "/stratus/v1/dead-letters?function=aging", &[], "")
            .await
            .unwrap(),
    );
    assert_eq!(dl["deadLetters"][0]["condition"], "EventAgeExceeded");
    assert_eq!(
        json_body(
            &s.api
                .call("GET", "/stratus/v1/async?function=aging", &[], "")
                .await
                .unwrap()
        )["pending"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_a_burst_loses_no_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let s = Server::start(&data, &["--sandbox", "process"]).await;
    create_recorder(&s, "burst", &out, json!({})).await;

    // 16 senders fire events; the server is SIGKILLed mid-burst.
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for sender in 0..16 {
        let api = s.api.clone();
        let accepted = accepted.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let id = sender * 1000 + i;
                let body = json!({"id": id, "sleepMs": 5}).to_string();
                match api
                    .call(
                        "POST",
                        "/2015-03-31/functions/burst/invocations",
                        &[("x-amz-invocation-type", "Event")],
                        body,
                    )
                    .await
                {
                    Ok(r) if r.status == 202 => accepted.lock().unwrap().push(id),
                    Ok(r) => panic!(
                        "unexpected {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ),
                    Err(_) => return, // the server is gone: not accepted
                }
            }
        }));
    }
    wait_for("a few hundred accepted events", || {
        accepted.lock().unwrap().len() >= 300
    })
    .await;
    let pid = s.child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let accepted: HashSet<i64> = accepted.lock().unwrap().iter().copied().collect();
    drop(s);

    let s = Server::start(&data, &["--sandbox", "process"]).await;
    wait_for("every accepted event delivered after the restart", || {
        let seen: HashSet<i64> = deliveries(&out)
            .iter()
            .filter_map(|d| d["id"].as_i64())
            .collect();
        accepted.is_subset(&seen)
    })
    .await;
    let all = deliveries(&out);
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for d in &all {
        *counts.entry(d["id"].as_i64().unwrap()).or_default() += 1;
    }
    let duplicates = counts.values().filter(|n| **n > 1).count();
    let dead = json_body(
        &s.api
            .call("GET", "/stratus/v1/dead-letters?function=burst", &[], "")
            .await
            .unwrap(),
    );
    println!(
        "accepted {}, delivered {} distinct ({} deliveries, {} delivered twice or more: at-least-once), dead-lettered {}",
        accepted.len(),
        counts.len(),
        all.len(),
        duplicates,
        dead["deadLetters"].as_array().unwrap().len()
    );
    assert!(accepted.len() >= 300);
}

async fn sqs(s: &Server, action: &str, body: Value) -> Value {
    let target = format!("AmazonSQS.{action}");
    let r = s
        .api
        .call(
            "POST",
            "/",
            &[
                ("x-amz-target", target.as_str()),
                ("content-type", "application/x-amz-json-1.0"),
            ],
            body.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        r.status,
        200,
        "{action}: {}",
        String::from_utf8_lossy(&r.body)
    );
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_destinations_and_dead_letter_queues_receive_records() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let s = Server::start(&dir.path().join("data"), &["--sandbox", "process"]).await;
    create_recorder(&s, "qrec", &out, json!({})).await;
    let ok_url = sqs(&s, "CreateQueue", json!({"QueueName": "successes"})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let dlq_url = sqs(&s, "CreateQueue", json!({"QueueName": "dead"})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let cfg = json!({"MaximumRetryAttempts": 0, "DestinationConfig": {"OnSuccess": {"Destination": "arn:aws:sqs:us-east-1:000000000000:successes"}}});
    let r = s
        .api
        .call(
            "PUT",
            "/2019-09-25/functions/qrec/event-invoke-config",
            &[],
            cfg.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = s
        .api
        .call(
            "PUT",
            "/2015-03-31/functions/qrec/configuration",
            &[],
            json!({"DeadLetterConfig": {"TargetArn": "arn:aws:sqs:us-east-1:000000000000:dead"}})
                .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    event(&s, "qrec", json!({"id": "fine"})).await;
    event(&s, "qrec", json!({"id": "broken", "failTimes": 3})).await;
    let receive = |url: String| {
        let s = &s;
        async move {
            let v = sqs(
                s,
                "ReceiveMessage",
                json!({"QueueUrl": url, "WaitTimeSeconds": 10, "MaxNumberOfMessages": 1}),
            )
            .await;
            let body = v["Messages"][0]["Body"]
                .as_str()
                .expect("a message")
                .to_string();
            serde_json::from_str::<Value>(&body).unwrap()
        }
    };
    let record = receive(ok_url).await;
    assert_eq!(record["requestContext"]["condition"], "Success");
    assert_eq!(record["requestPayload"]["id"], "fine");
    assert_eq!(record["responsePayload"], json!({"ok": "fine"}));
    let dead = receive(dlq_url).await;
    assert_eq!(
        dead,
        json!({"id": "broken", "failTimes": 3}),
        "the DLQ gets the original event"
    );
}
