//! Server lifecycle: state survives a restart and provisioned pools re-warm; SIGTERM
//! lets in-flight invocations finish, kills every environment and exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// Pids of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .filter(|pid| {
            // Zombies are already dead.
            !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
        })
        .collect()
}

/// Fails unless, within a second of the server's exit, no process mentions
/// `needle` (teardown of an environment's namespaces and mounts is asynchronous:
/// a keeper killed mid-setup can take some milliseconds to go). Names what is left.
async fn assert_none_left(needle: &str, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() {
            return;
        }
        if std::time::Instant::now() > deadline {
            let described: Vec<String> = left
                .iter()
                .map(|p| {
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                        .unwrap_or_default();
                    let status = std::fs::read_to_string(format!("/proc/{p}/status"))
                        .unwrap_or_default()
                        .lines()
                        .filter(|l| l.starts_with("State") || l.starts_with("PPid"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    format!("{p}: {cmd} ({status})")
                })
                .collect();
            panic!("{what}: {described:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_state_and_rewarms_provisioned_environments() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]).await;
    s.create_ok(
        "keep",
        "nodejs20.x",
        "index.handler",
        &fixture_zip("node"),
        json!({"Environment": {"Variables": {"CUSTOM_VAR": "kept"}}}),
    )
    .await;
    let v = s.publish("keep").await;
    s.api
        .call(
            "POST",
            "/2015-03-31/functions/keep/aliases",
            &[],
            json!({"Name": "live", "FunctionVersion": v}).to_string(),
        )
        .await
        .unwrap();
    s.api
        .call(
            "PUT",
            "/2017-10-31/functions/keep/concurrency",
            &[],
            r#"{"ReservedConcurrentExecutions":5}"#,
        )
        .await
        .unwrap();
    s.provision("keep", "live", 2).await;
    let before = json_body(
        &s.api
            .call("GET", "/2015-03-31/functions/keep", &[], "")
            .await
            .unwrap(),
    );
    assert_eq!(s.invoke("keep:live", "{}").await.status, 200);
    let status = s.terminate().await;
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    assert_none_left(data.to_str().unwrap(), "no environment outlives the server").await;

    let s = Server::start(&data, &[]).await;
    let after = json_body(
        &s.api
            .call("GET", "/2015-03-31/functions/keep", &[], "")
            .await
            .unwrap(),
    );
    assert_eq!(after["Configuration"], before["Configuration"]);
    assert_eq!(after["Concurrency"]["ReservedConcurrentExecutions"], 5);
    let alias = json_body(
        &s.api
            .call("GET", "/2015-03-31/functions/keep/aliases/live", &[], "")
            .await
            .unwrap(),
    );
    assert_eq!(alias["FunctionVersion"], "1");
    s.wait_ready("keep", "live").await;
    let (r, tail) = s.invoke_tail("keep:live", "{}").await;
    let v = json_body(&r);
    assert_eq!(
        v["initType"], "provisioned-concurrency",
        "re-warmed on start"
    );
    assert_eq!(v["env"]["custom"], "kept");
    assert!(
        !tail.contains("Init Duration"),
        "no cold start through the alias after a restart: {tail}"
    );
    // Logs from before the restart are still there.
    // Logs from before the restart are still there (the new ones are written within
    // a few tens of milliseconds).
    let logs = s.wait_logs("keep", "REPORT RequestId", 2).await;
    assert_eq!(count(&logs, "REPORT RequestId"), 2, "{logs:#?}");
    assert!(s.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_invocations_then_kills_environments() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]).await;
    s.create_ok(
        "slow",
        "provided.al2023",
        "bootstrap",
        &rust_zip(),
        json!({"Timeout": 30}),
    )
    .await;
    s.create_ok(
        "idle",
        "nodejs20.x",
        "index.handler",
        &fixture_zip("node"),
        json!({}),
    )
    .await;
    assert_eq!(s.invoke("idle", "{}").await.status, 200);
    let api = s.api.clone();
    let in_flight =
        tokio::spawn(async move { api.invoke("slow", r#"{"action":"sleep","ms":1500}"#).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!processes_mentioning(data.to_str().unwrap()).is_empty());
    let status = s.terminate().await;
    assert!(status.success(), "{status:?}");
    let r = in_flight
        .await
        .unwrap()
        .expect("the in-flight call got an answer");
    assert_eq!(r.status, 200);
    assert_eq!(json_body(&r)["message"], "Hello, world!");
    assert!(
        r.header("x-amz-function-error").is_none(),
        "it finished normally: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_none_left(data.to_str().unwrap(), "every environment killed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_on_demand_environments_are_reaped_but_provisioned_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &["--idle-keep-alive", "1"]).await;
    s.create_ok(
        "reap",
        "nodejs20.x",
        "index.handler",
        &fixture_zip("node"),
        json!({}),
    )
    .await;
    let v = s.publish("reap").await;
    s.provision("reap", &v, 1).await;
    assert_eq!(s.invoke("reap", "{}").await.status, 200);
    let health = |s: &Server| {
        let api = s.api.clone();
        async move {
            json_body(
                &api.call("GET", "/stratus/v1/health", &[], "")
                    .await
                    .unwrap(),
            )["environments"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(health(&s).await, 2);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        health(&s).await,
        1,
        "the on-demand environment was reaped, the provisioned one kept"
    );
    let (_, tail) = s.invoke_tail("reap", "{}").await;
    assert!(
        tail.contains("Init Duration"),
        "after reaping, $LATEST starts cold again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_command_runs_the_bundled_example() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["demo", "--listen", "127.0.0.1:0", "--exit", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("provisioned concurrency 2 on hello:live READY"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""message":"Hello, Stratus!""#),
        "{stdout}"
    );
    assert!(
        stdout.contains("Init Duration"),
        "the cold $LATEST call shows its init: {stdout}"
    );
}
