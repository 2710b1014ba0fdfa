//! Runtimes that exit between invocations (issue 12): in Lambda such an exit costs
//! the next invocation a fresh init, never an error. End to end through the real
//! `stratus` binary and server: a one-shot `provided.al2` bootstrap (a Python script
//! that handles one event and exits) sequentially and under concurrency with
//! reserved concurrency (no leaked slot), a runtime gone while parked in `/next`, a
//! bootstrap that dies at every init (the usual init error, no retry loop), one that
//! hangs up its first `/next` and exits (a clean `Runtime.ExitError`, bounded), and
//! the Ruby runtime exiting after a critical exception as Lambda's does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The function's log once `n` lines containing `needle` are there, and 300 ms more
/// (a stray line would show up by then, before anything is counted exactly).
async fn settled_logs(s: &Server, function: &str, needle: &str, n: usize) -> Vec<String> {
    let first = s.wait_logs(function, needle, n).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = s.logs(function).await;
    assert!(later.len() >= first.len());
    later
}

/// START, END and REPORT appear exactly `n` times each.
fn assert_platform_lines_once_each(logs: &[String], n: usize) {
    for prefix in ["START RequestId: ", "END RequestId: ", "REPORT RequestId: "] {
        assert_eq!(
            logs.iter().filter(|l| l.starts_with(prefix)).count(),
            n,
            "{prefix}: {logs:#?}"
        );
    }
}

/// The Python interpreter's absolute path, for a bootstrap's `#!` line.
fn python() -> String {
    let o = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is installed");
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A `provided` bootstrap that fetches ONE event with `GET /next`, answers it, waits
/// `linger` seconds (so that the next event is handed to this environment before it
/// is gone) and exits 0, the way a one-shot shell-script bootstrap does.
fn one_shot_bootstrap(linger: f64) -> String {
    format!(
        r#"#!{python}
import json, os, sys, time, urllib.request
token = os.urandom(8).hex()  # pids repeat across sandboxes (each its own pid 1)
base = 'http://' + os.environ['AWS_LAMBDA_RUNTIME_API'] + '/2018-06-01/runtime/invocation'
with urllib.request.urlopen(base + '/next') as r:
    rid = r.headers['Lambda-Runtime-Aws-Request-Id']
    event = json.loads(r.read() or b'null')
print('one-shot handling', rid, flush=True)
if isinstance(event, dict) and event.get('sleep'):
    time.sleep(event['sleep'])
body = json.dumps({{'request_id': rid, 'process': token, 'event': event}}).encode()
req = urllib.request.Request(base + '/' + rid + '/response', data=body, method='POST')
urllib.request.urlopen(req).read()
time.sleep({linger})
sys.exit(0)
"#,
        python = python()
    )
}

/// A zip whose `bootstrap` (mode 0755) is `script`.
fn bootstrap_zip(script: &str) -> Vec<u8> {
    use std::os::unix::fs::PermissionsExt;
    let pkg = tempfile::tempdir().unwrap();
    let path = pkg.path().join("bootstrap");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    stratus_package::zip_dir(pkg.path()).unwrap()
}

/// The REPORT lines of `logs`.
fn reports(logs: &[String]) -> Vec<&String> {
    logs.iter()
        .filter(|l| l.starts_with("REPORT RequestId: "))
        .collect()
}

/// Asserts a successful, non-error reply and returns its JSON.
fn ok_body(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("x-amz-function-error").is_none(),
        "function error: {}",
        String::from_utf8_lossy(&r.body)
    );
    json_body(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_bootstrap_costs_each_next_invocation_a_cold_start() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "once",
        "provided.al2",
        "unused",
        &bootstrap_zip(&one_shot_bootstrap(0.3)),
        json!({"Timeout": 10}),
    )
    .await;

    // Each invocation right after the previous one: it is handed to the environment
    // that answered last (still lingering), which exits without fetching it.
    let mut ids = Vec::new();
    let mut pids = HashSet::new();
    let mut took = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        let r = s.invoke("once", &json!({ "n": i }).to_string()).await;
        took.push(t.elapsed().as_millis());
        let v = ok_body(&r);
        assert_eq!(v["event"]["n"], i, "{v}");
        let id = r.header("x-amzn-requestid").unwrap().to_string();
        assert_eq!(v["request_id"], id.as_str(), "the original request id");
        ids.push(id);
        pids.insert(v["process"].as_str().unwrap().to_string());
    }
    assert_eq!(pids.len(), 5, "one process per invocation: {pids:?}");
    // The first is a plain cold start; the others also wait for the lingering
    // environment to exit before going to a new one.
    eprintln!("one-shot bootstrap, ms per invoke: {took:?}");

    let logs = settled_logs(&s, "once", "REPORT RequestId", 5).await;
    assert_platform_lines_once_each(&logs, 5);
    for id in &ids {
        assert_eq!(
            count(&logs, &format!("START RequestId: {id} ")),
            1,
            "{logs:#?}"
        );
        assert_eq!(count(&logs, &format!("END RequestId: {id}")), 1);
        assert_eq!(count(&logs, &format!("REPORT RequestId: {id}\t")), 1);
    }
    for report in reports(&logs) {
        assert!(report.contains("\tInit Duration: "), "{report}");
        assert!(!report.contains("Status: error"), "{report}");
    }
    assert_eq!(count(&logs, "Runtime.ExitError"), 0, "{logs:#?}");
    assert_eq!(count(&logs, "one-shot handling"), 5, "{logs:#?}");
    // START comes before the function's own line for the same request.
    for id in &ids {
        let start = logs
            .iter()
            .position(|l| l.starts_with(&format!("START RequestId: {id} ")))
            .unwrap();
        let own = logs
            .iter()
            .position(|l| l.contains(&format!("one-shot handling {id}")))
            .unwrap();
        let end = logs
            .iter()
            .position(|l| l.starts_with(&format!("END RequestId: {id}")))
            .unwrap();
        assert!(start < own && own < end, "{logs:#?}");
    }
    assert!(s.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_environments_under_reserved_concurrency_leak_no_slot() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "capped-once",
        "provided.al2",
        "unused",
        &bootstrap_zip(&one_shot_bootstrap(0.2)),
        json!({"Timeout": 10}),
    )
    .await;
    let r = s
        .api
        .call(
            "PUT",
            "/2017-10-31/functions/capped-once/concurrency",
            &[],
            r#"{"ReservedConcurrentExecutions":2}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // 4 callers, 4 calls each, back to back.
    let callers = (0..4)
        .map(|c| {
            let api = s.api.clone();
            async move {
                let mut out = Vec::new();
                for i in 0..4 {
                    let payload = json!({ "caller": c, "i": i, "sleep": 0.1 }).to_string();
                    out.push(api.invoke("capped-once", &payload).await.expect("invoke"));
                }
                out
            }
        })
        .collect();
    let replies: Vec<Reply> = join_all(callers).await.into_iter().flatten().collect();
    let mut ok = 0;
    for r in &replies {
        match r.status {
            200 => {
                ok_body(r);
                ok += 1;
            }
            429 => assert_eq!(
                reason(r).as_deref(),
                Some("ReservedFunctionConcurrentInvocationLimitExceeded"),
                "{}",
                String::from_utf8_lossy(&r.body)
            ),
            other => panic!("{other}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    assert!(ok >= 2, "some calls ran: {ok} of {}", replies.len());

    // Every slot came back: twice, 2 concurrent calls both run.
    for round in 0..2 {
        let both = s
            .invoke_concurrently("capped-once", r#"{"sleep":0.3}"#, 2)
            .await;
        for r in &both {
            assert_eq!(r.status, 200, "round {round}: a slot leaked");
            ok_body(r);
        }
        ok += 2;
        // Past the linger, so the next round starts afresh.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    let logs = settled_logs(&s, "capped-once", "REPORT RequestId", ok).await;
    assert_platform_lines_once_each(&logs, ok);
    for report in reports(&logs) {
        assert!(report.contains("\tInit Duration: "), "{report}");
    }
    assert!(s.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_that_dies_at_every_init_fails_fast_without_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let script = format!(
        "#!{}\nimport sys\nprint('dying at init', flush=True)\nsys.exit(3)\n",
        python()
    );
    s.create_ok(
        "dies",
        "provided.al2",
        "unused",
        &bootstrap_zip(&script),
        json!({"Timeout": 10}),
    )
    .await;
    for _ in 0..2 {
        let started = Instant::now();
        let r = s.invoke("dies", "{}").await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
        let e = json_body(&r);
        assert_eq!(e["errorType"], "Runtime.ExitError", "{e}");
        assert_eq!(
            e["errorMessage"], "Error: Runtime exited with error: exit status 3",
            "{e}"
        );
    }
    let logs = settled_logs(&s, "dies", "dying at init", 2).await;
    assert_eq!(
        count(&logs, "dying at init"),
        2,
        "one init per call: {logs:#?}"
    );
    assert_eq!(count(&logs, "START RequestId"), 0, "{logs:#?}");
    assert!(s.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_that_hangs_up_its_first_next_and_exits_ends_in_exit_error_without_looping() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    // Ends init with a first `GET /next`, hangs up before any event can come, exits.
    let script = format!(
        r#"#!{}
import os, socket, sys, time
print('init', flush=True)
host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].rsplit(':', 1)
c = socket.create_connection((host, int(port)))
c.sendall(b'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n')
c.close()
time.sleep(0.2)
sys.exit(4)
"#,
        python()
    );
    s.create_ok(
        "never-takes",
        "provided.al2",
        "unused",
        &bootstrap_zip(&script),
        json!({"Timeout": 10}),
    )
    .await;
    let started = Instant::now();
    let r = s.invoke("never-takes", "{}").await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let id = r.header("x-amzn-requestid").unwrap().to_string();
    let e = json_body(&r);
    assert_eq!(e["errorType"], "Runtime.ExitError", "{e}");
    assert_eq!(
        e["errorMessage"],
        format!("RequestId: {id} Error: Runtime exited with error: exit status 4"),
        "{e}"
    );
    let logs = s.wait_logs("never-takes", "REPORT RequestId", 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let logs = {
        let later = s.logs("never-takes").await;
        assert!(later.len() >= logs.len());
        later
    };
    // Whether the event reached the hung-up `/next` (then it was fetched: one
    // environment) or not (then dispatched again, at most twice) is a race; the
    // bound holds either way.
    let inits = logs.iter().filter(|l| l.as_str() == "init").count();
    assert!(
        (1..=3).contains(&inits),
        "at most two dispatches again: {inits} inits: {logs:#?}"
    );
    assert_platform_lines_once_each(&logs, 1);
    eprintln!("never-takes: {inits} environments started for one event");
    assert!(s.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_gone_while_waiting_in_next_costs_the_next_event_a_cold_start() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    // Answers one event, then asks for the next one and goes away while waiting
    // (its connection closed, then its process lingers and exits): a runtime killed
    // between calls.
    let script = format!(
        r#"#!{}
import json, os, socket, sys, time, urllib.request
token = os.urandom(8).hex()
api = os.environ['AWS_LAMBDA_RUNTIME_API']
base = 'http://' + api + '/2018-06-01/runtime/invocation'
with urllib.request.urlopen(base + '/next') as r:
    rid = r.headers['Lambda-Runtime-Aws-Request-Id']
    r.read()
body = json.dumps({{'process': token}}).encode()
urllib.request.urlopen(urllib.request.Request(base + '/' + rid + '/response', data=body, method='POST')).read()
host, port = api.rsplit(':', 1)
c = socket.create_connection((host, int(port)))
c.sendall(b'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n')
c.close()
time.sleep(0.5)
sys.exit(0)
"#,
        python()
    );
    s.create_ok(
        "gone-waiting",
        "provided.al2",
        "unused",
        &bootstrap_zip(&script),
        json!({"Timeout": 10}),
    )
    .await;
    let mut seen = HashSet::new();
    for round in 0..3 {
        let (r, tail) = s.invoke_tail("gone-waiting", "{}").await;
        let v = ok_body(&r);
        assert!(
            seen.insert(v["process"].as_str().unwrap().to_string()),
            "round {round}: {v}"
        );
        assert!(tail.contains("\tInit Duration: "), "round {round}: {tail}");
        // The runtime is parked in /next and hangs up within a few milliseconds;
        // the next event comes while its process still lingers.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let logs = settled_logs(&s, "gone-waiting", "REPORT RequestId", 3).await;
    assert_platform_lines_once_each(&logs, 3);
    assert!(s.terminate().await.success());
}

const CRITICAL_RB: &str = r#"
$count = 0
TOKEN = Random.new.bytes(8).unpack1('H*') # pids repeat across sandboxes

def handler(event:, context:)
  $count += 1
  case event['action']
  when 'no_method' then nil.upcase
  when 'runtime_error' then raise 'an ordinary error'
  end
  { invocations: $count, process: TOKEN }
end
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruby_exits_after_a_critical_exception_and_the_next_call_starts_cold() {
    let dir = tempfile::tempdir().unwrap();
    // Ruby here is Debian 12's 3.1: `ruby3.2` runs on it only with the fallback.
    let s = Server::start(&dir.path().join("data"), &["--runtime-fallback", "nearest"]).await;
    s.create_ok(
        "rb-critical",
        "ruby3.2",
        "app.handler",
        &raw_zip(&[("app.rb", CRITICAL_RB.as_bytes())]),
        json!({"Timeout": 10}),
    )
    .await;

    let first = ok_body(&s.invoke("rb-critical", "{}").await);
    assert_eq!(first["invocations"], 1);
    // An ordinary StandardError keeps the environment.
    let r = s
        .invoke("rb-critical", r#"{"action":"runtime_error"}"#)
        .await;
    assert_eq!(json_body(&r)["errorType"], "Function<RuntimeError>");
    let v = ok_body(&s.invoke("rb-critical", "{}").await);
    assert_eq!(v["invocations"], 3, "{v}");
    assert_eq!(v["process"], first["process"]);

    // NoMethodError: Lambda's error for this call, then the runtime exits.
    for round in 0..2 {
        let (r, tail) = s
            .invoke_tail("rb-critical", r#"{"action":"no_method"}"#)
            .await;
        assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
        let e = json_body(&r);
        assert_eq!(e["errorType"], "Function<NoMethodError>", "{e}");
        assert!(
            e["errorMessage"].as_str().unwrap().contains("upcase"),
            "{e}"
        );
        assert!(e["stackTrace"].is_array(), "{e}");
        assert!(tail.contains("Critical exception from handler"), "{tail}");
        // The next call right away: a fresh environment, not Runtime.ExitError.
        let (r, tail) = s.invoke_tail("rb-critical", "{}").await;
        let v = ok_body(&r);
        assert_eq!(
            v["invocations"], 1,
            "round {round}: a fresh environment: {v}"
        );
        assert_ne!(v["process"], first["process"]);
        assert!(tail.contains("\tInit Duration: "), "{tail}");
        assert_eq!(tail.matches("START RequestId").count(), 1, "{tail}");
    }

    let logs = settled_logs(&s, "rb-critical", "REPORT RequestId", 7).await;
    assert_platform_lines_once_each(&logs, 7);
    assert_eq!(count(&logs, "Runtime.ExitError"), 0, "{logs:#?}");
    assert!(s.terminate().await.success());
}
