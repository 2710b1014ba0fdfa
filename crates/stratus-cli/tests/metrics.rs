//! Metrics end to end: invocations recorded and rolled up per minute, read back
//! through the dashboard series, `GET /metrics` (Prometheus), the real boto3
//! `cloudwatch` client and AWS CLI (RPC v2 CBOR), `stratus metrics`, and after a
//! restart of the server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::{json, Value};

async fn get(s: &Server, path: &str) -> (u16, String) {
    let r = s.api.call("GET", path, &[], "").await.unwrap();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

async fn series(s: &Server, query: &str) -> Value {
    let (status, body) = get(s, &format!("/stratus/v1/metrics/series?{query}")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn total(v: &Value, field: &str) -> f64 {
    v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[field].as_f64().unwrap_or(0.0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_recorded_read_in_every_form_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]).await;
    s.create_ok(
        "m",
        "python3.11",
        "app.handler",
        &fixture_zip("python"),
        json!({}),
    )
    .await;
    for payload in [r#"{"a":1}"#, r#"{"action":"error"}"#, r#"{"a":2}"#] {
        assert_eq!(s.invoke("m", payload).await.status, 200);
    }
    let v = s.publish("m").await;
    assert_eq!(s.invoke(&format!("m:{v}"), "{}").await.status, 200);

    // The dashboard series: every minute present, the current one last.
    let m = series(&s, "function=m&minutes=5").await;
    assert_eq!(m["function"], "m");
    assert_eq!(m["qualifier"], Value::Null);
    assert_eq!(m["period"], 60);
    let points = m["points"].as_array().unwrap();
    assert_eq!(points.len(), 5, "{m}");
    for w in points.windows(2) {
        assert_eq!(
            w[1]["timestamp"].as_i64().unwrap() - w[0]["timestamp"].as_i64().unwrap(),
            60
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let last = points.last().unwrap()["timestamp"].as_i64().unwrap();
    assert!(now - last < 60 && now >= last, "{now} {last}");
    assert_eq!(total(&m, "Invocations"), 4.0, "{m}");
    assert_eq!(total(&m, "Errors"), 1.0, "{m}");
    assert!(total(&m, "ColdStarts") >= 2.0, "{m}"); // $LATEST and version 1
    let busy = points
        .iter()
        .find(|p| p["Invocations"].as_f64().unwrap() > 0.0)
        .unwrap();
    assert!(busy["DurationP99"].as_f64().unwrap() > 0.0, "{busy}");
    assert!(busy["InitDurationAvg"].as_f64().unwrap() > 0.0, "{busy}");
    assert_eq!(points[0]["DurationAvg"], Value::Null, "{m}");
    let q = series(&s, &format!("function=m&qualifier={v}&minutes=2")).await;
    assert_eq!(total(&q, "Invocations"), 1.0, "{q}");
    let all = series(&s, "minutes=3").await;
    assert_eq!(all["function"], Value::Null);
    assert_eq!(total(&all, "Invocations"), 4.0, "{all}");
    let (status, body) = get(&s, "/stratus/v1/metrics/series?function=m&minutes=0").await;
    assert_eq!(status, 400, "{body}");
    // The older counters answer as before.
    let (_, old) = get(&s, "/stratus/v1/metrics?function=m").await;
    assert_eq!(
        serde_json::from_str::<Value>(&old).unwrap()["invocations"],
        4
    );

    // Prometheus, signed (no --metrics-open).
    let (status, text) = get(&s, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(r#"stratus_lambda_invocations_total{function_name="m",resource=""} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"stratus_lambda_errors_total{function_name="m",resource=""} 1"#),
        "{text}"
    );
    assert!(
        text.contains("stratus_lambda_duration_seconds_bucket{"),
        "{text}"
    );
    for p in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(text.contains(p), "{p}: {text}");
    }
    let unsigned = unsigned_get(&s, "/metrics").await;
    assert_eq!(unsigned.0, 403, "{}", unsigned.1);

    // The real boto3 cloudwatch client and the AWS CLI.
    run_sdk_script(
        &s,
        "boto3_cloudwatch.py",
        "boto3 cloudwatch: all checks passed",
    )
    .await;
    let out = tokio::process::Command::new("aws")
        .args(["cloudwatch", "get-metric-statistics", "--endpoint-url"])
        .arg(format!("http://{}", s.addr))
        .args(["--region", "us-east-1", "--namespace", "AWS/Lambda"])
        .args([
            "--metric-name",
            "Invocations",
            "--dimensions",
            "Name=FunctionName,Value=m",
        ])
        .args([
            "--start-time",
            &(now - 3600).to_string(),
            "--end-time",
            &(now + 60).to_string(),
        ])
        .args([
            "--period",
            "7200",
            "--statistics",
            "Sum",
            "--output",
            "json",
        ])
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            s.data_dir.join("credentials"),
        )
        .output()
        .await
        .expect("run the AWS CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["Datapoints"][0]["Sum"], 4.0, "{cli}");

    // `stratus metrics`, as `serverless metrics` prints it.
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("serverless.yml"),
        "service: svc\nprovider:\n  name: aws\n  runtime: python3.11\nfunctions:\n  hello:\n    handler: app.handler\n    name: m\n  other:\n    handler: app.handler\n",
    )
    .unwrap();
    let endpoint = format!("http://{}", s.addr);
    let out = stratus_ok(&project, &endpoint, &["metrics"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Service wide metrics", "{out}");
    assert!(
        lines[1].contains(" - ") && lines[1].contains(" PM") || lines[1].contains(" AM"),
        "{out}"
    );
    assert_eq!(lines[2], "", "{out}");
    assert_eq!(
        &lines[3..6],
        ["invocations: 4", "throttles: 0", "errors: 1"],
        "{out}"
    );
    assert!(
        lines[6].starts_with("duration (avg.): ") && lines[6].ends_with("ms"),
        "{out}"
    );
    let out = stratus_ok(
        &project,
        &endpoint,
        &["metrics", "-f", "hello", "--startTime", "30m", "--json"],
    )
    .await;
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (j["invocations"].as_u64(), j["errors"].as_u64()),
        (Some(4), Some(1)),
        "{j}"
    );
    let out = stratus_ok(
        &project,
        &endpoint,
        &[
            "metrics",
            "-f",
            "hello",
            "--startTime",
            "2000-01-01",
            "--endTime",
            "2000-01-02",
        ],
    )
    .await;
    assert!(out.contains("invocations: 0"), "{out}");
    let bad = stratus_cmd(
        &project,
        &endpoint,
        &["metrics", "--startTime", "yesterday"],
    )
    .await;
    assert!(!bad.status.success());
    assert!(
        output_text(&bad).contains("--startTime \"yesterday\""),
        "{}",
        output_text(&bad)
    );

    // A restart keeps the minutes; with --metrics-open Prometheus needs no signature.
    assert!(s.terminate().await.success());
    let s = Server::start(&data, &["--metrics-open", "--metrics-retention", "2d"]).await;
    let m = series(&s, "function=m&minutes=10").await;
    assert_eq!(total(&m, "Invocations"), 4.0, "{m}");
    let (status, text) = unsigned_get(&s, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("process_open_fds "), "{text}");
    // Everything else stays signed.
    let (status, _) = unsigned_get(&s, "/stratus/v1/metrics/series").await;
    assert_eq!(status, 403);
}

/// An unsigned GET, on a bare connection (the CLI's client refuses to send one).
async fn unsigned_get(s: &Server, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    c.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            s.addr
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn call(s: &Server, method: &str, path: &str, body: Value) -> Value {
    let r = s
        .api
        .call(method, path, &[], body.to_string())
        .await
        .unwrap();
    assert!(
        r.status < 300,
        "{method} {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_throttle_async_and_queue_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &["--async-retry-delay", "0"]).await;
    let zip = fixture_zip("python");
    s.create_ok("p", "python3.11", "app.handler", &zip, json!({}))
        .await;
    let v = s.publish("p").await;
    call(
        &s,
        "POST",
        "/2015-03-31/functions/p/aliases",
        json!({"Name": "live", "FunctionVersion": v}),
    )
    .await;
    s.provision("p", "live", 2).await;

    // Two on provisioned environments one after the other, then three at once for
    // 1.5 s: two provisioned (utilization 1.0, sampled every second), one spills over.
    for _ in 0..2 {
        assert_eq!(s.invoke("p:live", "{}").await.status, 200);
    }
    let replies = s
        .invoke_concurrently("p:live", r#"{"action":"sleep","ms":1500}"#, 3)
        .await;
    assert!(replies.iter().all(|r| r.status == 200));
    let live = series(&s, "function=p&qualifier=live&minutes=2").await;
    assert_eq!(total(&live, "Invocations"), 5.0, "{live}");
    assert_eq!(
        total(&live, "ProvisionedConcurrencyInvocations"),
        4.0,
        "{live}"
    );
    assert_eq!(
        total(&live, "ProvisionedConcurrencySpilloverInvocations"),
        1.0,
        "{live}"
    );
    let max = |v: &Value, f: &str| {
        v["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p[f].as_f64())
            .fold(0.0, f64::max)
    };
    assert_eq!(
        max(&live, "ProvisionedConcurrencyUtilizationMax"),
        1.0,
        "{live}"
    );
    assert_eq!(
        max(&live, "ProvisionedConcurrentExecutionsMax"),
        2.0,
        "{live}"
    );
    let p = series(&s, "function=p&minutes=2").await;
    assert_eq!(max(&p, "ConcurrentExecutionsMax"), 3.0, "{p}");
    assert_eq!(total(&p, "ColdStarts"), 1.0, "{p}"); // the spill-over only

    // Throttles: reserved concurrency 0 refuses every call, and none is an invocation.
    s.create_ok("t", "python3.11", "app.handler", &zip, json!({}))
        .await;
    call(
        &s,
        "PUT",
        "/2017-10-31/functions/t/concurrency",
        json!({"ReservedConcurrentExecutions": 0}),
    )
    .await;
    assert_eq!(s.invoke("t", "{}").await.status, 429);
    let t = series(&s, "function=t&minutes=2").await;
    assert_eq!(
        (total(&t, "Throttles"), total(&t, "Invocations")),
        (1.0, 0.0),
        "{t}"
    );

    // Async: received, then dropped after its only attempt fails; its failure
    // destination and dead-letter queue do not exist, so both deliveries fail.
    let nowhere = "arn:aws:lambda:us-east-1:000000000000:function:nowhere";
    call(
        &s,
        "PUT",
        "/2019-09-25/functions/p/event-invoke-config",
        json!({"MaximumRetryAttempts": 0, "DestinationConfig": {"OnFailure": {"Destination": nowhere}}}),
    )
    .await;
    call(
        &s,
        "PUT",
        "/2015-03-31/functions/p/configuration",
        json!({"DeadLetterConfig": {"TargetArn": "arn:aws:sqs:us-east-1:000000000000:missing"}}),
    )
    .await;
    for payload in ["{}", r#"{"action":"error"}"#] {
        let r = s
            .api
            .call(
                "POST",
                "/2015-03-31/functions/p/invocations",
                &[("x-amz-invocation-type", "Event")],
                payload.to_string(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 202);
    }
    let mut a = Value::Null;
    for _ in 0..100 {
        a = series(&s, "function=p&minutes=2").await;
        if total(&a, "AsyncEventsDropped") >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(total(&a, "AsyncEventsReceived"), 2.0, "{a}");
    assert_eq!(total(&a, "AsyncEventsDropped"), 1.0, "{a}");
    assert_eq!(total(&a, "DeadLetterErrors"), 1.0, "{a}");
    let (_, prom) = get(&s, "/metrics").await;
    assert!(
        prom.contains(
            r#"stratus_lambda_async_events_dropped_total{function_name="p",resource=""} 1"#
        ),
        "{prom}"
    );
    assert!(
        prom.contains(r#"stratus_lambda_provisioned_concurrency_utilization{function_name="p",resource="p:live"}"#),
        "{prom}"
    );
    assert!(
        prom.contains(
            r#"stratus_lambda_destination_delivery_failures_total{function_name="p",resource=""} 1"#
        ),
        "{prom}"
    );
    assert!(
        prom.contains("stratus_lambda_async_event_age_seconds_count{"),
        "{prom}"
    );

    // Queues, through boto3's sqs and cloudwatch clients.
    run_sdk_script(
        &s,
        "boto3_sqs_metrics.py",
        "boto3 sqs metrics: all checks passed",
    )
    .await;
}
