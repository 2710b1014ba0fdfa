//! The AWS SDKs inside the runtimes (issue 12, part 1): a Node.js 20 handler that
//! `require`s `@aws-sdk/client-lambda` / `@aws-sdk/client-sqs` and a Python handler
//! that imports boto3, neither bundling them, call Stratus's Lambda and SQS APIs
//! through `AWS_ENDPOINT_URL` with their environment's credentials; a function that
//! bundles its own copy gets its own; a server without the SDKs says so at start
//! and in its health.
//!
//! Needs the SDKs in target/test-deps/aws-sdk (scripts/test installs them with
//! `stratus server install-sdk --aws-sdk target/test-deps/aws-sdk`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};
use stratus_server::aws_sdk::{BOTO3_VERSION, NODE_SDK_VERSION, SANDBOX_TARGET};

fn sdk_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps/aws-sdk");
    assert!(
        dir.join("node/node_modules/@aws-sdk/client-lambda/package.json")
            .is_file()
            && dir.join("python/boto3/__init__.py").is_file(),
        "the AWS SDKs are not in {}: run scripts/test (it installs them), or \
         cargo run -p stratus-cli -- server install-sdk --aws-sdk target/test-deps/aws-sdk",
        dir.display()
    );
    dir.canonicalize().unwrap()
}

const SERVICE: &str = r#"service: sdk
frameworkVersion: "3"
provider:
  name: aws
  runtime: nodejs20.x
  timeout: 30
  iam:
    role:
      statements:
        - Effect: Allow
          Action: ["lambda:*", "sqs:*"]
          Resource: "*"
functions:
  node:
    handler: node.handler
  py:
    handler: app.handler
    runtime: python3.11
  echo:
    handler: echo.handler
resources:
  Resources:
    NodeQueue:
      Type: AWS::SQS::Queue
      Properties:
        QueueName: sdk-node
    PyQueue:
      Type: AWS::SQS::Queue
      Properties:
        QueueName: sdk-py
"#;

const NODE: &str = r#"
const { LambdaClient, ListFunctionsCommand, InvokeCommand } = require("@aws-sdk/client-lambda");
const { SQSClient, GetQueueUrlCommand, SendMessageCommand, ReceiveMessageCommand } = require("@aws-sdk/client-sqs");
exports.handler = async () => {
  const lambda = new LambdaClient({});
  const list = await lambda.send(new ListFunctionsCommand({}));
  const inv = await lambda.send(new InvokeCommand({
    FunctionName: "sdk-dev-echo", Payload: JSON.stringify({ from: "node" }),
  }));
  // The v3 SQS client sends to the QueueUrl's host: in an isolated environment
  // the URL names the API as the environment reaches it.
  const sqs = new SQSClient({});
  const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: "sdk-node" }));
  await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: "from-node" }));
  const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 2, MaxNumberOfMessages: 10 }));
  return {
    names: list.Functions.map((f) => f.FunctionName).sort(),
    invoked: JSON.parse(Buffer.from(inv.Payload).toString()),
    bodies: (got.Messages || []).map((m) => m.Body),
    queueUrl: QueueUrl,
    endpoint: process.env.AWS_ENDPOINT_URL,
    resolved: require.resolve("@aws-sdk/client-lambda"),
    version: require("@aws-sdk/client-lambda/package.json").version,
  };
};
"#;

const PYTHON: &str = r#"
import json
import boto3

def handler(event, context):
    lam = boto3.client("lambda")
    names = sorted(f["FunctionName"] for f in lam.list_functions()["Functions"])
    out = lam.invoke(FunctionName="sdk-dev-echo", Payload=json.dumps({"from": "python"}))
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="sdk-py")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="from-python")
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2, MaxNumberOfMessages=10)
    return {
        "names": names,
        "invoked": json.loads(out["Payload"].read()),
        "bodies": [m["Body"] for m in got.get("Messages", [])],
        "resolved": boto3.__file__,
        "version": boto3.__version__,
    }
"#;

const ECHO: &str = "exports.handler = async (e) => ({ echoed: e });\n";

fn ok_json(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("x-amz-function-error").is_none(),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    serde_json::from_slice(&r.body).unwrap()
}

/// Where the function should have found the SDK: the host directory, or its
/// read-only mount when the environment is isolated.
fn expected_root(s_isolated: bool, sdk: &Path) -> String {
    if s_isolated {
        SANDBOX_TARGET.to_string()
    } else {
        sdk.display().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_python_handlers_call_stratus_through_the_provided_sdks() {
    let sdk = sdk_dir();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &["--aws-sdk", sdk.to_str().unwrap()],
    )
    .await;
    let health = s
        .api
        .call("GET", "/stratus/v1/health", &[], "")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["awsSdk"]["nodejs"], NODE_SDK_VERSION, "{health}");
    assert_eq!(health["awsSdk"]["python"], BOTO3_VERSION, "{health}");
    let log = std::fs::read_to_string(dir.path().join("data.server.log")).unwrap();
    assert!(!log.contains("is not installed"), "{log}");

    let svc = dir.path().join("svc");
    std::fs::create_dir_all(&svc).unwrap();
    for (name, text) in [
        ("serverless.yml", SERVICE),
        ("node.js", NODE),
        ("app.py", PYTHON),
        ("echo.js", ECHO),
    ] {
        std::fs::write(svc.join(name), text).unwrap();
    }
    stratus_ok(&svc, &format!("http://{}", s.addr), &["deploy"]).await;
    let isolated = s.isolated().await;
    let root = expected_root(isolated, &sdk);
    let all = json!(["sdk-dev-echo", "sdk-dev-node", "sdk-dev-py"]);

    let v = ok_json(&s.invoke("sdk-dev-node", "{}").await);
    assert_eq!(v["names"], all, "{v}");
    assert_eq!(v["invoked"], json!({"echoed": {"from": "node"}}), "{v}");
    assert_eq!(v["bodies"], json!(["from-node"]), "{v}");
    assert_eq!(v["version"], NODE_SDK_VERSION, "{v}");
    // The queue URL names the API where this environment reaches it.
    assert_eq!(
        v["queueUrl"],
        format!("{}/000000000000/sdk-node", v["endpoint"].as_str().unwrap()),
        "{v}"
    );
    assert!(
        v["resolved"].as_str().unwrap().starts_with(&root),
        "{v} (expected under {root})"
    );

    let v = ok_json(&s.invoke("sdk-dev-py", "{}").await);
    assert_eq!(v["names"], all, "{v}");
    assert_eq!(v["invoked"], json!({"echoed": {"from": "python"}}), "{v}");
    assert_eq!(v["bodies"], json!(["from-python"]), "{v}");
    // The pinned boto3, not the one the host's Python may have.
    assert_eq!(v["version"], BOTO3_VERSION, "{v}");
    assert!(
        v["resolved"].as_str().unwrap().starts_with(&root),
        "{v} (expected under {root})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_bundling_its_own_sdk_uses_its_own() {
    let sdk = sdk_dir();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &["--aws-sdk", sdk.to_str().unwrap()],
    )
    .await;
    let node = raw_zip(&[
        (
            "index.js",
            b"exports.handler = async () => ({ marker: require('@aws-sdk/client-lambda').marker, \
              sqs: typeof require('@aws-sdk/client-sqs').SQSClient });\n",
        ),
        (
            "node_modules/@aws-sdk/client-lambda/package.json",
            br#"{"name":"@aws-sdk/client-lambda","version":"0.0.1-bundled","main":"index.js"}"#,
        ),
        (
            "node_modules/@aws-sdk/client-lambda/index.js",
            b"exports.marker = 'bundled';\n",
        ),
    ]);
    s.create_ok(
        "node-own",
        "nodejs20.x",
        "index.handler",
        &node,
        json!({"Timeout": 30}),
    )
    .await;
    let v = ok_json(&s.invoke("node-own", "{}").await);
    // Its own client-lambda; what it does not bundle still comes from the runtime.
    assert_eq!(v, json!({"marker": "bundled", "sqs": "function"}));

    // An ES module handler finds the provided SDK too (ESM ignores NODE_PATH: the
    // bootstrap's resolve hook), and still prefers a bundled copy.
    let esm = raw_zip(&[(
        "index.mjs",
        b"import { LambdaClient } from '@aws-sdk/client-lambda';\n\
          import { SQSClient } from '@aws-sdk/client-sqs';\n\
          export const handler = async () => ({ lambda: typeof LambdaClient, sqs: typeof SQSClient });\n",
    )]);
    s.create_ok(
        "esm",
        "nodejs20.x",
        "index.handler",
        &esm,
        json!({"Timeout": 30}),
    )
    .await;
    let v = ok_json(&s.invoke("esm", "{}").await);
    assert_eq!(v, json!({"lambda": "function", "sqs": "function"}));
    let esm_own = raw_zip(&[
        (
            "index.mjs",
            b"import own from '@aws-sdk/client-lambda';\n\
              export const handler = async () => ({ marker: own.marker });\n",
        ),
        (
            "node_modules/@aws-sdk/client-lambda/package.json",
            br#"{"name":"@aws-sdk/client-lambda","version":"0.0.1-bundled","main":"index.js"}"#,
        ),
        (
            "node_modules/@aws-sdk/client-lambda/index.js",
            b"exports.marker = 'bundled';\n",
        ),
    ]);
    s.create_ok(
        "esm-own",
        "nodejs20.x",
        "index.handler",
        &esm_own,
        json!({"Timeout": 30}),
    )
    .await;
    let v = ok_json(&s.invoke("esm-own", "{}").await);
    assert_eq!(v, json!({"marker": "bundled"}));

    let py = raw_zip(&[
        (
            "app.py",
            b"import boto3, botocore\ndef handler(e, c):\n    return {'marker': boto3.MARKER, 'botocore': botocore.__version__}\n",
        ),
        ("boto3/__init__.py", b"MARKER = 'bundled'\n"),
    ]);
    s.create_ok(
        "py-own",
        "python3.11",
        "app.handler",
        &py,
        json!({"Timeout": 30}),
    )
    .await;
    let v = ok_json(&s.invoke("py-own", "{}").await);
    assert_eq!(v, json!({"marker": "bundled", "botocore": BOTO3_VERSION}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_sdk_is_a_startup_warning_and_shows_in_health() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("no-sdk");
    std::fs::create_dir_all(&empty).unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &["--aws-sdk", empty.to_str().unwrap()],
    )
    .await;
    let health = s
        .api
        .call("GET", "/stratus/v1/health", &[], "")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["awsSdk"]["nodejs"], Value::Null, "{health}");
    assert_eq!(health["awsSdk"]["python"], Value::Null, "{health}");
    let log = std::fs::read_to_string(dir.path().join("data.server.log")).unwrap();
    assert!(
        log.contains("WARNING: the AWS SDK for JavaScript is not installed in")
            && log.contains("WARNING: boto3 is not installed in")
            && log.contains("stratus server install-sdk"),
        "{log}"
    );
    // A Node function requiring the SDK fails to load, as the warning said.
    let zip = raw_zip(&[(
        "index.js",
        b"const l = require('@aws-sdk/client-lambda');\nexports.handler = async () => 1;\n",
    )]);
    s.create_ok("needs-sdk", "nodejs20.x", "index.handler", &zip, json!({}))
        .await;
    let r = s.invoke("needs-sdk", "{}").await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    assert!(
        String::from_utf8_lossy(&r.body).contains("Runtime.ImportModuleError"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}
