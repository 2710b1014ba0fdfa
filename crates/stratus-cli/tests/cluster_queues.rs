//! SQS-compatible queues in a cluster (issue 11, part 5): three real `stratus
//! server` processes on one real PostgreSQL share their queues — create through
//! one node, send through another, receive through the third; concurrent
//! receivers on every node get each message once; a long poll on one node is woken
//! by a send through another; a dead-letter queue filled through one node is read
//! through another (`GET /stratus/v1/dead-letters?queue=`). And an SQS-triggered
//! function deployed through one node is polled by exactly one node, processes
//! every message sent through any node once, keeps processing after the node
//! polling it is SIGKILLed, and gets the mapping back when that node rejoins.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::{json, Value};

/// One SQS JSON-protocol action through `s`; the answer's body.
async fn sqs(s: &Server, action: &str, body: Value) -> Value {
    let target = format!("AmazonSQS.{action}");
    let r = s
        .api
        .call(
            "POST",
            "/",
            &[
                ("X-Amz-Target", target.as_str()),
                ("Content-Type", "application/x-amz-json-1.0"),
            ],
            body.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        r.status,
        200,
        "{action} through {}: {}",
        s.addr,
        String::from_utf8_lossy(&r.body)
    );
    json_body(&r)
}

fn bodies(v: &Value) -> Vec<String> {
    v["Messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| m["Body"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queues_are_one_set_across_the_nodes() {
    let cluster = Cluster::new();
    let n1 = cluster.node("n1").await;
    let n2 = cluster.node("n2").await;
    let n3 = cluster.node("n3").await;

    // Created through n1, sent to through n2, received through n3, deleted via n1.
    let url = sqs(
        &n1,
        "CreateQueue",
        json!({"QueueName": "shared", "Attributes": {"VisibilityTimeout": "300"}}),
    )
    .await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = sqs(&n3, "ListQueues", json!({})).await;
    assert_eq!(listed["QueueUrls"].as_array().unwrap().len(), 1, "{listed}");
    sqs(
        &n2,
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "hello"}),
    )
    .await;
    let got = sqs(
        &n3,
        "ReceiveMessage",
        json!({"QueueUrl": url, "MaxNumberOfMessages": 10}),
    )
    .await;
    assert_eq!(bodies(&got), ["hello"], "{got}");
    let handle = got["Messages"][0]["ReceiptHandle"].as_str().unwrap();
    sqs(
        &n1,
        "DeleteMessage",
        json!({"QueueUrl": url, "ReceiptHandle": handle}),
    )
    .await;
    let attrs = sqs(
        &n2,
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["All"]}),
    )
    .await;
    assert_eq!(attrs["Attributes"]["ApproximateNumberOfMessages"], "0");
    assert_eq!(
        attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"],
        "0"
    );

    // A long poll on n3 ends when a message is sent through n1.
    let poll = {
        let (api, url) = (n3.api.clone(), url.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let r = api
                .call(
                    "POST",
                    "/",
                    &[
                        ("X-Amz-Target", "AmazonSQS.ReceiveMessage"),
                        ("Content-Type", "application/x-amz-json-1.0"),
                    ],
                    json!({"QueueUrl": url, "WaitTimeSeconds": 15}).to_string(),
                )
                .await
                .unwrap();
            (json_body(&r), t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    sqs(
        &n1,
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "wake"}),
    )
    .await;
    let (got, _) = poll.await.unwrap();
    let woke = sent.elapsed();
    eprintln!("long poll on n3 woken by a send through n1 after {woke:?}");
    assert_eq!(bodies(&got), ["wake"], "{got}");
    assert!(woke < Duration::from_secs(10), "{woke:?}");
    let handle = got["Messages"][0]["ReceiptHandle"].as_str().unwrap();
    sqs(
        &n2,
        "DeleteMessage",
        json!({"QueueUrl": url, "ReceiptHandle": handle}),
    )
    .await;

    // 90 messages sent through the three nodes; nine receivers, three per node,
    // drain the queue at once: each message is received exactly once.
    let nodes = [&n1, &n2, &n3];
    let n = 90;
    for b in 0..n / 10 {
        let entries: Vec<Value> = (0..10)
            .map(|i| json!({"Id": format!("e{i}"), "MessageBody": format!("m{}", b * 10 + i)}))
            .collect();
        let r = sqs(
            nodes[b % 3],
            "SendMessageBatch",
            json!({"QueueUrl": url, "Entries": entries}),
        )
        .await;
        assert_eq!(r["Successful"].as_array().unwrap().len(), 10, "{r}");
    }
    let mut receivers = Vec::new();
    for i in 0..9 {
        let (api, url) = (nodes[i % 3].api.clone(), url.clone());
        receivers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let r = api
                    .call(
                        "POST",
                        "/",
                        &[
                            ("X-Amz-Target", "AmazonSQS.ReceiveMessage"),
                            ("Content-Type", "application/x-amz-json-1.0"),
                        ],
                        json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0})
                            .to_string(),
                    )
                    .await
                    .unwrap();
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                let b = bodies(&json_body(&r));
                if b.is_empty() {
                    return got;
                }
                got.extend(b);
            }
        }));
    }
    let mut all = Vec::new();
    for r in receivers {
        all.extend(r.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), n, "received {} for {n} sent", all.len());
    assert_eq!(distinct.len(), n, "a message was received twice");

    // A dead-letter queue filled through the nodes is read through another.
    let dlq = sqs(&n1, "CreateQueue", json!({"QueueName": "dead"})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let policy = json!({
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dead",
        "maxReceiveCount": 1
    })
    .to_string();
    let src = sqs(
        &n2,
        "CreateQueue",
        json!({"QueueName": "src", "Attributes": {"RedrivePolicy": policy}}),
    )
    .await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    sqs(
        &n3,
        "SendMessage",
        json!({"QueueUrl": src, "MessageBody": "poison"}),
    )
    .await;
    let first = sqs(
        &n1,
        "ReceiveMessage",
        json!({"QueueUrl": src, "VisibilityTimeout": 0}),
    )
    .await;
    assert_eq!(bodies(&first), ["poison"]);
    // Its second receive (another node) moves it instead.
    let second = sqs(&n2, "ReceiveMessage", json!({"QueueUrl": src})).await;
    assert!(bodies(&second).is_empty(), "{second}");
    let r = n3
        .api
        .call("GET", "/stratus/v1/dead-letters?queue=dead", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = json_body(&r);
    assert_eq!(v["deadLetterFor"], json!(["src"]), "{v:#}");
    assert_eq!(v["messages"][0]["body"], "poison", "{v:#}");
    assert_eq!(v["visible"], 1, "{v:#}");
    let _ = dlq;
}

const SERVICE: &str = r#"service: cq
provider:
  name: aws
  runtime: nodejs20.x
  environment:
    OUT: OUT_DIR
functions:
  worker:
    handler: h.worker
    events:
      - sqs:
          arn: !GetAtt Jobs.Arn
          batchSize: 5
resources:
  Resources:
    Jobs:
      Type: AWS::SQS::Queue
      Properties:
        QueueName: jobs
        VisibilityTimeout: 60
"#;

const HANDLER: &str = r#"
const fs = require('fs');
exports.worker = async (event) => {
  for (const r of event.Records) {
    fs.appendFileSync(process.env.OUT + '/seen.log', r.body + '\n');
  }
  return {};
};
"#;

/// How many times each body was processed.
fn seen(out: &Path) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in std::fs::read_to_string(out.join("seen.log"))
        .unwrap_or_default()
        .lines()
    {
        *m.entry(l.to_string()).or_default() += 1;
    }
    m
}

/// Which of the nodes (by data dir) last said it started polling `function`.
fn pollers(nodes: &[(&str, &Path)], function: &str) -> Vec<String> {
    nodes
        .iter()
        .filter(|(_, dir)| {
            let log = std::fs::read_to_string(dir.with_extension("server.log")).unwrap_or_default();
            let started = log
                .lines()
                .filter(|l| l.contains(function))
                .rfind(|l| l.contains("sqs poller started") || l.contains("sqs poller stopped"));
            started.is_some_and(|l| l.contains("sqs poller started"))
        })
        .map(|(id, _)| id.to_string())
        .collect()
}

async fn send_all(s: &Server, url: &str, bodies: impl Iterator<Item = String>) {
    for b in bodies {
        sqs(s, "SendMessage", json!({"QueueUrl": url, "MessageBody": b})).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sqs_mapping_is_polled_by_one_node_and_moves_when_it_dies() {
    let cluster = Cluster::new();
    let mut n1 = cluster.node("n1").await;
    let mut n2 = cluster.node("n2").await;
    let mut n3 = cluster.node("n3").await;
    let out = cluster.tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let svc = cluster.tmp.path().join("svc");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(
        svc.join("serverless.yml"),
        SERVICE.replace("OUT_DIR", out.to_str().unwrap()),
    )
    .unwrap();
    std::fs::write(svc.join("h.js"), HANDLER).unwrap();
    let o = stratus_ok(&svc, &ep(&n1), &["deploy"]).await;
    assert!(o.contains("cq-dev-worker (created"), "{o}");

    let dirs = [
        ("n1", n1.data_dir.clone()),
        ("n2", n2.data_dir.clone()),
        ("n3", n3.data_dir.clone()),
    ];
    let dirs: Vec<(&str, &Path)> = dirs.iter().map(|(i, d)| (*i, d.as_path())).collect();
    until(
        "one node polls the mapping",
        Duration::from_secs(20),
        || {
            let one = pollers(&dirs, "cq-dev-worker").len() == 1;
            async move { one }
        },
    )
    .await;
    // And it stays one (no second node picks it up as the others learn of it).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let owner = pollers(&dirs, "cq-dev-worker");
    assert_eq!(owner.len(), 1, "{owner:?}");
    let owner = owner[0].clone();
    eprintln!("the mapping is polled by {owner}");

    // 30 messages through the three nodes: each processed exactly once.
    let url = sqs(&n2, "GetQueueUrl", json!({"QueueName": "jobs"})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    send_all(&n1, &url, (0..10).map(|i| format!("a{i}"))).await;
    send_all(&n2, &url, (10..20).map(|i| format!("a{i}"))).await;
    send_all(&n3, &url, (20..30).map(|i| format!("a{i}"))).await;
    until("30 messages processed", Duration::from_secs(60), || {
        let done = seen(&out).len() >= 30;
        async move { done }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = seen(&out);
    for i in 0..30 {
        assert_eq!(s.get(&format!("a{i}")), Some(&1), "{s:?}");
    }

    // SIGKILL the polling node; messages sent through the others are still
    // processed, by the node the mapping moves to.
    let killed = Instant::now();
    let victim = match owner.as_str() {
        "n1" => &mut n1,
        "n2" => &mut n2,
        _ => &mut n3,
    };
    victim.child.start_kill().unwrap();
    victim.child.wait().await.unwrap();
    let survivors: Vec<&Server> = [("n1", &n1), ("n2", &n2), ("n3", &n3)]
        .into_iter()
        .filter(|(id, _)| *id != owner)
        .map(|(_, s)| s)
        .collect();
    send_all(survivors[0], &url, (0..10).map(|i| format!("b{i}"))).await;
    send_all(survivors[1], &url, (10..20).map(|i| format!("b{i}"))).await;
    let took = until(
        "messages sent after the kill processed",
        Duration::from_secs(60),
        || {
            let s = seen(&out);
            let done = (0..20).all(|i| s.contains_key(&format!("b{i}")));
            async move { done }
        },
    )
    .await;
    eprintln!(
        "after SIGKILL of {owner}: 20 messages processed {:?} after the kill",
        killed.elapsed().max(took)
    );
    let alive: Vec<(&str, &Path)> = dirs.iter().copied().filter(|(i, _)| *i != owner).collect();
    let now = pollers(&alive, "cq-dev-worker");
    assert_eq!(now.len(), 1, "{now:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = seen(&out);
    for i in 0..20 {
        assert_eq!(s.get(&format!("b{i}")), Some(&1), "{s:?}");
    }

    // The killed node restarts and rejoins: the mapping goes back to it (the same
    // hashing over the same nodes), and what is sent then is processed once.
    let back = cluster.node(&owner).await;
    until(
        "the mapping back on the restarted node",
        Duration::from_secs(30),
        || {
            let mine = pollers(&dirs, "cq-dev-worker") == [owner.clone()];
            async move { mine }
        },
    )
    .await;
    send_all(&back, &url, (0..10).map(|i| format!("c{i}"))).await;
    until(
        "messages sent after the rejoin processed",
        Duration::from_secs(60),
        || {
            let s = seen(&out);
            let done = (0..10).all(|i| s.contains_key(&format!("c{i}")));
            async move { done }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = seen(&out);
    assert_eq!(s.len(), 60, "{s:?}");
    assert!(s.values().all(|n| *n == 1), "{s:?}");
}

/// With JetStream async events, a function's dead-letter queue is an SQS queue:
/// in a cluster it is the shared one, so an event invoked through one node and
/// dead-lettered by whichever node delivered it is received through a third.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_async_dead_letter_lands_in_the_shared_queue() {
    let cluster = Cluster::new();
    let n1 = cluster.node("n1").await;
    let n2 = cluster.node("n2").await;
    let n3 = cluster.node("n3").await;
    let url = sqs(&n1, "CreateQueue", json!({"QueueName": "async-dlq"})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let js = b"exports.handler = async () => { throw new Error('boom'); };\n";
    n1.create_ok(
        "fails",
        "nodejs20.x",
        "index.handler",
        &raw_zip(&[("index.js", js)]),
        json!({"DeadLetterConfig": {"TargetArn": "arn:aws:sqs:us-east-1:000000000000:async-dlq"}}),
    )
    .await;
    let r = n1
        .api
        .call(
            "PUT",
            "/2019-09-25/functions/fails/event-invoke-config",
            &[],
            json!({"MaximumRetryAttempts": 0}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let api2 = n2.api.clone();
    until(
        "n2 sees the function's retry setting",
        Duration::from_secs(10),
        || {
            let api = api2.clone();
            async move {
                let r = api
                    .call(
                        "GET",
                        "/2019-09-25/functions/fails/event-invoke-config",
                        &[],
                        "",
                    )
                    .await
                    .unwrap();
                r.status == 200 && json_body(&r)["MaximumRetryAttempts"] == 0
            }
        },
    )
    .await;
    let r = event(&n2, "fails", json!({"id": "lost-cause"})).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let t = Instant::now();
    let got = loop {
        let got = sqs(
            &n3,
            "ReceiveMessage",
            json!({"QueueUrl": url, "WaitTimeSeconds": 5, "MessageAttributeNames": ["All"]}),
        )
        .await;
        if !bodies(&got).is_empty() {
            break got;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the failed event never reached the dead-letter queue"
        );
    };
    let body: Value = serde_json::from_str(&bodies(&got)[0]).unwrap();
    assert_eq!(body, json!({"id": "lost-cause"}));
}
