//! The embedded Node and Python bootstraps' Runtime API clients against a scripted
//! Runtime API that misbehaves: split responses, `Connection: close`, a dropped idle
//! connection, a missing `Content-Length`, a garbage status line. A good exchange is
//! served; a broken one ends the runtime with a message that says what was wrong
//! (never a hang, never a wrong answer). Both runtimes behave alike: the same
//! single retry (only a reused keep-alive connection that got no answer at all) and
//! the same exit status (1) when the Runtime API fails them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the scripted API saw it.
#[derive(Debug, Clone)]
struct Seen {
    conn: usize,
    method: String,
    path: String,
    body: String,
}

/// What the script does with a request.
enum Action {
    /// Answer with these bytes, written a few bytes at a time.
    Send(Vec<u8>),
    /// Answer with these bytes in one write (large bodies).
    SendWhole(Vec<u8>),
    /// Close the connection without answering.
    Close,
    /// Send these bytes (part of an answer), then close the connection.
    SendThenClose(Vec<u8>),
    /// Answer nothing and keep the connection open (a parked `/next`).
    Park,
}

type Script = Box<dyn FnMut(usize, &Seen) -> Action + Send>;

fn http(status: &str, headers: &str, body: &str) -> Action {
    Action::Send(
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn event(id: &str, body: &str) -> Action {
    http(
        "200 OK",
        &format!(
            "Lambda-Runtime-Aws-Request-Id: {id}\r\nLambda-Runtime-Deadline-Ms: 9999999999999\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:f\r\nLambda-Runtime-Trace-Id: Root=1-0-0\r\nContent-Type: application/json\r\n"
        ),
        body,
    )
}

fn accepted() -> Action {
    http("202 Accepted", "", r#"{"status":"OK"}"#)
}

/// Serves `script` on an ephemeral port; returns the address and the requests seen.
async fn scripted(script: Script) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(script));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut conn = 0;
        while let Ok((stream, _)) = listener.accept().await {
            conn += 1;
            tokio::spawn(serve(stream, conn, script.clone(), log.clone()));
        }
    });
    (addr, seen)
}

async fn serve(
    mut s: TcpStream,
    conn: usize,
    script: Arc<Mutex<Script>>,
    log: Arc<Mutex<Vec<Seen>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // One request: head, then Content-Length bytes of body.
        let (head_len, method, path, body_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let len = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                    .unwrap_or(0usize);
                break (
                    n,
                    req.method.unwrap_or_default().to_string(),
                    req.path.unwrap_or_default().to_string(),
                    len,
                );
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        while buf.len() < head_len + body_len {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let seen = Seen {
            conn,
            method,
            path,
            body: String::from_utf8_lossy(&buf[head_len..head_len + body_len]).into_owned(),
        };
        buf.drain(..head_len + body_len);
        let n = {
            let mut log = log.lock().unwrap();
            log.push(seen.clone());
            log.len()
        };
        let action = (script.lock().unwrap())(n, &seen);
        match action {
            Action::Send(bytes) => {
                for piece in bytes.chunks(5) {
                    if s.write_all(piece).await.is_err() {
                        return;
                    }
                    let _ = s.flush().await;
                }
            }
            Action::SendWhole(bytes) => {
                if s.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Action::Close => return,
            Action::SendThenClose(bytes) => {
                let _ = s.write_all(&bytes).await;
                let _ = s.flush().await;
                return;
            }
            Action::Park => std::future::pending::<()>().await,
        }
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// Starts `runtime` ("node" or "python") with a handler answering `{"got": event}`,
/// against `api`; returns its exit status and stderr, or panics after 20 s.
async fn run_runtime(runtime: &str, api: &str) -> (Option<i32>, String) {
    match runtime {
        "node" => {
            let source = "exports.handler = async (event) => ({ got: event });\n";
            run_handler(runtime, "index.handler", source, api).await
        }
        _ => {
            let source = "def handler(event, context):\n    return {'got': event}\n";
            run_handler(runtime, "app.handler", source, api).await
        }
    }
}

/// Starts `runtime` with `source` as `index.js` (node) or `app.py` (python) and
/// `_HANDLER=handler`, against `api`.
async fn run_handler(
    runtime: &str,
    handler: &str,
    source: &str,
    api: &str,
) -> (Option<i32>, String) {
    let code = tempfile::tempdir().unwrap();
    let (file, program, bootstrap) = match runtime {
        "node" => ("index.js", "node", "runtimes/node/bootstrap.js"),
        _ => ("app.py", "python3", "runtimes/python/bootstrap.py"),
    };
    std::fs::write(code.path().join(file), source).unwrap();
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg(repo_file(bootstrap)).env("_HANDLER", handler);
    let child = cmd
        .current_dir(code.path())
        .env("LAMBDA_TASK_ROOT", code.path())
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "f")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the {runtime} runtime hung"))
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const RUNTIMES: [&str; 2] = ["node", "python"];

#[tokio::test]
async fn split_responses_and_connection_close_are_served() {
    for runtime in RUNTIMES {
        // Two events; the first response asks to close the connection, so the
        // runtime must reconnect for its next request. After the second answer the
        // API goes away and the runtime exits with an error.
        let (api, seen) = scripted(Box::new(|n, req| match n {
            1 => event("id-1", r#"{"n":1}"#),
            2 if req.path.ends_with("/id-1/response") => {
                http("202 Accepted", "Connection: close\r\n", "{}")
            }
            3 => event("id-2", r#"{"n":2}"#),
            4 => accepted(),
            _ => Action::Close,
        }))
        .await;
        let (status, stderr) = run_runtime(runtime, &api).await;
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 4, "{runtime}: {seen:#?}\n{stderr}");
        assert_eq!(seen[0].method, "GET", "{runtime}");
        assert_eq!(seen[1].method, "POST", "{runtime}");
        assert_eq!(seen[1].path, "/2018-06-01/runtime/invocation/id-1/response");
        assert_eq!(
            json(&seen[1].body),
            serde_json::json!({"got": {"n": 1}}),
            "{runtime}"
        );
        assert_eq!(
            seen[2].conn, 2,
            "{runtime} reconnected after Connection: close"
        );
        assert_eq!(seen[3].path, "/2018-06-01/runtime/invocation/id-2/response");
        assert_eq!(
            json(&seen[3].body),
            serde_json::json!({"got": {"n": 2}}),
            "{runtime}"
        );
        assert_ne!(status, Some(0), "{runtime}: {stderr}");
    }
}

#[tokio::test]
async fn an_idle_connection_closed_by_the_server_is_retried_once() {
    for runtime in RUNTIMES {
        // The first /next is dropped without an answer (as when the server closes a
        // keep-alive connection): the runtime retries once on a new connection.
        let (api, seen) = scripted(Box::new(|n, _| match n {
            1 => event("id-1", "{}"),
            2 => accepted(),
            3 => Action::Close,
            4 => event("id-2", "{}"),
            5 => accepted(),
            _ => Action::Park,
        }))
        .await;
        let api2 = api.clone();
        let handle = tokio::spawn(async move { run_runtime(runtime, &api2).await });
        for _ in 0..200 {
            if seen.lock().unwrap().len() >= 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        handle.abort();
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 6, "{runtime}: {seen:#?}");
        assert_eq!(
            seen[3].path, "/2018-06-01/runtime/invocation/next",
            "{runtime}"
        );
        assert_eq!(seen[3].conn, 2, "{runtime}: {seen:#?}");
        assert_eq!(
            seen[4].path, "/2018-06-01/runtime/invocation/id-2/response",
            "{runtime}"
        );
    }
}

#[tokio::test]
async fn malformed_runtime_api_responses_end_the_runtime_with_a_reason() {
    /// (what is wrong, the answer to every request, what the runtime must say)
    type Case = (&'static str, fn() -> Action, &'static str);
    let cases: [Case; 5] = [
        (
            "no Content-Length",
            || {
                Action::Send(
                    b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: x\r\n\r\n{}".to_vec(),
                )
            },
            "Content-Length",
        ),
        (
            "garbage status line",
            || Action::Send(b"SPDY/9 what\r\nContent-Length: 0\r\n\r\n".to_vec()),
            "malformed response",
        ),
        (
            "/next answered 500",
            || http("500 Internal Server Error", "", "broken"),
            "500",
        ),
        (
            "an event without a request id",
            || http("200 OK", "Content-Type: application/json\r\n", "{}"),
            "Lambda-Runtime-Aws-Request-Id",
        ),
        (
            "a response head that never ends",
            || {
                let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
                head.extend(std::iter::repeat_n(b'x', 1_100_000));
                Action::SendWhole(head)
            },
            "larger than 1 MB",
        ),
    ];
    for runtime in RUNTIMES {
        for (what, answer, needle) in cases {
            let (api, _) = scripted(Box::new(move |_, _| answer())).await;
            let (status, stderr) = run_runtime(runtime, &api).await;
            assert_eq!(status, Some(1), "{runtime}, {what}: {stderr}");
            assert!(
                stderr.contains(needle),
                "{runtime}, {what}: stderr does not say {needle:?}: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn an_unreachable_runtime_api_is_an_error_not_a_hang() {
    // Bind and drop a listener, so the port is closed.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    for runtime in RUNTIMES {
        let (status, stderr) = run_runtime(runtime, &addr).await;
        assert_eq!(status, Some(1), "{runtime}: {stderr}");
        assert!(
            stderr.contains("/2018-06-01/runtime/invocation/next"),
            "{runtime} says which request failed: {stderr}"
        );
    }
}

#[tokio::test]
async fn only_a_reused_connection_that_got_no_answer_is_retried() {
    /// (what happens, the script, how many requests the API must see)
    type Case = (&'static str, fn(usize) -> Action, usize);
    let cases: [Case; 3] = [
        (
            // A fresh connection: the request may have been read; not retried.
            "the first /next, on a new connection, closed unanswered",
            |_| Action::Close,
            1,
        ),
        (
            // Part of an answer came: the request was processed; not retried.
            "a reused connection closed in the middle of the answer",
            |n| match n {
                1 => event("id-1", "{}"),
                2 => accepted(),
                3 => Action::SendThenClose(b"HTTP/1.1 200 OK\r\nLambda-Runt".to_vec()),
                _ => event("id-2", "{}"),
            },
            3,
        ),
        (
            // Retried once on a new connection, which then fails too: not again.
            "a reused connection and then the retry closed unanswered",
            |n| match n {
                1 => event("id-1", "{}"),
                2 => accepted(),
                _ => Action::Close,
            },
            4,
        ),
    ];
    for runtime in RUNTIMES {
        for (what, script, requests) in cases {
            let (api, seen) = scripted(Box::new(move |n, _| script(n))).await;
            let (status, stderr) = run_runtime(runtime, &api).await;
            let seen = seen.lock().unwrap().clone();
            assert_eq!(status, Some(1), "{runtime}, {what}: {stderr}");
            assert_eq!(
                seen.len(),
                requests,
                "{runtime}, {what}: {seen:#?}\n{stderr}"
            );
            assert!(
                seen.iter()
                    .skip(2)
                    .all(|r| r.path == "/2018-06-01/runtime/invocation/next"),
                "{runtime}, {what}: {seen:#?}"
            );
            if requests == 4 {
                assert_eq!(
                    seen[3].conn, 2,
                    "{runtime}: the retry uses a new connection"
                );
            }
            assert!(
                stderr.contains("/2018-06-01/runtime/invocation/next"),
                "{runtime}, {what}: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn node_handlers_finish_by_callback_context_or_an_empty_event_loop() {
    // As Lambda's Node runtime does: callback's result is posted once the event
    // loop is empty (here: after the timer that marks it), unless
    // callbackWaitsForEmptyEventLoop is false; context.succeed posts at once; a
    // handler that neither returns a promise nor calls back answers null when the
    // loop empties, and a plain (non-promise) return value is ignored. The
    // runtime's own idle connection must not keep the loop alive.
    let source = r#"
const later = (r) => setTimeout(() => { r.fired = true; }, 50);
exports.cb = (event, context, callback) => { setTimeout(() => callback(null, 'by callback'), 5); };
exports.waits = (event, context, callback) => { const r = { fired: false }; later(r); callback(null, r); };
exports.nowait = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  const r = { fired: false }; later(r); callback(null, r);
};
exports.first = (event, context, callback) => { context.succeed('first'); callback(null, 'second'); };
exports.succeed = (event, context) => { const r = { fired: false }; later(r); context.succeed(r); };
exports.drain = (event, context) => { setTimeout(() => {}, 20); };
exports.plain = (event) => ({ ignored: true });
"#;
    for (handler, expected) in [
        ("index.cb", r#""by callback""#),
        ("index.waits", r#"{"fired":true}"#),
        ("index.nowait", r#"{"fired":false}"#),
        ("index.first", r#""first""#),
        ("index.succeed", r#"{"fired":false}"#),
        ("index.drain", "null"),
        ("index.plain", "null"),
    ] {
        let (api, seen) = scripted(Box::new(|n, _| match n {
            1 => event("id-1", "{}"),
            2 => accepted(),
            _ => Action::Park,
        }))
        .await;
        let run = tokio::spawn(async move { run_handler("node", handler, source, &api).await });
        for _ in 0..400 {
            if seen.lock().unwrap().len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        run.abort();
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 3, "{handler}: {seen:#?}");
        assert_eq!(
            seen[1].path, "/2018-06-01/runtime/invocation/id-1/response",
            "{handler}"
        );
        assert_eq!(seen[1].body, expected, "{handler}");
        assert_eq!(
            seen[2].path, "/2018-06-01/runtime/invocation/next",
            "{handler}"
        );
    }
}

#[tokio::test]
async fn a_large_event_arrives_whole() {
    // A 3 MB event reaches the handler intact (it arrives in many reads).
    let data = "x".repeat(3_000_000);
    let body = format!(r#"{{"data":"{data}"}}"#);
    for (runtime, handler, source) in [
        (
            "node",
            "index.handler",
            "exports.handler = async (e) => e.data.length;\n",
        ),
        (
            "python",
            "app.handler",
            "def handler(e, c):\n    return len(e['data'])\n",
        ),
    ] {
        let big = match event("id-big", &body) {
            Action::Send(bytes) => Action::SendWhole(bytes),
            other => other,
        };
        let big = std::sync::Mutex::new(Some(big));
        let (api, seen) = scripted(Box::new(move |n, _| match n {
            1 => big.lock().unwrap().take().unwrap_or(Action::Close),
            2 => accepted(),
            _ => Action::Park,
        }))
        .await;
        let run = tokio::spawn(async move { run_handler(runtime, handler, source, &api).await });
        for _ in 0..400 {
            if seen.lock().unwrap().len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        run.abort();
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 2, "{runtime}: {seen:#?}");
        assert_eq!(
            seen[1].path, "/2018-06-01/runtime/invocation/id-big/response",
            "{runtime}"
        );
        assert_eq!(seen[1].body, "3000000", "{runtime}");
    }
}

#[tokio::test]
async fn a_request_id_is_one_encoded_path_segment_in_both_runtimes() {
    // An id with characters a path cannot carry as they are is percent-encoded
    // the same way by both (encodeURIComponent's rules).
    for runtime in RUNTIMES {
        let (api, seen) = scripted(Box::new(|n, _| match n {
            1 => event("a/b c?d~é", "{}"),
            2 => accepted(),
            _ => Action::Park,
        }))
        .await;
        let run = tokio::spawn(async move { run_runtime(runtime, &api).await });
        for _ in 0..400 {
            if seen.lock().unwrap().len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        run.abort();
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 2, "{runtime}: {seen:#?}");
        assert_eq!(
            seen[1].path, "/2018-06-01/runtime/invocation/a%2Fb%20c%3Fd~%C3%83%C2%A9/response",
            "{runtime}"
        );
    }
}

#[tokio::test]
async fn a_node_promise_that_never_settles_posts_runtime_nodejs_exit() {
    // The event loop empties while the handler's promise is pending: Lambda's
    // Node.js runtime error, then the next invocation.
    let source = r#"
exports.pending = async () => new Promise(() => {});
exports.awaiting = async () => { await new Promise(() => {}); return 'never'; };
"#;
    for handler in ["index.pending", "index.awaiting"] {
        let (api, seen) = scripted(Box::new(|n, _| match n {
            1 => event("id-1", "{}"),
            2 => accepted(),
            _ => Action::Park,
        }))
        .await;
        let run = tokio::spawn(async move { run_handler("node", handler, source, &api).await });
        for _ in 0..400 {
            if seen.lock().unwrap().len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        run.abort();
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 3, "{handler}: {seen:#?}");
        assert_eq!(
            seen[1].path, "/2018-06-01/runtime/invocation/id-1/error",
            "{handler}"
        );
        let e = json(&seen[1].body);
        assert_eq!(e["errorType"], "Runtime.NodeJsExit", "{handler}");
        assert!(
            e["errorMessage"]
                .as_str()
                .is_some_and(|m| m.contains("a Promise that was never settled")),
            "{handler}: {e}"
        );
        assert_eq!(
            seen[2].path, "/2018-06-01/runtime/invocation/next",
            "{handler}"
        );
    }
}
