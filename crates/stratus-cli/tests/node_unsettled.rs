//! A Node.js handler that cannot finish, end to end through a real server: an
//! async handler whose promise is still pending when the event loop empties
//! fails with `Runtime.NodeJsExit` (as Lambda's Node.js 18+ runtime reports it);
//! a callback-style handler that never calls back answers `null`, as on Lambda.
//! Unlike Lambda, where the process ends after a `Runtime.NodeJsExit`, the
//! environment serves the next invocation (see `runtimes/node/bootstrap.js`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::json;

const SOURCE: &str = r#"
let invocations = 0;
exports.stuck = async (event) => {
  invocations += 1;
  if (event.settle) return { invocations };
  // Nothing else is pending: the event loop empties with this promise open.
  return new Promise(() => {});
};
exports.silent = (event, context, callback) => {
  invocations += 1;
};
"#;

const NODEJS_EXIT: &str = "The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly caused by a Promise that was never settled. For more information, see https://nodejs.org/docs/latest/api/process.html#exit-codes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promise_that_never_settles_is_runtime_nodejs_exit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let zip = raw_zip(&[("index.js", SOURCE.as_bytes())]);
    s.create_ok(
        "stuck",
        "nodejs20.x",
        "index.stuck",
        &zip,
        json!({"Timeout": 10}),
    )
    .await;
    s.create_ok("silent", "nodejs20.x", "index.silent", &zip, json!({}))
        .await;

    let started = std::time::Instant::now();
    let (r, tail) = s.invoke_tail("stuck", "{}").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "answered when the loop emptied, not at the 10 s timeout"
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let e = json_body(&r);
    assert_eq!(e["errorType"], "Runtime.NodeJsExit", "{e}");
    assert_eq!(e["errorMessage"], NODEJS_EXIT, "{e}");
    assert!(tail.contains("Runtime.NodeJsExit"), "logged: {tail}");

    // The environment goes on: the next call is served warm.
    let (r, tail) = s.invoke_tail("stuck", r#"{"settle":true}"#).await;
    assert_eq!(
        r.header("x-amz-function-error"),
        None,
        "{}\n{tail}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(json_body(&r), json!({"invocations": 2}));
    assert!(!tail.contains("Init Duration"), "warm: {tail}");

    // A callback-style handler that never calls back answers null and its
    // environment stays.
    for _ in 0..2 {
        let r = s.invoke("silent", "{}").await;
        assert_eq!(r.header("x-amz-function-error"), None);
        assert_eq!(&r.body[..], b"null");
    }
    let logs = s.wait_logs("silent", "REPORT", 2).await;
    assert_eq!(count(&logs, "Init Duration"), 1, "{logs:#?}");
}
