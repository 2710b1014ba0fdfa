//! Wire compatibility with the real AWS SDK (boto3) and the AWS CLI.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_the_management_and_invoke_apis() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/boto3_lambda.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", s.addr))
        .arg(FIXTURES)
        .output()
        .await
        .expect("run python3 (boto3 is installed by .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("boto3: all checks passed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_invokes_with_tail_logs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "cli",
        "python3.11",
        "app.handler",
        &fixture_zip("python"),
        json!({}),
    )
    .await;
    let outfile = dir.path().join("out.json");
    let out = tokio::process::Command::new("aws")
        .args([
            "lambda",
            "invoke",
            "--endpoint-url",
            &format!("http://{}", s.addr),
            "--region",
            "us-east-1",
        ])
        .args([
            "--function-name",
            "cli",
            "--log-type",
            "Tail",
            "--query",
            "LogResult",
            "--output",
            "text",
        ])
        .args(["--payload", r#"{"from":"cli"}"#])
        .arg(&outfile)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .await
        .expect("run the AWS CLI (installed by .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use base64::Engine as _;
    let log = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&stdout)
            .unwrap(),
    )
    .unwrap();
    assert!(log.contains("hello from python {'from': 'cli'}"), "{log}");
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&outfile).unwrap()).unwrap();
    assert_eq!(result["functionName"], "cli");
}
