//! Every example under `examples/` deploys as is with the CLI and answers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};

use common::*;

use common::stratus_ok as stratus;
use serde_json::Value;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_python_examples_deploy_and_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);

    let node = tmp.path().join("hello-node");
    copy_tree(&examples().join("hello-node"), &node);
    let out = stratus(&node, &ep, &["deploy"]).await;
    assert!(
        out.contains("hello-node-dev-hello (created, version 1)"),
        "{out}"
    );
    let v: Value = serde_json::from_str(
        &stratus(
            &node,
            &ep,
            &[
                "invoke",
                "-f",
                "hello",
                "-q",
                "provisioned",
                "-d",
                r#"{"name":"Ada"}"#,
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(v["message"], "Hello, Ada!");
    assert_eq!(v["initializationType"], "provisioned-concurrency");

    // The Python example has a requirements.txt: its dependency is installed into the
    // package for the server's platform, so the import works on the server.
    let py = tmp.path().join("hello-python");
    copy_tree(&examples().join("hello-python"), &py);
    let out = stratus(&py, &ep, &["deploy", "--stage", "prod"]).await;
    assert!(
        out.contains("hello-python-prod-hello (created, version 1)"),
        "{out}"
    );
    let v: Value = serde_json::from_str(
        &stratus(&py, &ep, &["invoke", "-f", "hello", "--stage", "prod"]).await,
    )
    .unwrap();
    assert_eq!(v["six"], "1.16.0", "{v}");
    let r = s
        .api
        .call(
            "GET",
            "/2019-09-30/functions/hello-python-prod-hello/concurrency",
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(json_body(&r)["ReservedConcurrentExecutions"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_example_builds_with_cargo_and_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let dir = examples().join("hello-rust");
    let out = stratus(&dir, &ep, &["deploy"]).await;
    assert!(
        out.contains("hello-rust-dev-hello (created, version 1)"),
        "{out}"
    );
    let v: Value = serde_json::from_str(
        &stratus(
            &dir,
            &ep,
            &["invoke", "-f", "hello", "-d", r#"{"name":"Ferris"}"#],
        )
        .await,
    )
    .unwrap();
    assert_eq!(v["message"], "Hello, Ferris!");
    let out = stratus(&dir, &ep, &["remove"]).await;
    assert!(out.contains("removed hello-rust-dev-hello"), "{out}");
    let _ = std::fs::remove_dir_all(dir.join(".serverless"));
}
