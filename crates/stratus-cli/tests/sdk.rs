//! Wire compatibility with the real AWS SDK (boto3) and the AWS CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_the_management_and_invoke_apis() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    run_sdk_script(&s, "boto3_lambda.py", "boto3: all checks passed").await;
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
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            s.data_dir.join("credentials"),
        )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_drives_the_queues() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let creds = s.data_dir.join("credentials");
    let aws = |args: Vec<String>| {
        let ep = ep.clone();
        let creds = creds.clone();
        async move {
            let out = tokio::process::Command::new("aws")
                .arg("sqs")
                .args(&args)
                .args([
                    "--endpoint-url",
                    &ep,
                    "--region",
                    "us-east-1",
                    "--output",
                    "json",
                ])
                .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
                .output()
                .await
                .expect("run the AWS CLI");
            assert!(
                out.status.success(),
                "aws sqs {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .unwrap_or(serde_json::Value::Null)
        }
    };
    let url = aws(vec![
        "create-queue".into(),
        "--queue-name".into(),
        "cli-q".into(),
    ])
    .await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.ends_with("/000000000000/cli-q"), "{url}");
    let sent = aws(vec![
        "send-message".into(),
        "--queue-url".into(),
        url.clone(),
        "--message-body".into(),
        "hello".into(),
    ])
    .await;
    assert_eq!(sent["MD5OfMessageBody"], "5d41402abc4b2a76b9719d911017c592");
    let got = aws(vec![
        "receive-message".into(),
        "--queue-url".into(),
        url.clone(),
        "--wait-time-seconds".into(),
        "1".into(),
    ])
    .await;
    assert_eq!(got["Messages"][0]["Body"], "hello");
    let attrs = aws(vec![
        "get-queue-attributes".into(),
        "--queue-url".into(),
        url,
        "--attribute-names".into(),
        "All".into(),
    ])
    .await;
    assert_eq!(
        attrs["Attributes"]["QueueArn"],
        "arn:aws:sqs:us-east-1:000000000000:cli-q"
    );
}
