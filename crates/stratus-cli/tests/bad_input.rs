//! Malformed input of every kind gets the Lambda error type and a message that says
//! what is wrong; the server keeps serving and leaks nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use base64::Engine as _;
use common::*;
use serde_json::json;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn post_create(s: &Server, body: &str) -> Reply {
    s.api
        .call("POST", "/2015-03-31/functions", &[], body.to_string())
        .await
        .unwrap()
}

fn assert_error(r: &Reply, status: u16, error_type: &str, message_part: &str) {
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, status, "{body}");
    assert_eq!(r.header("x-amzn-errortype"), Some(error_type), "{body}");
    let v = json_body(r);
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(message_part),
        "message {msg:?} should contain {message_part:?}"
    );
    assert!(v["Type"] == "User" || v["Type"] == "Service", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_api_rejects_malformed_requests_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let good_zip = b64(&fixture_zip("node"));
    let create = |name: &str, runtime: &str, zip: &str, extra: serde_json::Value| {
        let mut v = json!({"FunctionName": name, "Runtime": runtime, "Handler": "index.handler", "Role": "r", "Code": {"ZipFile": zip}});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string()
    };

    assert_error(
        &post_create(&s, "{not json").await,
        400,
        "InvalidRequestContentException",
        "Could not parse request body into json",
    );
    assert_error(
        &post_create(&s, &create("bad name", "nodejs20.x", &good_zip, json!({}))).await,
        400,
        "ValidationException",
        "at 'functionName' failed to satisfy constraint",
    );
    assert_error(
        &post_create(
            &s,
            &create(&"x".repeat(65), "nodejs20.x", &good_zip, json!({})),
        )
        .await,
        400,
        "ValidationException",
        "functionName",
    );
    assert_error(
        &post_create(&s, &create("f", "cobol1.0", &good_zip, json!({}))).await,
        400,
        "InvalidParameterValueException",
        "The runtime parameter of cobol1.0 is not supported",
    );
    assert_error(&post_create(&s, &create("f", "nodejs20.x", &good_zip, json!({"MemorySize": 64}))).await, 400, "ValidationException", "Value '64' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128");
    assert_error(
        &post_create(
            &s,
            &create("f", "nodejs20.x", &good_zip, json!({"Timeout": 901})),
        )
        .await,
        400,
        "ValidationException",
        "Value '901' at 'timeout'",
    );
    assert_error(
        &post_create(&s, &create("f", "nodejs20.x", "%%%not-base64", json!({}))).await,
        400,
        "InvalidParameterValueException",
        "Code.ZipFile is not valid base64",
    );
    assert_error(
        &post_create(
            &s,
            &create("f", "nodejs20.x", &b64(b"this is not a zip"), json!({})),
        )
        .await,
        400,
        "InvalidParameterValueException",
        "Could not unzip uploaded file",
    );
    let slip = raw_zip(&[("index.js", b"x"), ("../../escape.js", b"evil")]);
    assert_error(
        &post_create(&s, &create("f", "nodejs20.x", &b64(&slip), json!({}))).await,
        400,
        "InvalidParameterValueException",
        "../../escape.js",
    );
    let abs = raw_zip(&[("/etc/evil", b"x")]);
    assert_error(
        &post_create(&s, &create("f", "nodejs20.x", &b64(&abs), json!({}))).await,
        400,
        "InvalidParameterValueException",
        "/etc/evil",
    );
    // A zip bomb: 300 MB of zeros, a few hundred KB zipped; the cap is 250 MB unzipped.
    let bomb = {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file("zeros.bin", zip::write::SimpleFileOptions::default())
            .unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..300 {
            w.write_all(&chunk).unwrap();
        }
        w.finish().unwrap();
        buf.into_inner()
    };
    assert!(bomb.len() < 2 << 20);
    assert_error(
        &post_create(&s, &create("f", "nodejs20.x", &b64(&bomb), json!({}))).await,
        400,
        "InvalidParameterValueException",
        "Could not unzip uploaded file",
    );
    let big_env = json!({"Environment": {"Variables": {"BIG": "v".repeat(5000)}}});
    assert_error(
        &post_create(&s, &create("f", "nodejs20.x", &good_zip, big_env)).await,
        400,
        "InvalidParameterValueException",
        "exceeded the 4KB limit",
    );
    assert!(!dir.path().join("escape.js").exists() && !dir.path().join("data/escape.js").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data/code"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "rejected uploads leave nothing behind: {leftovers:?}"
    );

    s.create_ok(
        "f",
        "nodejs20.x",
        "index.handler",
        &fixture_zip("node"),
        json!({}),
    )
    .await;
    assert_error(
        &s.create(
            "f",
            "nodejs20.x",
            "index.handler",
            &fixture_zip("node"),
            json!({}),
        )
        .await,
        409,
        "ResourceConflictException",
        "Function already exist: f",
    );
    let r = s
        .api
        .call(
            "PUT",
            "/2015-03-31/functions/f/configuration",
            &[],
            r#"{"Timeout":0}"#,
        )
        .await
        .unwrap();
    assert_error(&r, 400, "ValidationException", "Value '0' at 'timeout'");
    let r = s
        .api
        .call(
            "PUT",
            "/2015-03-31/functions/f/configuration",
            &[],
            r#"{"Timeout":5,"RevisionId":"stale"}"#,
        )
        .await
        .unwrap();
    assert_error(&r, 412, "PreconditionFailedException", "Revision Id");
    let r = s
        .api
        .call("GET", "/2015-03-31/functions/nope", &[], "")
        .await
        .unwrap();
    assert_error(
        &r,
        404,
        "ResourceNotFoundException",
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope",
    );
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/f/aliases",
            &[],
            r#"{"Name":"a","FunctionVersion":"9"}"#,
        )
        .await
        .unwrap();
    assert_error(&r, 404, "ResourceNotFoundException", "function:f:9");
    let r = s
        .api
        .call(
            "PUT",
            "/2017-10-31/functions/f/concurrency",
            &[],
            r#"{"ReservedConcurrentExecutions":-1}"#,
        )
        .await
        .unwrap();
    assert_error(
        &r,
        400,
        "ValidationException",
        "reservedConcurrentExecutions",
    );
    let r = s
        .api
        .call("GET", "/2099-01-01/nothing", &[], "")
        .await
        .unwrap();
    assert_error(&r, 404, "UnknownOperationException", "/2099-01-01/nothing");
    // The function is untouched by all of that.
    assert_eq!(s.invoke("f", "{}").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_api_rejects_malformed_invocations_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "f",
        "nodejs20.x",
        "index.handler",
        &fixture_zip("node"),
        // Building and posting a 7 MB answer takes ~1.5 s of CPU at 128 MB's
        // share of a vCPU (Lambda's proportion); room enough on a loaded machine.
        json!({"MemorySize": 1024, "Timeout": 30}),
    )
    .await;

    assert_error(
        &s.invoke("nope", "{}").await,
        404,
        "ResourceNotFoundException",
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope",
    );
    assert_error(
        &s.invoke("f:7", "{}").await,
        404,
        "ResourceNotFoundException",
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:f:7",
    );
    assert_error(
        &s.invoke("f", "{oops").await,
        400,
        "InvalidRequestContentException",
        "Could not parse request body into json",
    );
    assert_error(
        &s.invoke("bad%20name", "{}").await,
        400,
        "ValidationException",
        "functionName",
    );
    let big = format!("\"{}\"", "a".repeat(6 * 1024 * 1024));
    assert_error(
        &s.invoke("f", &big).await,
        413,
        "RequestTooLargeException",
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
    );
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/f/invocations",
            &[("x-amz-invocation-type", "Sometimes")],
            "{}",
        )
        .await
        .unwrap();
    assert_error(&r, 400, "ValidationException", "invocationType");
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/f/invocations",
            &[("x-amz-client-context", "***")],
            "{}",
        )
        .await
        .unwrap();
    assert_error(
        &r,
        400,
        "InvalidParameterValueException",
        "Client context is not valid base64",
    );
    let cc = b64(format!("{{\"custom\":\"{}\"}}", "c".repeat(4000)).as_bytes());
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/f/invocations",
            &[("x-amz-client-context", &cc)],
            "{}",
        )
        .await
        .unwrap();
    assert_error(&r, 400, "InvalidParameterValueException", "3583 bytes");

    // A valid client context reaches the function.
    let cc = b64(br#"{"custom":{"k":"v"},"env":{},"client":{}}"#);
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/f/invocations",
            &[("x-amz-client-context", &cc)],
            "{}",
        )
        .await
        .unwrap();
    assert_eq!(
        json_body(&r)["context"]["clientContext"]["custom"]["k"],
        "v"
    );
    // DryRun: 204, nothing runs.
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/f/invocations",
            &[("x-amz-invocation-type", "DryRun")],
            "{}",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    // An empty body is the empty event.
    let r = s.invoke("f", "").await;
    assert_eq!(json_body(&r)["event"], json!({}));

    // A response over 6 MB is a function error, and the environment lives on.
    let r = s.invoke("f", r#"{"action":"big","bytes":7000000}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let e = json_body(&r);
    assert_eq!(e["errorType"], "Function.ResponseSizeTooLarge");
    assert_eq!(
        e["errorMessage"],
        "Response payload size exceeded maximum allowed payload size (6291456 bytes)."
    );
    assert_eq!(s.invoke("f", "{}").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_interpreter_is_a_clear_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &["--node", "/nonexistent/node"]).await;
    // Refused when the function is created (issue 12: an ID runs on its own
    // interpreter or not at all), naming the missing one.
    let r = s
        .create(
            "f",
            "nodejs20.x",
            "index.handler",
            &fixture_zip("node"),
            json!({}),
        )
        .await;
    assert_error(
        &r,
        400,
        "InvalidParameterValueException",
        "--node /nonexistent/node: not found",
    );

    // A provided function whose zip has no bootstrap: Runtime.ExitError-style init error, quickly.
    s.create_ok(
        "nob",
        "provided.al2",
        "bootstrap",
        &raw_zip(&[("README", b"no bootstrap here")]),
        json!({}),
    )
    .await;
    let r = s.invoke("nob", "{}").await;
    assert_error(&r, 502, "InvalidRuntimeException", "bootstrap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_response_is_a_function_error_in_every_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    for (name, runtime, handler, fixture) in [
        ("big-node", "nodejs20.x", "index.handler", "node"),
        ("big-python", "python3.12", "app.handler", "python"),
    ] {
        // More than 128 MB's sliver of CPU, and time: a 7 MB answer costs Node
        // ~1.5 s at 128 MB, and a timeout would hide what this test checks.
        let config = json!({"MemorySize": 1024, "Timeout": 30});
        s.create_ok(name, runtime, handler, &fixture_zip(fixture), config)
            .await;
        let r = s.invoke(name, r#"{"action":"big","bytes":7000000}"#).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(
            r.header("x-amz-function-error"),
            Some("Unhandled"),
            "{name}"
        );
        let e = json_body(&r);
        assert_eq!(e["errorType"], "Function.ResponseSizeTooLarge", "{name}");
        // The environment lives on: the next call is served warm.
        assert_eq!(s.invoke(name, "{}").await.status, 200, "{name}");
        let logs = s.wait_logs(name, "REPORT", 2).await;
        assert_eq!(count(&logs, "Init Duration"), 1, "{name}: {logs:#?}");
        // Nothing but the function's own output between the invocations: the
        // runtime does not log the refused response (Lambda logs nothing either).
        // (Request ids and timestamps may contain "413" by chance: look only at
        // what the lines say, past the platform lines' and the runtime's prefixes.)
        let said_413 = logs
            .iter()
            .filter(|l| {
                !["START ", "END ", "REPORT "]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .filter(|l| {
                let fields: Vec<&str> = l.split('\t').collect();
                let said = if fields.len() >= 4 {
                    &fields[3..]
                } else {
                    &fields[..]
                };
                said.iter().any(|m| m.contains("413"))
            })
            .count();
        assert_eq!(said_413, 0, "{name}: {logs:#?}");
    }
}
