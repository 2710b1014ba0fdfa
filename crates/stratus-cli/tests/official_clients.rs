//! The official runtime interface clients run unchanged against Stratus's Runtime
//! API: AWS's `awslambdaric` for Python (installed from PyPI into the function
//! package, as a container image build would), started from a `provided` bootstrap.
//! (The `lambda_runtime` crate is covered in `invoke.rs`.)

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
        "def handler(event, context):\n    print('ric says hi', context.aws_request_id)\n    if event.get('fail'):\n        raise RuntimeError('ric failure')\n    return {'got': event, 'fn': context.function_name, 'left': context.get_remaining_time_in_millis()}\n",
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
