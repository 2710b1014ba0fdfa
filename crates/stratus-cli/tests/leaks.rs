//! The server leaks nothing over many environment lifetimes: after a soak through
//! every way an environment ends — idle reaping, crash, timeout, init failure, an
//! abandoned caller, code updates, provisioned concurrency going away, function
//! deletion — and once every environment is gone, the server holds no more pipes,
//! pidfds, listening sockets, child processes or temp dirs than before it started
//! any environment.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::json;

/// What a server process holds that environments add to.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Footprint {
    /// Pipe ends (each environment's stdout and stderr).
    pipes: usize,
    /// Anonymous-inode descriptors (pidfds, eventfds, epoll).
    anon: usize,
    /// Listening TCP sockets (the API, plus one Runtime API listener per environment).
    listeners: usize,
    /// Live child processes.
    children: usize,
    /// Per-environment temp dirs under the data dir.
    tmp_dirs: usize,
    /// Network namespaces held open (the `linux` driver: one per environment).
    netns: usize,
    /// Per-environment cgroups of this server (the `linux` driver).
    cgroups: usize,
}

/// The server's environment cgroups: `<pid>-<n>` under `stratus` in its own pids
/// group (v1) or its own group (v2).
fn cgroups(pid: u32) -> usize {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut dirs = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let path = path.trim_start_matches('/');
        if list.split(',').any(|c| c == "pids") {
            dirs.push(
                std::path::Path::new("/sys/fs/cgroup/pids")
                    .join(path)
                    .join("stratus"),
            );
        } else if list.is_empty() {
            dirs.push(
                std::path::Path::new("/sys/fs/cgroup")
                    .join(path)
                    .join("stratus"),
            );
        }
    }
    let prefix = format!("{pid}-");
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .count()
}

fn footprint(s: &Server) -> Footprint {
    let pid = s.child.id().expect("server pid");
    let mut pipes = 0;
    let mut anon = 0;
    let mut netns = 0;
    let mut sockets = HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        if t.starts_with("pipe:") {
            pipes += 1;
        } else if t.starts_with("anon_inode:") {
            anon += 1;
        } else if t.starts_with("net:[") {
            netns += 1;
        } else if let Some(inode) = t.strip_prefix("socket:[") {
            sockets.insert(inode.trim_end_matches(']').to_string());
        }
    }
    let mut listeners = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // st 0A is LISTEN; column 9 is the inode.
            if cols.len() > 9 && cols[3] == "0A" && sockets.contains(cols[9]) {
                listeners += 1;
            }
        }
    }
    let mut children = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …: the comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == pid && state != "Z" {
            children += 1;
        }
    }
    let tmp_dirs = std::fs::read_dir(s.data_dir.join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    Footprint {
        pipes,
        anon,
        listeners,
        children,
        tmp_dirs,
        netns,
        cgroups: cgroups(pid),
    }
}

async fn environments(s: &Server) -> u64 {
    let health = json_body(
        &s.api
            .call("GET", "/stratus/v1/health", &[], "")
            .await
            .unwrap(),
    );
    health["environments"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &["--idle-keep-alive", "1"]).await;
    s.create_ok(
        "soak",
        "nodejs20.x",
        "index.handler",
        &fixture_zip("node"),
        json!({"Timeout": 1}),
    )
    .await;
    s.create_ok(
        "broken",
        "nodejs20.x",
        "broken.handler",
        &fixture_zip("node"),
        json!({}),
    )
    .await;
    // Settled: under `linux` the pool of parked keepers fills just after start.
    let mut before = footprint(&s);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = footprint(&s);
        if now == before {
            break;
        }
        before = now;
    }
    assert_eq!(before.listeners, 1, "only the API listens: {before:?}");
    if !s.isolated().await {
        assert_eq!(before.children, 0, "{before:?}");
    }
    // (Under `linux`, keepers parked ahead for cold starts are children from the
    // start; the comparison at the end covers them.)

    for round in 0..6 {
        // Concurrent calls start several on-demand environments.
        for r in s.invoke_concurrently("soak", "{}", 4).await {
            assert_eq!(r.status, 200);
        }
        if round == 0 {
            // The footprint does see environments.
            let during = footprint(&s);
            // Runtime API listeners are on the host (`process` driver), or inside each
            // environment's network namespace where the host's table does not show
            // them (`linux`: each environment has its cgroup instead).
            let isolated = s.isolated().await;
            assert!(
                (during.listeners > before.listeners
                    || isolated && during.cgroups > before.cgroups)
                    && during.pipes > before.pipes
                    && during.children > 0
                    && during.tmp_dirs > before.tmp_dirs,
                "{during:?} vs {before:?}"
            );
        }
        // A crash, a timeout and an init failure each end an environment.
        let r = s.invoke("soak", r#"{"action":"exit"}"#).await;
        assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
        let r = s.invoke("soak", r#"{"action":"sleep","ms":3000}"#).await;
        assert!(
            String::from_utf8_lossy(&r.body).contains("Task timed out"),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let r = s.invoke("broken", "{}").await;
        assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
        // A caller that goes away mid-invocation.
        let api = s.api.clone();
        let call =
            tokio::spawn(async move { api.invoke("soak", r#"{"action":"sleep","ms":300}"#).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        call.abort();
        let _ = call.await;
        // Provisioned environments on a version, then taken away again.
        let version = s.publish("soak").await;
        s.provision("soak", &version, 2).await;
        s.wait_ready("soak", &version).await;
        let r = s
            .api
            .call(
                "DELETE",
                &format!("/2019-09-30/functions/soak/provisioned-concurrency?Qualifier={version}"),
                &[],
                "",
            )
            .await
            .unwrap();
        assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
        // A code update retires the $LATEST pool (every other round).
        if round % 2 == 1 {
            let index = std::fs::read(format!("{FIXTURES}/node/index.js")).unwrap();
            let round_file = format!("round {round}");
            let zip = raw_zip(&[
                ("index.js", &index[..]),
                ("round.txt", round_file.as_bytes()),
            ]);
            let r = s
                .api
                .call(
                    "PUT",
                    "/2015-03-31/functions/soak/code",
                    &[],
                    json!({ "ZipFile": base64_zip(&zip), "Publish": false }).to_string(),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        }
    }
    // A deleted function takes its environments with it.
    assert_eq!(s.invoke("soak", "{}").await.status, 200);
    let r = s
        .api
        .call("DELETE", "/2015-03-31/functions/soak", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 204);

    // Idle environments are reaped after the 1 s keep-alive.
    let mut left = u64::MAX;
    for _ in 0..100 {
        left = environments(&s).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "every environment ended");
    // Processes are reaped and descriptors closed just after.
    let mut after = footprint(&s);
    for _ in 0..50 {
        if after == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = footprint(&s);
    }
    assert_eq!(
        after, before,
        "the server holds what it held before any environment"
    );
}

fn base64_zip(zip: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(zip)
}
