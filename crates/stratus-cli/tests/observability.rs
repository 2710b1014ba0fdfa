//! Observability end to end: the CloudWatch Logs read API through the real boto3
//! `logs` client and the AWS CLI, and the denial shape of that API.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_reads_logs_through_the_cloudwatch_logs_api() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    run_sdk_script(&s, "boto3_logs.py", "boto3 logs: all checks passed").await;
}

/// Runs `aws logs ARGS` against `s`, returning its JSON output.
async fn aws_logs(s: &Server, args: &[&str]) -> Value {
    let out = tokio::process::Command::new("aws")
        .arg("logs")
        .args(args)
        .args([
            "--endpoint-url",
            &format!("http://{}", s.addr),
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
        .output()
        .await
        .expect("run the AWS CLI (installed by scripts/test)");
    assert!(
        out.status.success(),
        "aws logs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_reads_logs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "clilogs",
        "python3.11",
        "app.handler",
        &fixture_zip("python"),
        json!({}),
    )
    .await;
    for word in ["first", "second"] {
        let r = s
            .invoke("clilogs", &json!({ "word": word }).to_string())
            .await;
        assert_eq!(r.status, 200);
    }
    s.wait_logs("clilogs", "REPORT", 2).await;
    let groups = aws_logs(&s, &["describe-log-groups"]).await;
    assert_eq!(
        groups["logGroups"][0]["logGroupName"],
        "/aws/lambda/clilogs"
    );
    // The CLI pages through every result itself (here one event per page).
    let found = aws_logs(
        &s,
        &[
            "filter-log-events",
            "--log-group-name",
            "/aws/lambda/clilogs",
            "--filter-pattern",
            "\"hello from python\" -first",
            "--page-size",
            "1",
        ],
    )
    .await;
    let msgs: Vec<&str> = found["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].contains("'second'"), "{msgs:?}");
    let streams = aws_logs(
        &s,
        &[
            "describe-log-streams",
            "--log-group-name",
            "/aws/lambda/clilogs",
        ],
    )
    .await;
    let stream = streams["logStreams"][0]["logStreamName"].as_str().unwrap();
    let events = aws_logs(
        &s,
        &[
            "get-log-events",
            "--log-group-name",
            "/aws/lambda/clilogs",
            "--log-stream-name",
            stream,
            "--start-from-head",
        ],
    )
    .await;
    let all: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(all[0].starts_with("START RequestId:"), "{all:?}");
    let all: Vec<String> = all.iter().map(|m| m.to_string()).collect();
    assert_eq!(count(&all, "REPORT RequestId:"), 2, "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_logs_permissions_is_denied_in_the_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    // A key allowed to read one group only.
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Action":"logs:FilterLogEvents",
            "Resource":"arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/mine"}]}"#,
    )
    .unwrap();
    let endpoint = format!("http://{}", s.addr);
    let out = stratus_ok(
        dir.path(),
        &endpoint,
        &[
            "keys",
            "create",
            "reader",
            "--policy",
            policy.to_str().unwrap(),
        ],
    )
    .await;
    let key: Value = serde_json::from_str(&out).unwrap();
    let run = |group: &'static str| {
        let (endpoint, key) = (endpoint.clone(), key.clone());
        async move {
            tokio::process::Command::new("aws")
                .args(["logs", "filter-log-events", "--log-group-name", group])
                .args(["--endpoint-url", &endpoint, "--region", "us-east-1"])
                .env("AWS_ACCESS_KEY_ID", key["AccessKeyId"].as_str().unwrap())
                .env(
                    "AWS_SECRET_ACCESS_KEY",
                    key["SecretAccessKey"].as_str().unwrap(),
                )
                .env_remove("AWS_SESSION_TOKEN")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .output()
                .await
                .expect("run the AWS CLI")
        }
    };
    // Allowed: the group does not exist yet.
    let o = run("/aws/lambda/mine").await;
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("(ResourceNotFoundException)")
            && text.contains("The specified log group does not exist."),
        "{text}"
    );
    // Another group: denied, in the logs API's error shape, naming action and ARN.
    let o = run("/aws/lambda/theirs").await;
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("(AccessDeniedException)")
            && text.contains("logs:FilterLogEvents on resource: arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/theirs"),
        "{text}"
    );
}
