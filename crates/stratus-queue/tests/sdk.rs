//! Wire compatibility with the real AWS SDK for Python (boto3) and the AWS CLI:
//! [`stratus_queue::handle`] behind a minimal axum router on an ephemeral port.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use stratus_queue::Queues;

const ACCOUNT: &str = "123456789012";

async fn sqs(State(queues): State<Arc<Queues>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    stratus_queue::handle(&queues, target, &body).await
}

/// Serves the queues (in `dir`, or with `postgres` in a fresh PostgreSQL
/// database); returns the endpoint URL.
async fn serve_on(dir: &std::path::Path, postgres: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let keys = stratus_seal::KeySource::File(dir.join(stratus_seal::MASTER_KEY_FILE));
    let sealer = stratus_seal::Sealer::open_data_dir(dir, &keys).unwrap();
    let queues = if postgres {
        let url = tokio::task::spawn_blocking(|| stratus_testkit::Postgres::shared().database())
            .await
            .unwrap();
        Queues::open_postgres(
            &url,
            &endpoint,
            "us-east-1",
            ACCOUNT,
            sealer,
            Arc::new(stratus_queue::SystemClock),
        )
        .await
        .unwrap()
    } else {
        Queues::open(dir, &endpoint, "us-east-1", ACCOUNT, sealer).unwrap()
    };
    let app = Router::new().route("/", post(sqs)).with_state(queues);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    endpoint
}

async fn serve(dir: &std::path::Path) -> String {
    serve_on(dir, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_every_action() {
    boto3_on(false).await
}

/// The same script against the PostgreSQL backend (a cluster's queues).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_every_action_on_postgres() {
    boto3_on(true).await
}

async fn boto3_on(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = serve_on(dir.path(), postgres).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/boto3_sqs.py");
    let out = tokio::process::Command::new("python3")
        .args([script, &endpoint, ACCOUNT])
        .output()
        .await
        .expect("run python3 (boto3 is installed by scripts/test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("boto3: all checks passed"), "{stdout}");
}

async fn aws(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let out = tokio::process::Command::new("aws")
        .args([
            "sqs",
            "--endpoint-url",
            endpoint,
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .output()
        .await
        .expect("run the AWS CLI (installed by scripts/test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "aws sqs {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if stdout.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_sends_and_receives() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = serve(dir.path()).await;
    let created = aws(&endpoint, &["create-queue", "--queue-name", "cli"]).await;
    let url = created["QueueUrl"].as_str().unwrap().to_string();
    assert_eq!(url, format!("{endpoint}/{ACCOUNT}/cli"));
    let sent = aws(
        &endpoint,
        &[
            "send-message",
            "--queue-url",
            &url,
            "--message-body",
            "from the cli",
        ],
    )
    .await;
    assert_eq!(sent["MD5OfMessageBody"], "adc1c5502a75b5c1afdc54d0d67abd6f");
    let got = aws(
        &endpoint,
        &[
            "receive-message",
            "--queue-url",
            &url,
            "--wait-time-seconds",
            "1",
        ],
    )
    .await;
    assert_eq!(got["Messages"][0]["Body"], "from the cli");
    let handle = got["Messages"][0]["ReceiptHandle"].as_str().unwrap();
    aws(
        &endpoint,
        &[
            "delete-message",
            "--queue-url",
            &url,
            "--receipt-handle",
            handle,
        ],
    )
    .await;
    let attrs = aws(
        &endpoint,
        &[
            "get-queue-attributes",
            "--queue-url",
            &url,
            "--attribute-names",
            "All",
        ],
    )
    .await;
    assert_eq!(attrs["Attributes"]["ApproximateNumberOfMessages"], "0");
    assert_eq!(
        attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"],
        "0"
    );
}
