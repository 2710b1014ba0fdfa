//! Escape attempts from inside a function (issue 8, part 7), end to end through the
//! real server on the `linux` sandbox driver: an attacker function tries to reach a
//! victim function deployed beside it — its environment variables, its processes, its
//! Runtime API, its configuration through the API — and the server's own files and
//! listeners, and floods its standard output; each attempt is shown contained. The
//! attempts covered by `sandbox.rs` (data dir and neighbour code invisible, the API
//! port unreachable, the server's pid, memory bomb, `/tmp` full, fork bomb) are not
//! repeated. Needs root (as CI has); without it the server runs the `process` driver,
//! which isolates nothing, and these tests return early.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The victim: holds a secret in its environment and answers with who it is,
/// optionally after sleeping (so an invocation of it is in flight).
const VICTIM: &str = r#"
import os, time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"from": "victim", "request_id": context.aws_request_id,
            "has_secret": os.environ.get("VICTIM_SECRET", "").startswith("planted-")}
"#;

/// The attacker: runs the attempt named in the event and returns what it got.
const ATTACKER: &str = r#"
import ctypes, errno, json, os, socket, time, urllib.request, urllib.error

libc = ctypes.CDLL(None, use_errno=True)

def err(rc):
    # The errno name of a failed libc call, or "ok".
    if rc == -1:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    return "ok"

def oserr(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def connect(host, port):
    return oserr(lambda: socket.create_connection((host, port), timeout=2).close())

def read_everything_in_proc(secret):
    # Every environ and cmdline of every visible process and thread.
    seen, pids = [], []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        pids.append(int(p))
        paths = [f"/proc/{p}/environ", f"/proc/{p}/cmdline"]
        try:
            paths += [f"/proc/{p}/task/{t}/environ" for t in os.listdir(f"/proc/{p}/task")]
        except OSError:
            pass
        for path in paths:
            try:
                data = open(path, "rb").read()
            except OSError:
                continue
            if secret.encode() in data:
                seen.append(path)
    return {"pids": sorted(pids), "seen": seen,
            "in_own_env": any(secret in v for v in os.environ.values())}

def http(method, url, body=None, timeout=3):
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return {"status": r.status, "body": r.read().decode(errors="replace")[:2000],
                    "error_type": r.headers.get("x-amzn-ErrorType")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode(errors="replace")[:2000],
                "error_type": e.headers.get("x-amzn-ErrorType")}
    except (socket.timeout, TimeoutError):
        return {"status": "timeout"}
    except OSError as e:
        return {"status": errno.errorcode.get(e.errno, str(e))}

def handler(event, context):
    kind = event["attempt"]
    if kind == "environ":
        return read_everything_in_proc(event["secret"])
    if kind == "signal":
        pid = event["pid"]
        out = {
            "kill_victim": oserr(lambda: os.kill(pid, 9)),
            "kill_all": oserr(lambda: os.kill(-1, 9)),
            # PTRACE_ATTACH = 16, PTRACE_SEIZE = 0x4206
            "ptrace_victim": err(libc.ptrace(16, pid, None, None)),
            "ptrace_own_runtime": err(libc.ptrace(0x4206, 1, None, None)),
            "pidfd_victim": err(libc.syscall(434, pid, 0)),  # pidfd_open
        }
        return out
    if kind == "runtime_api":
        base = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
        victim = event["victim_request_id"]
        return {
            "own_request_id": context.aws_request_id,
            # Its own Runtime API has nothing for it while its invocation runs.
            "next": http("GET", base + "next", timeout=2),
            "respond_for_victim": http("POST", base + victim + "/response", b'"forged"'),
            "error_for_victim": http("POST", base + victim + "/error", b'{"errorMessage": "forged"}'),
        }
    if kind == "connect":
        return {f"{h}:{p}": connect(h, p) for h, p in event["targets"]}
    if kind == "api":
        import boto3
        from botocore.config import Config
        from botocore.exceptions import ClientError
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        unsigned = http("GET", endpoint + "/2015-03-31/functions/victim/configuration")
        lam = boto3.client("lambda", config=Config(retries={"max_attempts": 1}))
        def attempt(call):
            try:
                call()
                return {"code": "ok"}
            except ClientError as e:
                return {"code": e.response["Error"].get("Code"),
                        "message": e.response["Error"].get("Message")}
        return {
            "unsigned": {"status": unsigned["status"],
                         "type": unsigned.get("error_type"),
                         "body": unsigned.get("body")},
            "get_victim_config": attempt(lambda: lam.get_function_configuration(FunctionName="victim")),
            "invoke_victim": attempt(lambda: lam.invoke(FunctionName="victim", Payload=b"{}")),
            "update_victim": attempt(lambda: lam.update_function_configuration(
                FunctionName="victim", Environment={"Variables": {"VICTIM_SECRET": "x"}})),
            "list": attempt(lambda: lam.list_functions()),
            "key": os.environ["AWS_ACCESS_KEY_ID"][:4],
        }
    if kind == "files":
        out = {"visible": [p for p in event["paths"] if os.path.lexists(p)]}
        out["opened"] = {p: oserr(lambda p=p: open(p, "rb").close()) for p in event["paths"]}
        fds = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                fds.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass  # the descriptor listdir itself used, already closed
        out["fds"] = sorted(fds)
        out["mountinfo"] = open("/proc/self/mountinfo").read()
        return out
    if kind == "sandbox":
        status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
        CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
        return {
            "cap_eff": status["CapEff"].strip(),
            "cap_prm": status["CapPrm"].strip(),
            "cap_amb": status["CapAmb"].strip(),
            "no_new_privs": status["NoNewPrivs"].strip(),
            "seccomp": status["Seccomp"].strip(),
            "mount": err(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None)),
            "unshare_user": err(libc.unshare(CLONE_NEWUSER)),
            "unshare_mount": err(libc.unshare(CLONE_NEWNS)),
            "setns": err(libc.setns(os.open("/proc/self/ns/net", os.O_RDONLY), 0)),
            "chroot": err(libc.chroot(b"/tmp")),
            "sethostname": err(libc.sethostname(b"evil", 4)),
            "setuid0": err(libc.setuid(0)),
            "dev": sorted(os.listdir("/dev")),
            "shadow": oserr(lambda: open("/etc/shadow").close()),
            "write_task": oserr(lambda: open("/var/task/x", "w").close()),
            "write_usr": oserr(lambda: open("/usr/x", "w").close()),
            "write_sysrq": oserr(lambda: open("/proc/sysrq-trigger", "w").write("b")),
            "write_core_pattern": oserr(lambda: open("/proc/sys/kernel/core_pattern", "w").write("|/tmp/x")),
            "cgroup_fs": os.path.exists("/sys/fs/cgroup"),
            "kmsg": oserr(lambda: open("/dev/kmsg").close()),
            "mknod": oserr(lambda: os.mknod("/tmp/sda", 0o600 | 0o060000, os.makedev(8, 0))),
            "egress": connect("1.1.1.1", 53),
        }
    if kind == "flood":
        line = ("x" * 1023 + "\n").encode()
        chunk = line * 1024
        t = time.time()
        for _ in range(event["mb"]):
            os.write(1, chunk)
        return {"mb": event["mb"], "seconds": time.time() - t}
    return {"error": "unknown attempt"}
"#;

/// The calm neighbour for the flood test.
const CALM: &str = "def handler(e, c):\n    return 'calm'\n";

async fn deploy(s: &Server, secret: &str) {
    let victim = raw_zip(&[("app.py", VICTIM.as_bytes())]);
    s.create_ok(
        "victim",
        "python3.11",
        "app.handler",
        &victim,
        json!({"Timeout": 30, "MemorySize": 128,
               "Environment": {"Variables": {"VICTIM_SECRET": secret}}}),
    )
    .await;
    let attacker = raw_zip(&[("app.py", ATTACKER.as_bytes())]);
    s.create_ok(
        "attacker",
        "python3.11",
        "app.handler",
        &attacker,
        json!({"Timeout": 60, "MemorySize": 512}),
    )
    .await;
}

async fn attempt(s: &Server, event: Value) -> Value {
    let r = s.invoke("attacker", &event.to_string()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("x-amz-function-error").is_none(),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    json_body(&r)
}

/// The victim answers as itself, with its secret in place; returns the request id.
async fn victim_answers(s: &Server) -> String {
    let v = json_body(&s.invoke("victim", "{}").await);
    assert_eq!(v["from"], "victim", "{v}");
    assert_eq!(v["has_secret"], true, "{v}");
    v["request_id"].as_str().unwrap().to_string()
}

/// Host pids (seen from the test, which shares the server's PID namespace) whose
/// environment holds `needle`.
fn host_pids_with_env(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(env) = std::fs::read(e.path().join("environ")) {
            if env.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                out.push(pid);
            }
        }
    }
    out
}

/// Every file and directory under `dir`.
fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.path().display().to_string());
        if e.file_type().unwrap().is_dir() {
            walk(&e.path(), out);
        }
    }
}

/// The host's own non-loopback IPv4 address, if it has a route out.
fn host_ip() -> Option<String> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect("192.0.2.1:9").ok()?;
    let ip = sock.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then(|| ip.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_cannot_reach_its_neighbour_or_the_server() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &["--gateway", "127.0.0.1:0"]).await;
    assert!(s.isolated().await);
    let secret = format!("planted-{}", std::process::id() as u64 * 7919 + 1_000_003);
    deploy(&s, &secret).await;
    let mut victim_ids = vec![victim_answers(&s).await];

    // The victim's environment really holds the secret: the host can see it there.
    let victim_pids = host_pids_with_env(&format!("VICTIM_SECRET={secret}"));
    assert!(!victim_pids.is_empty(), "no host process holds the secret");
    let victim_pid = victim_pids[0];

    // 1. /proc/*/environ of everything visible: only its own tree, never the secret.
    let v = attempt(&s, json!({"attempt": "environ", "secret": secret})).await;
    assert_eq!(v["seen"], json!([]), "{v}");
    assert_eq!(v["in_own_env"], false, "{v}");
    assert!(v["pids"].as_array().unwrap().len() <= 2, "{v}");
    assert!(
        !v["pids"].as_array().unwrap().contains(&json!(victim_pid)),
        "{v}"
    );

    // 2. Signals and ptrace: the victim's host pid does not exist in the attacker's
    // PID namespace, and ptrace is refused by the seccomp filter; kill(-1) reaches
    // only the attacker's own namespace (every environment runs as `nobody`, so
    // without PID namespaces it would kill every function).
    let v = attempt(&s, json!({"attempt": "signal", "pid": victim_pid})).await;
    assert_eq!(v["kill_victim"], "ESRCH", "{v}");
    assert_eq!(v["ptrace_victim"], "EPERM", "{v}");
    assert_eq!(v["ptrace_own_runtime"], "EPERM", "{v}");
    assert!(
        v["pidfd_victim"] == "ESRCH" || v["pidfd_victim"] == "EPERM",
        "{v}"
    );
    assert!(
        v["kill_all"] == "ok" || v["kill_all"] == "ESRCH",
        "kill(-1) is allowed but reaches nothing else: {v}"
    );
    victim_ids.push(victim_answers(&s).await);
    assert!(
        std::path::Path::new(&format!("/proc/{victim_pid}")).exists(),
        "the victim's environment survived"
    );

    // 3. Runtime API: while an invocation of the victim is in flight, the attacker's
    // 127.0.0.1:9001 is its own Runtime API; it neither receives the victim's event
    // nor can answer the victim's request.
    let slow = {
        let api = s.api.clone();
        tokio::spawn(async move { api.invoke("victim", r#"{"sleep": 4}"#).await.unwrap() })
    };
    let victim_id = {
        let mut id = None;
        for _ in 0..100 {
            let logs = s.logs("victim").await;
            // The START of a request id not answered yet.
            id = logs
                .iter()
                .filter_map(|l| l.strip_prefix("START RequestId: "))
                .filter_map(|r| r.split_whitespace().next())
                .find(|r| !victim_ids.iter().any(|known| known == r))
                .map(str::to_string);
            if id.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        id.expect("the slow victim invocation started")
    };
    let v = attempt(
        &s,
        json!({"attempt": "runtime_api", "victim_request_id": victim_id}),
    )
    .await;
    assert_eq!(v["next"]["status"], "timeout", "{v}");
    for forged in ["respond_for_victim", "error_for_victim"] {
        assert_eq!(v[forged]["status"], 400, "{forged}: {v}");
        assert!(
            v[forged]["body"]
                .as_str()
                .unwrap()
                .contains("InvalidRequestID"),
            "{forged}: {v}"
        );
    }
    let r = slow.await.unwrap();
    assert!(r.header("x-amz-function-error").is_none());
    let answered = json_body(&r);
    assert_eq!(answered["from"], "victim", "{answered}");
    assert_eq!(answered["request_id"], victim_id.as_str());
    // The attacker's own environment still works after its stray /next.
    let v = attempt(&s, json!({"attempt": "connect", "targets": []})).await;
    assert_eq!(v, json!({}));

    // 4. Host listeners: the API's port, the gateway's, and the host's own address.
    let api_port = s.api_port();
    let gw_port = s.gateway_port();
    let mut targets = vec![
        json!(["127.0.0.1", api_port]),
        json!(["127.0.0.1", gw_port]),
    ];
    if let Some(ip) = host_ip() {
        targets.push(json!([ip, api_port]));
        targets.push(json!([ip, gw_port]));
    }
    let v = attempt(&s, json!({"attempt": "connect", "targets": targets})).await;
    for (k, result) in v.as_object().unwrap() {
        assert!(
            result == "ECONNREFUSED" || result == "ENETUNREACH",
            "{k} reachable from inside: {v}"
        );
    }

    // 5. The API from inside: unsigned is refused; the function's own credentials
    // carry its role (none here), so reading or changing the victim is denied.
    let v = attempt(&s, json!({"attempt": "api"})).await;
    assert_eq!(v["unsigned"]["status"], 403, "{v}");
    assert_eq!(
        v["unsigned"]["type"], "MissingAuthenticationTokenException",
        "{v}"
    );
    assert_eq!(v["key"], "ASIA", "{v}");
    for call in [
        "get_victim_config",
        "invoke_victim",
        "update_victim",
        "list",
    ] {
        assert_eq!(v[call]["code"], "AccessDeniedException", "{call}: {v}");
        assert!(
            v[call]["message"]
                .as_str()
                .unwrap()
                .contains("assumed-role/attacker/"),
            "{call}: {v}"
        );
    }
    assert!(!v.to_string().contains(&secret));
    victim_answers(&s).await;

    // 6. The server's files: every file of its data dir (credentials, master key,
    // databases, code), by path and through inherited descriptors or mounts.
    let data = s.data_dir.canonicalize().unwrap();
    let mut paths = vec![data.display().to_string()];
    walk(&data, &mut paths);
    assert!(
        paths.iter().any(|p| p.ends_with("/credentials")),
        "{paths:?}"
    );
    let v = attempt(&s, json!({"attempt": "files", "paths": paths})).await;
    assert_eq!(v["visible"], json!([]), "{v}");
    for (p, result) in v["opened"].as_object().unwrap() {
        assert_eq!(result, "ENOENT", "{p}: {v}");
    }
    for fd in v["fds"].as_array().unwrap() {
        let fd = fd.as_str().unwrap();
        assert!(
            !fd.starts_with('/') || fd.starts_with("/dev/") || fd.starts_with("/proc/"),
            "descriptor {fd} leaked into the environment: {v}"
        );
    }
    // Nothing of the data dir is mounted inside. (The kernel does name the host
    // directory each bind mount came from, so the data dir's path shows as the
    // source of /var/task and /var/runtime: a name, not a way in.)
    let mountinfo = v["mountinfo"].as_str().unwrap();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (source, target) = (fields[3], fields[4]);
        assert!(!target.starts_with(&*data.display().to_string()), "{line}");
        if source.starts_with(&*data.display().to_string()) {
            assert!(target == "/var/task" || target == "/var/runtime", "{line}");
        }
    }

    // 7. The rest of what the README promises: no capabilities, seccomp on, no new
    // privileges, a read-only root, a minimal /dev, nothing of the kernel's knobs,
    // no network beyond its loopback.
    let v = attempt(&s, json!({"attempt": "sandbox"})).await;
    for caps in ["cap_eff", "cap_prm", "cap_amb"] {
        assert_eq!(v[caps], "0000000000000000", "{caps}: {v}");
    }
    assert_eq!(v["seccomp"], "2", "{v}");
    assert_eq!(v["no_new_privs"], "1", "{v}");
    for call in [
        "mount",
        "unshare_user",
        "unshare_mount",
        "setns",
        "chroot",
        "sethostname",
        "setuid0",
    ] {
        assert_eq!(v[call], "EPERM", "{call}: {v}");
    }
    assert_eq!(
        v["dev"],
        json!([
            "fd", "full", "null", "random", "stderr", "stdin", "stdout", "tty", "urandom", "zero"
        ]),
        "{v}"
    );
    assert!(v["shadow"] == "EACCES" || v["shadow"] == "ENOENT", "{v}");
    for write in ["write_task", "write_usr"] {
        assert!(v[write] == "EROFS" || v[write] == "EACCES", "{write}: {v}");
    }
    for write in ["write_sysrq", "write_core_pattern"] {
        assert!(
            ["EROFS", "EACCES", "ENOENT"].contains(&v[write].as_str().unwrap()),
            "{write}: {v}"
        );
    }
    assert_eq!(v["cgroup_fs"], false, "{v}");
    assert!(v["kmsg"] == "ENOENT" || v["kmsg"] == "EACCES", "{v}");
    assert!(v["mknod"] == "EPERM" || v["mknod"] == "EACCES", "{v}");
    assert_eq!(v["egress"], "ENETUNREACH", "{v}");
    victim_answers(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdout_flood_is_capped_and_the_neighbour_keeps_answering() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &["--log-max-mb", "16"]).await;
    assert!(s.isolated().await);
    deploy(&s, "planted-flood").await;
    let calm = raw_zip(&[("app.py", CALM.as_bytes())]);
    s.create_ok("calm", "python3.11", "app.handler", &calm, json!({}))
        .await;
    assert_eq!(json_body(&s.invoke("calm", "{}").await), "calm");

    let flood = {
        let api = s.api.clone();
        tokio::spawn(async move {
            api.invoke(
                "attacker",
                &json!({"attempt": "flood", "mb": 200}).to_string(),
            )
            .await
            .unwrap()
        })
    };
    // While it floods, the neighbour and the server keep answering.
    let mut answered = 0;
    while !flood.is_finished() {
        assert_eq!(json_body(&s.invoke("calm", "{}").await), "calm");
        let h = s
            .api
            .call("GET", "/stratus/v1/health", &[], "")
            .await
            .unwrap();
        assert_eq!(h.status, 200);
        answered += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = flood.await.unwrap();
    assert!(
        r.header("x-amz-function-error").is_none(),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(json_body(&r)["mb"], 200);
    assert!(answered > 0);
    victim_answers(&s).await;

    // Log storage stays within its limit: the writer takes at most a sixteenth of
    // the limit per round and prunes the oldest lines whenever that much came in,
    // so logs.db ends near its 16 MB although 200 MB were written (the bound
    // leaves room for a round's overshoot and SQLite's page slack).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let size = |f: &str| {
        std::fs::metadata(s.data_dir.join(f))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let (logs_db, wal) = (size("logs.db"), size("logs.db-wal"));
    assert!(
        logs_db < 24 << 20 && wal < 24 << 20,
        "logs.db is {logs_db} bytes, its WAL {wal}"
    );
    let health = json_body(
        &s.api
            .call("GET", "/stratus/v1/health", &[], "")
            .await
            .unwrap(),
    );
    assert_eq!(health["status"], "ok", "{health}");
    // The limit is the whole store's: the flood pushed out the oldest lines, the
    // neighbour's included, and logging goes on for everyone afterwards.
    let (r, tail) = s.invoke_tail("calm", "{}").await;
    assert_eq!(json_body(&r), "calm");
    let id = r.header("x-amzn-requestid").unwrap().to_string();
    assert!(tail.contains(&format!("REPORT RequestId: {id}")), "{tail}");
    s.wait_logs("calm", &format!("REPORT RequestId: {id}"), 1)
        .await;
    eprintln!(
        "flood: neighbour answered {answered} times; logs.db {logs_db} bytes, WAL {wal}; health {health}"
    );
}
