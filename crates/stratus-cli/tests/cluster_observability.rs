//! Issue 11, part 6 end to end: three real nodes (real PostgreSQL and NATS), a
//! function invoked through n2 and n3, its logs and metrics read through n1 —
//! `stratus logs`, `aws logs filter-log-events` (paged two events at a time),
//! DescribeLogStreams and GetLogEvents, CloudWatch metric sums, `/metrics` with node
//! labels — then a node SIGKILLed and the query through the others still answering.
//! Also: an event-invoke config changed through n1 is applied by every node's async
//! delivery (the configs are served from memory, refreshed by the change feed).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::*;
use common::*;
use serde_json::{json, Value};

const SERVERLESS: &str = "service: obs
frameworkVersion: '3'
provider:
  name: aws
  runtime: nodejs20.x
functions:
  marker:
    handler: index.handler
  dest:
    handler: index.dest
";

const HANDLER: &str = r#"exports.handler = async (event) => {
  console.log(`MARK ${event.tag}`);
  return { tag: event.tag };
};
exports.dest = async (record) => {
  console.log(`DEST ${record.requestPayload && record.requestPayload.tag}`);
  return {};
};
"#;

const MARKER: &str = "obs-dev-marker";
const DEST: &str = "obs-dev-dest";

/// Runs `aws SERVICE ARGS` against `s` (AWS CLI v1 on PATH), returning its JSON.
async fn aws(s: &Server, args: &[&str]) -> Value {
    let out = tokio::process::Command::new("aws")
        .args(args)
        .args([
            "--endpoint-url",
            &ep(s),
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            s.data_dir.join("credentials"),
        )
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .await
        .expect("run the AWS CLI (installed by scripts/test)");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `aws logs tail GROUP --since 1h` of the AWS CLI v2 (Debian's, run as
/// `tests/observability.rs` runs it: only Debian's packages importable) through `s`.
async fn aws_v2_tail(s: &Server, group: &str) -> String {
    let out = tokio::process::Command::new("/usr/bin/python3")
        .args(["-S", "/usr/bin/aws", "logs", "tail", group, "--since", "1h"])
        .args(["--endpoint-url", &ep(s), "--region", "us-east-1"])
        .env("PYTHONPATH", "/usr/lib/python3/dist-packages")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            s.data_dir.join("credentials"),
        )
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_PAGER", "")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("PYTHONHOME")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run AWS CLI v2 (/usr/bin/aws, installed by scripts/test)");
    assert!(
        out.status.success(),
        "aws logs tail: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A CloudWatch Logs call through `s` (JSON 1.1), its status, unreachable nodes and body.
async fn logs_call(s: &Server, op: &str, body: Value) -> (u16, Option<String>, Value) {
    logs_call_with(s, op, body, &[]).await
}

async fn logs_call_with(
    s: &Server,
    op: &str,
    body: Value,
    extra: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let target = format!("Logs_20140328.{op}");
    let mut headers = vec![
        ("x-amz-target", target.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
    ];
    headers.extend_from_slice(extra);
    let r = s
        .api
        .call("POST", "/", &headers, body.to_string())
        .await
        .unwrap();
    let unreachable = r.header("x-stratus-unreachable-nodes").map(str::to_string);
    (
        r.status,
        unreachable,
        serde_json::from_slice(&r.body).unwrap(),
    )
}

/// The `MARK …` lines of `function` `/stratus/v1/logs` returns through `s`, with
/// `headers` (e.g. the local-only marker).
async fn native_lines(s: &Server, function: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let r = s
        .api
        .call(
            "GET",
            &format!("/stratus/v1/logs?function={function}&limit=10000"),
            headers,
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    json_body(&r)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().trim_end().to_string())
        .collect()
}

fn marks(lines: &[String], prefix: &str) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|l| l.split_once(prefix).map(|(_, t)| t.trim().to_string()))
        .collect()
}

fn tags(range: std::ops::Range<usize>, node: &str) -> Vec<String> {
    range.map(|i| format!("{node}-{i}")).collect()
}

async fn wait_for_function(s: &Server, name: &str) {
    let api = s.api.clone();
    let path = format!("/2015-03-31/functions/{name}");
    until(name, Duration::from_secs(15), || {
        let (api, path) = (api.clone(), path.clone());
        async move { api.call("GET", &path, &[], "").await.unwrap().status == 200 }
    })
    .await;
}

/// The Sum of `Invocations` of `function` over the last 15 minutes through `s`.
async fn invocations_sum(s: &Server, function: &str) -> f64 {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (start, end) = ((now - 900).to_string(), (now + 60).to_string());
    let v = aws(
        s,
        &[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "AWS/Lambda",
            "--metric-name",
            "Invocations",
            "--dimensions",
            &format!("Name=FunctionName,Value={function}"),
            "--start-time",
            &start,
            "--end-time",
            &end,
            "--period",
            "60",
            "--statistics",
            "Sum",
        ],
    )
    .await;
    v["Datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Sum"].as_f64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_and_metrics_of_every_node_read_through_any_node() {
    let c = Cluster::new();
    let n1 = c.node("n1").await;
    let n2 = c.node("n2").await;
    let mut n3 = c.node("n3").await;

    let svc = c.tmp.path().join("svc");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(svc.join("serverless.yml"), SERVERLESS).unwrap();
    std::fs::write(svc.join("index.js"), HANDLER).unwrap();
    let out = stratus_ok(&svc, &ep(&n1), &["deploy"]).await;
    assert!(out.contains(MARKER), "{out}");
    wait_for_function(&n2, MARKER).await;
    wait_for_function(&n3, MARKER).await;

    // Invoked through n2 and n3 only: n1 ran nothing.
    let (on2, on3) = (tags(0..4, "n2"), tags(0..4, "n3"));
    for (s, list) in [(&n2, &on2), (&n3, &on3)] {
        for t in list {
            let r = s.invoke(MARKER, &json!({ "tag": t }).to_string()).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        }
    }
    let all: BTreeSet<String> = on2.iter().chain(&on3).cloned().collect();

    // n1's own logs hold none of them; read through n1, the cluster's hold all.
    let local = native_lines(&n1, MARKER, &[("x-stratus-fanout", "local")]).await;
    assert!(marks(&local, "MARK ").is_empty(), "{local:?}");
    let api1 = n1.api.clone();
    until(
        "every node's lines through n1",
        Duration::from_secs(10),
        || {
            let (api, all) = (api1.clone(), all.clone());
            async move {
                let r = api
                    .call(
                        "GET",
                        &format!("/stratus/v1/logs?function={MARKER}&limit=10000"),
                        &[],
                        "",
                    )
                    .await
                    .unwrap();
                let v = json_body(&r);
                let lines: Vec<String> = v["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["message"].as_str().unwrap().to_string())
                    .collect();
                marks(&lines, "MARK ") == all
            }
        },
    )
    .await;

    // `stratus logs` through n1 prints both nodes' lines, each once.
    let out = stratus_ok(&svc, &ep(&n1), &["logs", "-f", "marker"]).await;
    let printed: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(marks(&printed, "MARK "), all, "{out}");
    for t in &all {
        assert_eq!(count(&printed, &format!("MARK {t}")), 1, "{out}");
    }

    // `aws logs tail` (AWS CLI v2, which drops events it has seen by eventId)
    // through n1: both nodes' lines, each once.
    let group = format!("/aws/lambda/{MARKER}");
    let out = aws_v2_tail(&n1, &group).await;
    let printed: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(marks(&printed, "MARK "), all, "{out}");
    for t in &all {
        assert_eq!(count(&printed, &format!("MARK {t}")), 1, "{out}");
    }

    // `aws logs filter-log-events` through n1, two events a page: every page's
    // token holds each node's position; every line comes exactly once.
    let v = aws(
        &n1,
        &[
            "logs",
            "filter-log-events",
            "--log-group-name",
            &group,
            "--filter-pattern",
            "MARK",
            "--page-size",
            "2",
        ],
    )
    .await;
    let events = v["events"].as_array().unwrap();
    let lines: Vec<String> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(lines.len(), all.len(), "each line once: {lines:#?}");
    assert_eq!(marks(&lines, "MARK "), all);
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|e| e["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len(), "event ids are unique across nodes");
    // The token itself, page by page through the API.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({ "logGroupName": group, "filterPattern": "MARK", "limit": 3 });
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let (status, _, v) = logs_call(&n1, "FilterLogEvents", body).await;
        assert_eq!(status, 200, "{v}");
        pages += 1;
        assert!(v["events"].as_array().unwrap().len() <= 3, "{v}");
        for e in v["events"].as_array().unwrap() {
            seen.push(e["message"].as_str().unwrap().to_string());
        }
        match v["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
        assert!(pages < 20, "pagination ends");
    }
    assert!(pages >= 3, "{pages} pages of at most 3 for 8 lines");
    assert_eq!(seen.len(), all.len(), "{seen:#?}");
    assert_eq!(marks(&seen, "MARK "), all);

    // What a fanned-out read costs (printed, not asserted): FilterLogEvents through
    // n1 asking n2 and n3, against n1 answering alone.
    for (what, extra) in [
        ("fan-out to 2 nodes", &[][..]),
        ("local only", &[("x-stratus-fanout", "local")][..]),
    ] {
        let mut took = Vec::new();
        for _ in 0..20 {
            let t0 = std::time::Instant::now();
            let (status, _, _) = logs_call_with(
                &n1,
                "FilterLogEvents",
                json!({ "logGroupName": group, "limit": 100 }),
                extra,
            )
            .await;
            took.push(t0.elapsed());
            assert!(status == 200 || status == 400);
        }
        took.sort();
        eprintln!(
            "FilterLogEvents through n1, {what}: p50 {:?}, max {:?} (20 calls)",
            took[10], took[19]
        );
    }

    // DescribeLogStreams through n1 lists both nodes' streams; GetLogEvents through
    // n1 reads a stream that lives on n2.
    let (status, _, v) = logs_call(
        &n1,
        "DescribeLogStreams",
        json!({ "logGroupName": group, "orderBy": "LastEventTime", "descending": true }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let streams: Vec<String> = v["logStreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["logStreamName"].as_str().unwrap().to_string())
        .collect();
    assert!(streams.len() >= 2, "a stream of n2 and one of n3: {v}");
    let on_n2 = {
        let (_, _, v) = logs_call_with(
            &n2,
            "DescribeLogStreams",
            json!({ "logGroupName": group }),
            &[("x-stratus-fanout", "local")],
        )
        .await;
        v["logStreams"][0]["logStreamName"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(streams.contains(&on_n2), "{streams:?} lacks {on_n2}");
    let (status, _, v) = logs_call(
        &n1,
        "GetLogEvents",
        json!({ "logGroupName": group, "logStreamName": on_n2, "startFromHead": true }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let got: Vec<String> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert!(!marks(&got, "MARK ").is_empty(), "{got:?}");
    assert!(
        marks(&got, "MARK ").iter().all(|t| t.starts_with("n2-")),
        "{got:?}"
    );

    // CloudWatch metrics through n1 (which ran none): the cluster's total.
    let sum = invocations_sum(&n1, MARKER).await;
    assert_eq!(sum, all.len() as f64, "Invocations Sum through n1");
    // The dashboard's series (and `stratus metrics`) through n1: the same total.
    let r = n1
        .api
        .call(
            "GET",
            &format!("/stratus/v1/metrics/series?function={MARKER}&minutes=30"),
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let total: f64 = json_body(&r)["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Invocations"].as_f64().unwrap())
        .sum();
    assert_eq!(total, all.len() as f64, "series through n1");
    let only_n1 = n1
        .api
        .call(
            "POST",
            "/",
            &[
                ("x-amz-target", "GraniteServiceVersion20100801.ListMetrics"),
                ("content-type", "application/x-amz-json-1.0"),
            ],
            json!({ "Namespace": "AWS/Lambda", "MetricName": "Invocations" }).to_string(),
        )
        .await
        .unwrap();
    let listed = json_body(&only_n1)["Metrics"].to_string();
    assert!(listed.contains(MARKER), "ListMetrics through n1: {listed}");
    // GetMetricData: Sum and a weighted Average of Duration over both nodes.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let queries = json!([
        {"Id": "inv", "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": "Invocations",
            "Dimensions": [{"Name": "FunctionName", "Value": MARKER}]}, "Period": 3600, "Stat": "Sum"}},
        {"Id": "dur", "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": "Duration",
            "Dimensions": [{"Name": "FunctionName", "Value": MARKER}]}, "Period": 3600, "Stat": "SampleCount"}}
    ]);
    let v = aws(
        &n1,
        &[
            "cloudwatch",
            "get-metric-data",
            "--metric-data-queries",
            &queries.to_string(),
            "--start-time",
            &(now - 3600).to_string(),
            "--end-time",
            &(now + 60).to_string(),
        ],
    )
    .await;
    for r in v["MetricDataResults"].as_array().unwrap() {
        let total: f64 = r["Values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum();
        assert_eq!(total, all.len() as f64, "{}: {v}", r["Id"]);
    }

    // `/metrics` stays per node, every series labelled with it.
    for (s, id) in [(&n1, "n1"), (&n2, "n2")] {
        let r = s.api.call("GET", "/metrics", &[], "").await.unwrap();
        let text = String::from_utf8_lossy(&r.body).to_string();
        let label = format!("node=\"{id}\"");
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(!samples.is_empty());
        assert!(samples.iter().all(|l| l.contains(&label)), "{text}");
        if id == "n2" {
            assert!(
                text.contains(&format!(
                    "stratus_lambda_invocations_total{{{label},function_name=\"{MARKER}\""
                )),
                "{text}"
            );
        }
    }

    // An event-invoke config set through n1 applies to every node's deliveries:
    // first events (so every node reads and keeps "no config"), then an OnSuccess
    // destination through n1, then events through n2 and n3 — each success goes to
    // the destination, whichever node delivers it.
    wait_for_function(&n2, DEST).await;
    wait_for_function(&n3, DEST).await;
    for (i, s) in [&n2, &n3, &n2, &n3, &n2, &n3].into_iter().enumerate() {
        let r = event(s, MARKER, json!({ "tag": format!("before-{i}") })).await;
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    }
    until(
        "the first events delivered",
        Duration::from_secs(20),
        || {
            let api = n1.api.clone();
            async move {
                let r = api
                    .call(
                        "GET",
                        &format!("/stratus/v1/logs?function={MARKER}&limit=10000&filter=before-"),
                        &[],
                        "",
                    )
                    .await
                    .unwrap();
                json_body(&r)["events"].as_array().unwrap().len() >= 6
            }
        },
    )
    .await;
    let arn = format!("arn:aws:lambda:us-east-1:000000000000:function:{DEST}");
    let cfg = json!({ "DestinationConfig": { "OnSuccess": { "Destination": arn } } });
    let r = n1
        .api
        .call(
            "PUT",
            &format!("/2019-09-25/functions/{MARKER}/event-invoke-config"),
            &[],
            cfg.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The change feed reaches the other nodes within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after: Vec<String> = (0..6).map(|i| format!("after-{i}")).collect();
    for (i, t) in after.iter().enumerate() {
        let s = if i % 2 == 0 { &n2 } else { &n3 };
        let r = event(s, MARKER, json!({ "tag": t })).await;
        assert_eq!(r.status, 202);
    }
    let want: BTreeSet<String> = after.iter().cloned().collect();
    let api1 = n1.api.clone();
    until(
        "every success sent to the destination",
        Duration::from_secs(30),
        || {
            let (api, want) = (api1.clone(), want.clone());
            async move {
                let r = api
                    .call(
                        "GET",
                        &format!("/stratus/v1/logs?function={DEST}&limit=10000"),
                        &[],
                        "",
                    )
                    .await
                    .unwrap();
                let lines: Vec<String> = json_body(&r)["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["message"].as_str().unwrap().to_string())
                    .collect();
                marks(&lines, "DEST ") == want
            }
        },
    )
    .await;

    // SIGKILL n3: a query through n1 answers at once, without n3's lines, and says
    // which node it left out (n3 still looks healthy for a few seconds).
    n3.child.start_kill().unwrap();
    let _ = n3.child.wait().await;
    let r = n1
        .api
        .call(
            "GET",
            &format!("/stratus/v1/logs?function={MARKER}&limit=10000"),
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let left_out = r
        .header("x-stratus-unreachable-nodes")
        .unwrap_or("")
        .to_string();
    let lines: Vec<String> = json_body(&r)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    let got = marks(&lines, "MARK ");
    assert!(on2.iter().all(|t| got.contains(t)), "{got:?}");
    assert!(on3.iter().all(|t| !got.contains(t)), "{got:?}");
    assert_eq!(left_out, "n3", "the answer names the node left out");
    let (status, _, v) = logs_call(
        &n2,
        "FilterLogEvents",
        json!({ "logGroupName": group, "filterPattern": "MARK" }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["nextToken"].is_null(),
        "a dead node does not keep the query open: {v}"
    );
    // Once n3 is dead by its heartbeat, it is not asked at all.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, unreachable, v) = logs_call(
        &n1,
        "FilterLogEvents",
        json!({ "logGroupName": group, "filterPattern": "MARK" }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(unreachable, None, "{v}");
    let sum = invocations_sum(&n1, MARKER).await;
    assert!(
        sum >= on2.len() as f64,
        "n1 and n2's invocations still count: {sum}"
    );
    drop(n2);
    drop(n1);
}
