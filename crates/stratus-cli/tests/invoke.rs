//! Invocations through the Invoke API with real Node, Python and `lambda_runtime`
//! functions: cold then warm, reuse, logs, function errors, timeouts, crashes and
//! init failures.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_cold_then_warm_reuses_the_environment_and_logs_like_lambda() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok("hello", "nodejs20.x", "index.handler", &fixture_zip("node"), json!({"Environment": {"Variables": {"CUSTOM_VAR": "yes"}}, "MemorySize": 256, "Timeout": 7})).await;

    let (cold, cold_tail) = s.invoke_tail("hello", r#"{"name":"a"}"#).await;
    assert_eq!(cold.status, 200);
    assert_eq!(cold.header("x-amz-executed-version"), Some("$LATEST"));
    assert!(cold.header("x-amzn-requestid").is_some());
    assert!(cold.header("x-amz-function-error").is_none());
    let v = json_body(&cold);
    assert_eq!(v["invocations"], 1);
    assert_eq!(v["initType"], "on-demand");
    assert_eq!(v["event"], json!({"name": "a"}));
    let env = &v["env"];
    assert_eq!(env["fn"], "hello");
    assert_eq!(env["version"], "$LATEST");
    assert_eq!(env["memory"], "256");
    assert_eq!(env["group"], "/aws/lambda/hello");
    assert_eq!(env["region"], "us-east-1");
    assert_eq!(env["execEnv"], "AWS_Lambda_nodejs20.x");
    assert_eq!(env["tz"], ":UTC");
    assert_eq!(env["custom"], "yes");
    let isolated = s.isolated().await;
    if isolated {
        // The API as the environment reaches it: inside its own network namespace.
        assert_eq!(env["endpoint"], "http://127.0.0.1:9002");
    } else {
        assert_eq!(env["endpoint"], format!("http://{}", s.addr));
    }
    assert!(
        env["home"].is_null(),
        "clean environment: nothing inherited from the server"
    );
    let stream = env["stream"].as_str().unwrap();
    assert!(
        stream.contains("/[$LATEST]") && stream.len() == 11 + 9 + 32,
        "{stream}"
    );
    if isolated {
        assert_eq!(env["tmpdir"], "/tmp");
    } else {
        assert!(env["tmpdir"]
            .as_str()
            .unwrap()
            .starts_with(s.data_dir.to_str().unwrap()));
    }
    let ctx = &v["context"];
    assert_eq!(ctx["functionName"], "hello");
    assert_eq!(
        ctx["arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:hello"
    );
    assert_eq!(ctx["requestId"], cold.header("x-amzn-requestid").unwrap());
    let remaining = ctx["remaining"].as_i64().unwrap();
    assert!(
        remaining > 6000 && remaining <= 7000,
        "deadline is now + 7 s: {remaining}"
    );
    assert!(
        cold_tail.contains("Init Duration: "),
        "cold start reports Init Duration: {cold_tail}"
    );

    let (warm, warm_tail) = s.invoke_tail("hello", r#"{"name":"b"}"#).await;
    let w = json_body(&warm);
    assert_eq!(w["invocations"], 2, "the warm environment was reused");
    assert_eq!(w["env"]["stream"], env["stream"]);
    assert!(
        !warm_tail.contains("Init Duration"),
        "warm invocation has no Init Duration: {warm_tail}"
    );

    // The log tail and the stored stream hold START, output, END, REPORT in order.
    let id = warm.header("x-amzn-requestid").unwrap();
    let lines: Vec<&str> = warm_tail.lines().collect();
    assert_eq!(lines[0], format!("START RequestId: {id} Version: $LATEST"));
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(&format!("\t{id}\tINFO\thello from node {{\"name\":\"b\"}}"))),
        "{warm_tail}"
    );
    assert!(
        lines.iter().any(|l| l.contains("\tERROR\tto stderr")),
        "{warm_tail}"
    );
    let end = lines
        .iter()
        .position(|l| *l == format!("END RequestId: {id}"))
        .expect("END line");
    let report = lines[end + 1];
    assert!(
        report.starts_with(&format!("REPORT RequestId: {id}\tDuration: ")),
        "{report}"
    );
    assert!(
        report.contains("\tMemory Size: 256 MB\tMax Memory Used: "),
        "{report}"
    );
    let used: u64 = report
        .split("Max Memory Used: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    if isolated {
        // Charged to the environment's cgroup: its own pages, not the interpreter's
        // binary already cached by the host.
        assert!(
            (1..=256).contains(&used),
            "memory measured from the cgroup: {used} MB"
        );
    } else {
        assert!(
            used > 10,
            "memory measured from the process tree: {used} MB"
        );
    }

    let logs = s.wait_logs("hello", "REPORT", 2).await;
    assert_eq!(count(&logs, "START RequestId"), 2);
    assert_eq!(count(&logs, "Init Duration"), 1);
    let start = logs
        .iter()
        .position(|l| l.starts_with(&format!("START RequestId: {id}")))
        .unwrap();
    let out = logs
        .iter()
        .position(|l| l.contains("hello from node {\"name\":\"b\"}"))
        .unwrap();
    let end = logs
        .iter()
        .position(|l| *l == format!("END RequestId: {id}"))
        .unwrap();
    assert!(
        start < out && out < end,
        "function output sits between START and END"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_errors_crashes_timeouts_and_init_failures() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let zip = fixture_zip("node");
    s.create_ok(
        "fn",
        "nodejs20.x",
        "index.handler",
        &zip,
        json!({"Timeout": 1}),
    )
    .await;

    // A thrown error: 200 with X-Amz-Function-Error and Lambda's error body.
    let r = s.invoke("fn", r#"{"action":"error","detail":"d"}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let e = json_body(&r);
    assert_eq!(e["errorType"], "TypeError");
    assert_eq!(e["errorMessage"], "bad thing: d");
    assert!(e["stackTrace"].as_array().is_some_and(|t| !t.is_empty()));
    // The environment survived the handled error.
    assert_eq!(json_body(&s.invoke("fn", "{}").await)["invocations"], 2);

    // Timeout: the exact message, the environment destroyed, the next call cold.
    let (r, tail) = s.invoke_tail("fn", r#"{"action":"sleep","ms":5000}"#).await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let id = r.header("x-amzn-requestid").unwrap().to_string();
    let msg = json_body(&r)["errorMessage"].as_str().unwrap().to_string();
    assert!(
        msg.ends_with(&format!(" {id} Task timed out after 1.00 seconds")),
        "{msg}"
    );
    assert!(tail.contains(&msg), "the timeout is logged: {tail}");
    assert!(tail.contains("Status: timeout"), "{tail}");
    let after = json_body(&s.invoke("fn", "{}").await);
    assert_eq!(
        after["invocations"], 1,
        "a timed-out environment is never reused"
    );

    // Crash: Runtime.ExitError, then a fresh environment serves the next call.
    let r = s.invoke("fn", r#"{"action":"exit"}"#).await;
    let e = json_body(&r);
    let id = r.header("x-amzn-requestid").unwrap();
    assert_eq!(e["errorType"], "Runtime.ExitError");
    assert_eq!(
        e["errorMessage"],
        format!("RequestId: {id} Error: Runtime exited with error: exit status 7")
    );
    assert_eq!(json_body(&s.invoke("fn", "{}").await)["invocations"], 1);

    // Init failures.
    s.create_ok(
        "missing-module",
        "nodejs20.x",
        "broken.handler",
        &zip,
        json!({}),
    )
    .await;
    let e = json_body(&s.invoke("missing-module", "{}").await);
    assert_eq!(e["errorType"], "Runtime.ImportModuleError");
    assert!(
        e["errorMessage"]
            .as_str()
            .unwrap()
            .starts_with("Error: Cannot find module './does-not-exist'"),
        "{e}"
    );
    s.create_ok(
        "missing-handler",
        "nodejs20.x",
        "index.nope",
        &zip,
        json!({}),
    )
    .await;
    let e = json_body(&s.invoke("missing-handler", "{}").await);
    assert_eq!(e["errorType"], "Runtime.HandlerNotFound");
    assert_eq!(e["errorMessage"], "index.nope is undefined or not exported");
    s.create_ok(
        "missing-file",
        "nodejs20.x",
        "nothere.handler",
        &zip,
        json!({}),
    )
    .await;
    assert_eq!(
        json_body(&s.invoke("missing-file", "{}").await)["errorType"],
        "Runtime.ImportModuleError"
    );
    s.create_ok(
        "syntax",
        "nodejs20.x",
        "index.handler",
        &fixture_zip("node-syntax"),
        json!({}),
    )
    .await;
    assert_eq!(
        json_body(&s.invoke("syntax", "{}").await)["errorType"],
        "Runtime.UserCodeSyntaxError"
    );

    // Repeated init failures back off: later calls answer at once with the same
    // error instead of starting a process each time.
    for _ in 0..3 {
        s.invoke("missing-handler", "{}").await;
    }
    let t = std::time::Instant::now();
    for _ in 0..20 {
        let e = json_body(&s.invoke("missing-handler", "{}").await);
        assert_eq!(e["errorType"], "Runtime.HandlerNotFound");
    }
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "backing off, not spawning 20 processes"
    );
    let health = s
        .api
        .call("GET", "/stratus/v1/health", &[], "")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert!(
        health["environments"].as_u64().unwrap() <= 2,
        "no leaked environments: {health}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_handlers_run_with_context_logging_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let zip = fixture_zip("python");
    s.create_ok(
        "py",
        "python3.11",
        "app.handler",
        &zip,
        json!({"MemorySize": 512}),
    )
    .await;

    let (r, tail) = s.invoke_tail("py", r#"{"k":1}"#).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = json_body(&r);
    assert_eq!(v["invocations"], 1);
    assert_eq!(v["functionName"], "py");
    assert_eq!(v["memory"], 512);
    assert_eq!(v["initType"], "on-demand");
    assert_eq!(v["requestId"], r.header("x-amzn-requestid").unwrap());
    assert!(tail.contains("hello from python {'k': 1}"), "{tail}");
    let id = r.header("x-amzn-requestid").unwrap();
    assert!(
        tail.lines()
            .any(|l| l.starts_with("[INFO]\t") && l.ends_with(&format!("Z\t{id}\tlogged at info"))),
        "{tail}"
    );
    assert!(tail.contains("Init Duration"), "{tail}");
    assert_eq!(json_body(&s.invoke("py", "{}").await)["invocations"], 2);

    let r = s.invoke("py", r#"{"action":"error"}"#).await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let e = json_body(&r);
    assert_eq!(e["errorType"], "ValueError");
    assert_eq!(e["errorMessage"], "python says no");

    let e = json_body(&s.invoke("py", r#"{"action":"unserializable"}"#).await);
    assert_eq!(e["errorType"], "Runtime.MarshalError");

    s.create_ok("py-broken", "python3.12", "broken.handler", &zip, json!({}))
        .await;
    let e = json_body(&s.invoke("py-broken", "{}").await);
    assert_eq!(e["errorType"], "Runtime.ImportModuleError");
    assert_eq!(
        e["errorMessage"],
        "Unable to import module 'broken': No module named 'module_that_does_not_exist'"
    );
    s.create_ok("py-nohandler", "python3.12", "app.nope", &zip, json!({}))
        .await;
    let e = json_body(&s.invoke("py-nohandler", "{}").await);
    assert_eq!(e["errorType"], "Runtime.HandlerNotFound");
    assert_eq!(e["errorMessage"], "Handler 'nope' missing on module 'app'");

    let e = json_body(&s.invoke("py", r#"{"action":"exit"}"#).await);
    assert_eq!(e["errorType"], "Runtime.ExitError");
    assert!(
        e["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: exit status 5"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_runtime_rust_function_runs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "rs",
        "provided.al2023",
        "bootstrap",
        &rust_zip(),
        json!({"Timeout": 2}),
    )
    .await;

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let r = s.invoke("rs:$LATEST", r#"{"name":"crab"}"#).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = json_body(&r);
    assert_eq!(v["message"], "Hello, crab!");
    assert_eq!(v["requestId"], r.header("x-amzn-requestid").unwrap());
    assert_eq!(
        v["arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:rs:$LATEST"
    );
    let deadline = v["deadlineMs"].as_u64().unwrap();
    assert!(
        deadline >= before + 1900 && deadline <= before + 2000 + 5000,
        "deadline is epoch ms now + timeout: {deadline} vs {before}"
    );

    let r = s.invoke("rs", r#"{"action":"echo","x":[1,2,3]}"#).await;
    assert_eq!(json_body(&r), json!({"action":"echo","x":[1,2,3]}));

    let r = s.invoke("rs", r#"{"action":"fail"}"#).await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(json_body(&r)["errorMessage"], "requested failure");

    let r = s.invoke("rs", r#"{"action":"sleep","ms":4000}"#).await;
    assert!(json_body(&r)["errorMessage"]
        .as_str()
        .unwrap()
        .ends_with("Task timed out after 2.00 seconds"));
    let (r, tail) = s.invoke_tail("rs", "{}").await;
    assert_eq!(r.status, 200);
    assert!(
        tail.contains("Init Duration"),
        "after a timeout the next call starts a new environment"
    );

    let e = json_body(&s.invoke("rs", r#"{"action":"exit"}"#).await);
    assert_eq!(e["errorType"], "Runtime.ExitError");
    assert!(e["errorMessage"]
        .as_str()
        .unwrap()
        .ends_with("exit status 3"));
    let logs = s.wait_logs("rs", "REPORT", 6).await;
    assert!(count(&logs, "hello from rust") >= 2, "{logs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_function_cannot_stall_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let zip = fixture_zip("node");
    s.create_ok(
        "flood",
        "nodejs20.x",
        "index.handler",
        &zip,
        json!({"Timeout": 60}),
    )
    .await;
    s.create_ok("quiet", "nodejs20.x", "index.handler", &zip, json!({}))
        .await;
    s.invoke("quiet", "{}").await;

    let api = s.api.clone();
    let flood = tokio::spawn(async move {
        api.invoke("flood", r#"{"action":"flood","lines":200000}"#)
            .await
            .unwrap()
    });
    // While 20 MB of output pours out, another function stays responsive.
    for _ in 0..20 {
        let t = std::time::Instant::now();
        let r = s.invoke("quiet", "{}").await;
        assert_eq!(r.status, 200);
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
    let r = flood.await.unwrap();
    assert_eq!(json_body(&r)["flooded"], 200000);
    let logs = s.wait_logs("flood", "REPORT", 1).await;
    let stored = count(&logs, "flood line");
    let dropped: u64 = logs
        .iter()
        .filter_map(|l| {
            l.strip_prefix("[stratus] ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum();
    assert!(stored > 0);
    assert_eq!(
        stored as u64 + dropped,
        200000,
        "every line is stored or counted as dropped"
    );
    let v: Value = s
        .api
        .call("GET", "/stratus/v1/health", &[], "")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["logLinesDropped"].as_u64().unwrap(), dropped);
}
