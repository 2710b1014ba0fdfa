//! The `linux` sandbox through the real server (issue 8, parts 1 and 7): what a
//! function can see and do from inside its environment, and Lambda's answer when it
//! runs out of memory. Needs root (as CI has); without it the server falls back to
//! the `process` driver, which the last test checks is reported as not isolated.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::{json, Value};

/// A Python function that runs the probe named in the event and returns what it saw.
const PROBE: &str = r#"
import json, os, socket, errno, signal

def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def handler(event, context):
    kind = event["probe"]
    if kind == "look":
        paths = event["paths"]
        return {
            "visible": [p for p in paths if os.path.exists(p)],
            "pid1": open("/proc/1/cmdline").read().split("\0")[0],
            "mypid": os.getpid(),
            "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "hostname": socket.gethostname(),
            "ifaces": [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]],
            "uid": os.getuid(),
            "task_writable": os.access("/var/task", os.W_OK),
            "cwd": os.getcwd(),
            "task_root": os.environ["LAMBDA_TASK_ROOT"],
            "endpoint": os.environ["AWS_ENDPOINT_URL"],
            "runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"],
        }
    if kind == "connect":
        return {"result": connect(event["host"], event["port"])}
    if kind == "api":
        import urllib.request
        with urllib.request.urlopen(os.environ["AWS_ENDPOINT_URL"] + "/stratus/v1/health", timeout=5) as r:
            return {"status": r.status, "body": json.loads(r.read())}
    if kind == "fill_tmp":
        written = 0
        try:
            with open("/tmp/fill", "wb") as f:
                while written < 1024 * 1024 * 1024:
                    f.write(b"x" * 1024 * 1024)
                    f.flush()
                    written += 1
        except OSError as e:
            os.remove("/tmp/fill")
            return {"mb": written, "error": errno.errorcode.get(e.errno)}
        return {"mb": written, "error": None}
    if kind == "fork_bomb":
        forked, failed = 0, 0
        for _ in range(3000):
            try:
                pid = os.fork()
            except OSError:
                failed += 1
                continue
            if pid == 0:
                signal.pause()
                os._exit(0)
            forked += 1
        return {"forked": forked, "failed": failed}
    if kind == "signal":
        try:
            os.kill(event["pid"], 9)
            return {"result": "killed"}
        except OSError as e:
            return {"result": errno.errorcode.get(e.errno)}
    if kind == "memory":
        hog = []
        for _ in range(event["mb"]):
            hog.append(bytearray(1024 * 1024))
        return {"allocated": len(hog)}
    return {"error": "unknown probe"}
"#;

async fn start_with_probe(dir: &std::path::Path, extra: &[&str]) -> Server {
    let s = Server::start(&dir.join("data"), extra).await;
    create_probe(&s, "probe", 128).await;
    s
}

async fn create_probe(s: &Server, name: &str, memory_mb: u32) {
    let zip = raw_zip(&[("app.py", PROBE.as_bytes())]);
    s.create_ok(
        name,
        "python3.11",
        "app.handler",
        &zip,
        json!({"Timeout": 30, "MemorySize": memory_mb}),
    )
    .await;
}

async fn probe(s: &Server, name: &str, event: Value) -> Value {
    let r = s.invoke(name, &event.to_string()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("x-amz-function-error").is_none(),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    json_body(&r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_sees_only_its_own_environment() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start_with_probe(dir.path(), &[]).await;
    assert!(s.isolated().await);
    // A neighbour function: its code must be invisible to the probe.
    let zip = raw_zip(&[("app.py", b"def handler(e, c):\n    return 'neighbour'\n")]);
    s.create_ok("neighbour", "python3.11", "app.handler", &zip, json!({}))
        .await;
    assert_eq!(json_body(&s.invoke("neighbour", "{}").await), "neighbour");
    let code_dirs: Vec<String> = std::fs::read_dir(s.data_dir.join("code"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    assert!(code_dirs.len() >= 2);
    let data = s.data_dir.canonicalize().unwrap();
    let mut paths: Vec<String> = vec![
        data.display().to_string(),
        data.join("state.db").display().to_string(),
        "/work".into(),
        "/root/.aws".into(),
        "/home".into(),
        env!("CARGO_MANIFEST_DIR").into(),
    ];
    paths.extend(code_dirs);
    let v = probe(&s, "probe", json!({"probe": "look", "paths": paths})).await;
    assert_eq!(v["visible"], json!([]), "{v}");
    assert_eq!(v["cwd"], "/var/task");
    assert_eq!(v["task_root"], "/var/task");
    assert_eq!(v["task_writable"], false);
    assert_eq!(v["uid"], 65534);
    assert_eq!(v["hostname"], "sandbox");
    assert_eq!(v["ifaces"], json!(["lo"]));
    assert!(v["pid1"].as_str().unwrap().contains("python"), "{v}");
    assert_eq!(v["mypid"], 1, "the runtime is PID 1 of its own namespace");
    assert!(v["procs"].as_array().unwrap().len() <= 2, "{v}");
    assert_eq!(v["endpoint"], "http://127.0.0.1:9002");
    assert_eq!(v["runtime_api"], "127.0.0.1:9001");

    // The host's listeners are out of reach: the API's own port and the gateway's.
    let port: u16 = s.addr.rsplit(':').next().unwrap().parse().unwrap();
    let v = probe(
        &s,
        "probe",
        json!({"probe": "connect", "host": "127.0.0.1", "port": port}),
    )
    .await;
    assert_eq!(v["result"], "ECONNREFUSED", "{v}");
    // But the Stratus API is served inside the namespace.
    let v = probe(&s, "probe", json!({"probe": "api"})).await;
    assert_eq!(v["status"], 200);
    assert_eq!(v["body"]["sandbox"]["driver"], "linux");

    // No other process exists to signal: the server's own pid is not in the namespace.
    let v = probe(
        &s,
        "probe",
        json!({"probe": "signal", "pid": s.child.id().unwrap()}),
    )
    .await;
    assert_eq!(v["result"], "ESRCH", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_answers_out_of_memory_and_the_environment_is_replaced() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start_with_probe(dir.path(), &[]).await;
    let small = probe(&s, "probe", json!({"probe": "memory", "mb": 16})).await;
    assert_eq!(small["allocated"], 16);
    let r = s
        .invoke("probe", &json!({"probe": "memory", "mb": 400}).to_string())
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let id = r.header("x-amzn-requestid").unwrap().to_string();
    let e = json_body(&r);
    assert_eq!(e["errorType"], "Runtime.OutOfMemory", "{e}");
    assert_eq!(
        e["errorMessage"],
        format!("RequestId: {id} Error: Runtime exited with error: signal: killed")
    );
    // A new environment serves the next call.
    let (r, tail) = s
        .invoke_tail("probe", &json!({"probe": "memory", "mb": 8}).to_string())
        .await;
    assert_eq!(json_body(&r)["allocated"], 8);
    assert!(tail.contains("Init Duration"), "{tail}");
    let used: u64 = tail
        .split("Max Memory Used: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((8..=128).contains(&used), "{tail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmp_fills_up_at_its_size_and_a_fork_bomb_stays_inside() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start_with_probe(dir.path(), &[]).await;
    // /tmp is a tmpfs whose pages count as the environment's memory: a function with
    // room for it fills it to its 512 MB and gets ENOSPC.
    create_probe(&s, "big", 2048).await;
    let v = probe(&s, "big", json!({"probe": "fill_tmp"})).await;
    assert_eq!(v["error"], "ENOSPC", "{v}");
    let mb = v["mb"].as_u64().unwrap();
    assert!((500..=512).contains(&mb), "/tmp holds 512 MB: {v}");
    let v = probe(&s, "big", json!({"probe": "fork_bomb"})).await;
    let forked = v["forked"].as_u64().unwrap();
    assert!(forked < 1024, "{v}");
    assert!(v["failed"].as_u64().unwrap() > 1000, "{v}");
    // The server and other functions are fine meanwhile.
    let zip = raw_zip(&[("app.py", b"def handler(e, c):\n    return 'ok'\n")]);
    s.create_ok("calm", "python3.11", "app.handler", &zip, json!({}))
        .await;
    assert_eq!(json_body(&s.invoke("calm", "{}").await), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_driver_is_reported_as_not_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &["--sandbox", "process"]).await;
    let h = s
        .api
        .call("GET", "/stratus/v1/health", &[], "")
        .await
        .unwrap();
    let v = json_body(&h);
    assert_eq!(v["sandbox"]["driver"], "process");
    assert_eq!(v["sandbox"]["isolated"], false);
    assert!(v["sandbox"]["pinnedEnvironments"].is_null(), "{v}");
    if is_root() {
        let dir = tempfile::tempdir().unwrap();
        let s = Server::start(
            &dir.path().join("data"),
            &["--sandbox", "linux", "--seccomp", "off"],
        )
        .await;
        let v = json_body(
            &s.api
                .call("GET", "/stratus/v1/health", &[], "")
                .await
                .unwrap(),
        );
        assert_eq!(v["sandbox"]["driver"], "linux");
        assert_eq!(v["sandbox"]["isolated"], true);
        assert_eq!(v["sandbox"]["seccomp"], false);
        let cgroup = v["sandbox"]["cgroup"].as_str().unwrap();
        assert!(cgroup == "v1" || cgroup == "v2", "{v}");
        // Nothing runs yet, so nothing is busy.
        assert_eq!(v["sandbox"]["pinnedEnvironments"], 0, "{v}");
    }
}
