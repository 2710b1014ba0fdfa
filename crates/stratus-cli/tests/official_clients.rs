//! The official runtime interface clients run unchanged against Stratus's Runtime
//! API: AWS's `awslambdaric` for Python (installed from PyPI into the function
//! package, as a container image build would), started from a `provided` bootstrap.
//! (The `lambda_runtime` crate is covered in `invoke.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_awslambdaric_serves_invocations() {
    let pkg = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(pkg.path())
        .arg("awslambdaric")
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "pip install awslambdaric: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(
        std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::fs::write(
        pkg.path().join("app.py"),
        "import os\n\ndef handler(event, context):\n    print('ric says hi', context.aws_request_id)\n    if event.get('fail'):\n        raise RuntimeError('ric failure')\n    return {'got': event, 'fn': context.function_name, 'left': context.get_remaining_time_in_millis(), 'trace': os.environ.get('_X_AMZN_TRACE_ID')}\n",
    )
    .unwrap();
    let bootstrap = pkg.path().join("bootstrap");
    std::fs::write(&bootstrap, format!("#!/bin/sh\nexport PYTHONPATH=\"$LAMBDA_TASK_ROOT\"\nexec {} -m awslambdaric app.handler\n", python.trim())).unwrap();
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    let zip = stratus_package::zip_dir(pkg.path()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "ric",
        "provided.al2023",
        "app.handler",
        &zip,
        json!({"Timeout": 5}),
    )
    .await;
    let (r, tail) = s.invoke_tail("ric", r#"{"a":1}"#).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = json_body(&r);
    assert_eq!(v["got"], json!({"a": 1}));
    assert_eq!(v["fn"], "ric");
    // awslambdaric set _X_AMZN_TRACE_ID from Lambda-Runtime-Trace-Id.
    assert!(
        v["trace"]
            .as_str()
            .is_some_and(|t| t.starts_with("Root=1-")),
        "{v}"
    );
    assert_eq!(r.header("x-amzn-trace-id"), v["trace"].as_str());
    let left = v["left"].as_i64().unwrap();
    assert!(
        left > 4000 && left <= 5000,
        "awslambdaric read the absolute deadline: {left}"
    );
    assert!(tail.contains("ric says hi"), "{tail}");
    assert!(tail.contains("Init Duration"), "{tail}");

    let r = s.invoke("ric", r#"{"fail":true}"#).await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let e = json_body(&r);
    assert_eq!(e["errorType"], "RuntimeError");
    assert_eq!(e["errorMessage"], "ric failure");
    let (r, tail) = s.invoke_tail("ric", r#"{"b":2}"#).await;
    assert_eq!(json_body(&r)["got"], json!({"b": 2}));
    assert!(
        !tail.contains("Init Duration"),
        "the environment stayed warm: {tail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_aws_lambda_ric_serves_invocations() {
    // Installed by scripts/test (npm, native build) into target/test-deps.
    let ric = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-deps/node-ric/node_modules");
    assert!(
        ric.join("aws-lambda-ric/index.mjs").exists(),
        "aws-lambda-ric is not installed: run scripts/test (it installs it into target/test-deps)"
    );
    let pkg = tempfile::tempdir().unwrap();
    copy_tree(&ric, &pkg.path().join("node_modules"));
    std::fs::write(
        pkg.path().join("index.mjs"),
        "export const handler = async (event, context) => {\n  console.log('ric node says hi');\n  if (event.fail) throw new RangeError('node ric failure');\n  return { got: event, fn: context.functionName, left: context.getRemainingTimeInMillis(), trace: process.env._X_AMZN_TRACE_ID };\n};\n",
    )
    .unwrap();
    let node = stratus_sandbox_like_which("node");
    let bootstrap = pkg.path().join("bootstrap");
    std::fs::write(
        &bootstrap,
        format!("#!/bin/sh\nexec {} \"$LAMBDA_TASK_ROOT/node_modules/aws-lambda-ric/index.mjs\" index.handler\n", node.display()),
    )
    .unwrap();
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    let zip = stratus_package::zip_dir(pkg.path()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "noderic",
        "provided.al2023",
        "index.handler",
        &zip,
        json!({"Timeout": 5}),
    )
    .await;
    let (r, tail) = s.invoke_tail("noderic", r#"{"a":1}"#).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = json_body(&r);
    assert_eq!(v["got"], json!({"a": 1}));
    assert_eq!(v["fn"], "noderic");
    // aws-lambda-ric set _X_AMZN_TRACE_ID from Lambda-Runtime-Trace-Id.
    assert!(
        v["trace"]
            .as_str()
            .is_some_and(|t| t.starts_with("Root=1-")),
        "{v}"
    );
    assert_eq!(r.header("x-amzn-trace-id"), v["trace"].as_str());
    let left = v["left"].as_i64().unwrap();
    assert!(
        left > 4000 && left <= 5000,
        "aws-lambda-ric read the absolute deadline: {left}"
    );
    assert!(tail.contains("ric node says hi"), "{tail}");

    let r = s.invoke("noderic", r#"{"fail":true}"#).await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let e = json_body(&r);
    assert_eq!(e["errorType"], "RangeError");
    assert_eq!(e["errorMessage"], "node ric failure");
    let (r, tail) = s.invoke_tail("noderic", r#"{"b":2}"#).await;
    assert_eq!(json_body(&r)["got"], json!({"b": 2}));
    assert!(
        !tail.contains("Init Duration"),
        "the environment stayed warm: {tail}"
    );
}

fn stratus_sandbox_like_which(name: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .expect("on PATH")
}
