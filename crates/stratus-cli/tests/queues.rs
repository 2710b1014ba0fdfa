//! Queues from serverless.yml `resources`, the SQS JSON protocol on the Lambda
//! listener, `stratus queue`, and `sqs` event sources: batches, deletion on success,
//! redrive to the dead-letter queue, partial batch failures.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

use common::stratus_ok as stratus;
use serde_json::Value;

const SERVICE: &str = r#"service: qs
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
          functionResponseType: ReportBatchItemFailures
resources:
  Resources:
    Jobs:
      Type: AWS::SQS::Queue
      Properties:
        QueueName: jobs
        VisibilityTimeout: 1
        RedrivePolicy:
          deadLetterTargetArn:
            Fn::GetAtt: [JobsDlq, Arn]
          maxReceiveCount: 2
    JobsDlq:
      Type: AWS::SQS::Queue
      Properties:
        QueueName: jobs-dlq
"#;

const HANDLER: &str = r#"
const fs = require('fs');
exports.worker = async (event) => {
  const failures = [];
  for (const r of event.Records) {
    fs.appendFileSync(process.env.OUT + '/seen.log', JSON.stringify({ body: r.body, source: r.eventSource, arn: r.eventSourceARN, count: r.attributes.ApproximateReceiveCount }) + '\n');
    if (r.body.startsWith('poison')) failures.push({ itemIdentifier: r.messageId });
  }
  return { batchItemFailures: failures };
};
"#;

fn seen(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("seen.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_events_process_batches_redrive_and_report_item_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // The function records into a host directory the test reads: only the `process`
    // driver shows it the host.
    let s = Server::start(&tmp.path().join("data"), &["--sandbox", "process"]).await;
    let ep = format!("http://{}", s.addr);
    let dir = tmp.path().join("svc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("serverless.yml"),
        SERVICE.replace("OUT_DIR", out.to_str().unwrap()),
    )
    .unwrap();
    std::fs::write(dir.join("h.js"), HANDLER).unwrap();
    let o = stratus(&dir, &ep, &["deploy", "--verbose"]).await;
    assert!(o.contains("qs-dev-worker (created"), "{o}");
    let list = stratus(&dir, &ep, &["queue", "list"]).await;
    assert!(
        list.contains("/000000000000/jobs\n") && list.contains("/000000000000/jobs-dlq"),
        "{list}"
    );

    for i in 0..6 {
        stratus(&dir, &ep, &["queue", "send", "jobs", &format!("job-{i}")]).await;
    }
    stratus(&dir, &ep, &["queue", "send", "jobs", "poison-1"]).await;
    let t = Instant::now();
    loop {
        let s = seen(&out);
        let jobs = s
            .iter()
            .filter(|v| v["body"].as_str().unwrap().starts_with("job-"))
            .count();
        let poison = s.iter().filter(|v| v["body"] == "poison-1").count();
        if jobs >= 6 && poison >= 2 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(40), "{s:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = seen(&out);
    let first = &all[0];
    assert_eq!(first["source"], "aws:sqs");
    assert_eq!(first["arn"], "arn:aws:sqs:us-east-1:000000000000:jobs");
    // Every good job processed once (deleted after success; only the poison message
    // was reported as failed and came back).
    for i in 0..6 {
        assert_eq!(
            all.iter()
                .filter(|v| v["body"] == format!("job-{i}"))
                .count(),
            1,
            "{all:#?}"
        );
    }
    // After maxReceiveCount (2) receives the poison message moves to the DLQ.
    let t = Instant::now();
    let dead = loop {
        let r = stratus(&dir, &ep, &["queue", "receive", "jobs-dlq", "--wait", "1"]).await;
        if r.contains("poison-1") {
            break r;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the poison message never reached the DLQ"
        );
    };
    let msg: Value = serde_json::from_str(dead.lines().next().unwrap()).unwrap();
    assert_eq!(msg["Body"], "poison-1");
    assert_eq!(
        seen(&out)
            .iter()
            .filter(|v| v["body"] == "poison-1")
            .count(),
        2
    );

    // boto3 talks to the same listener.
    let script = format!(
        "import boto3\nc = boto3.client('sqs', endpoint_url='{ep}', region_name='us-east-1')\nu = c.get_queue_url(QueueName='jobs')['QueueUrl']\nc.send_message(QueueUrl=u, MessageBody='from-boto3')\nprint(c.get_queue_attributes(QueueUrl=u, AttributeNames=['QueueArn'])['Attributes']['QueueArn'])\n"
    );
    let o = std::process::Command::new("python3")
        .args(["-c", &script])
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials_file(&ep).unwrap(),
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "arn:aws:sqs:us-east-1:000000000000:jobs"
    );
    let t = Instant::now();
    while !seen(&out).iter().any(|v| v["body"] == "from-boto3") {
        assert!(t.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // remove deletes the service's queues.
    stratus(&dir, &ep, &["remove"]).await;
    let list = stratus(&dir, &ep, &["queue", "list"]).await;
    assert!(!list.contains("jobs"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_source_mapping_api_with_boto3() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // The function records into a host directory the test reads: only the `process`
    // driver shows it the host.
    let s = Server::start(&tmp.path().join("data"), &["--sandbox", "process"]).await;
    let ep = format!("http://{}", s.addr);
    let pkg = tmp.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("h.js"), HANDLER).unwrap();
    s.create_ok(
        "mapped",
        "nodejs20.x",
        "h.worker",
        &stratus_package::zip_dir(&pkg).unwrap(),
        serde_json::json!({"Environment": {"Variables": {"OUT": out.to_str().unwrap()}}}),
    )
    .await;
    let script = format!(
        r#"
import boto3, time
kw = dict(endpoint_url='{ep}', region_name='us-east-1')
sqs = boto3.client('sqs', **kw)
lam = boto3.client('lambda', **kw)
url = sqs.create_queue(QueueName='api-src')['QueueUrl']
arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=['QueueArn'])['Attributes']['QueueArn']
m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName='mapped', BatchSize=2)
assert m['State'] == 'Enabled' and m['BatchSize'] == 2, m
try:
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName='mapped')
    raise SystemExit('expected a conflict')
except lam.exceptions.ResourceConflictException:
    pass
try:
    lam.create_event_source_mapping(EventSourceArn='arn:aws:sqs:us-east-1:000000000000:nope', FunctionName='mapped')
    raise SystemExit('expected an invalid queue')
except lam.exceptions.InvalidParameterValueException:
    pass
assert [x['UUID'] for x in lam.list_event_source_mappings(FunctionName='mapped')['EventSourceMappings']] == [m['UUID']]
sqs.send_message(QueueUrl=url, MessageBody='via-mapping')
for _ in range(200):
    try:
        if 'via-mapping' in open('{out}/seen.log').read():
            break
    except FileNotFoundError:
        pass
    time.sleep(0.05)
else:
    raise SystemExit('the mapping never delivered')
u = lam.update_event_source_mapping(UUID=m['UUID'], Enabled=False)
assert u['State'] == 'Disabled', u
assert lam.get_event_source_mapping(UUID=m['UUID'])['State'] == 'Disabled'
lam.delete_event_source_mapping(UUID=m['UUID'])
assert lam.list_event_source_mappings()['EventSourceMappings'] == []
print('ok')
"#,
        out = out.display()
    );
    let o = std::process::Command::new("python3")
        .args(["-c", &script])
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials_file(&ep).unwrap(),
        )
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
}
