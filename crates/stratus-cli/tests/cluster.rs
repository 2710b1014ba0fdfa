//! Cluster mode end to end: three real `stratus server` processes on one real
//! PostgreSQL (`stratus_testkit`) and a shared blob directory act as one platform —
//! deploy through one node, invoke through the others (CLI and boto3), changes and
//! deletions seen everywhere, `stratus cluster status` with a node SIGKILLed and
//! restarted. Plus the flags' errors and a corrupted package in the shared store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::cluster::*;
use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_act_as_one_platform() {
    let pg = stratus_testkit::Postgres::shared();
    let url = pg.database();
    let tmp = tempfile::tempdir().unwrap();
    let blobs = format!("file://{}", tmp.path().join("blobs").display());
    let key = master_key();
    let n1 = start_node(&tmp.path().join("n1"), &url, &blobs, "n1", &key).await;
    let n2 = start_node(&tmp.path().join("n2"), &url, &blobs, "n2", &key).await;
    let n3 = start_node(&tmp.path().join("n3"), &url, &blobs, "n3", &key).await;

    // One admin key for the cluster: the first node made it, the others wrote it.
    let admin = key_id(&n1.data_dir);
    assert_eq!(key_id(&n2.data_dir), admin);
    assert_eq!(key_id(&n3.data_dir), admin);

    // `stratus cluster status` through any node lists the three, healthy.
    let v = status(&n2).await;
    assert_eq!(v["mode"], "cluster", "{v:#}");
    assert_eq!(v["node"], "n2");
    assert_eq!(v["nodes"].as_array().unwrap().len(), 3, "{v:#}");
    for id in ["n1", "n2", "n3"] {
        assert_eq!(health_of(&v, id), "healthy", "{v:#}");
    }
    let table = stratus_ok(tmp.path(), &ep(&n3), &["cluster", "status"]).await;
    assert!(table.starts_with("mode: cluster (3 nodes"), "{table}");
    for (id, s) in [("n1", &n1), ("n2", &n2), ("n3", &n3)] {
        let line = table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} missing:\n{table}"));
        assert!(
            line.contains(&s.addr) && line.contains("healthy"),
            "{table}"
        );
    }
    assert!(table.contains("n3 *"), "{table}");

    // Deploy an example service with the CLI through node 1 ...
    let svc = tmp.path().join("hello-node");
    copy_tree(&examples().join("hello-node"), &svc);
    let out = stratus_ok(&svc, &ep(&n1), &["deploy"]).await;
    assert!(out.contains("hello-node-dev-hello (created"), "{out}");
    let deployed = Instant::now();
    // ... and it is there on node 2 within a second or two.
    let api2 = n2.api.clone();
    let seen = until(
        "the deployed function on node 2",
        Duration::from_secs(10),
        || {
            let api = api2.clone();
            async move {
                let r = api
                    .call("GET", "/2015-03-31/functions/hello-node-dev-hello", &[], "")
                    .await
                    .unwrap();
                r.status == 200
            }
        },
    )
    .await;
    let seen = seen.max(deployed.elapsed());
    eprintln!("deploy through n1 visible on n2 after {seen:?}");
    assert!(seen < Duration::from_secs(2), "propagation took {seen:?}");
    // Invoked through nodes 2 and 3, with the CLI and with boto3.
    for s in [&n2, &n3] {
        let out = stratus_ok(
            &svc,
            &ep(s),
            &["invoke", "-f", "hello", "-d", r#"{"name":"Ada"}"#],
        )
        .await;
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["message"], "Hello, Ada!", "{out}");
        run_sdk_boto3(s, "hello-node-dev-hello", "Hello, boto3!").await;
    }

    // A function created through the API on node 1, timed until it answers on node 2.
    let t0 = Instant::now();
    n1.create_ok(
        "quick",
        "nodejs20.x",
        "index.handler",
        &node_zip("v1"),
        json!({}),
    )
    .await;
    let api2 = n2.api.clone();
    let answered = until("quick answering on node 2", Duration::from_secs(10), || {
        let api = api2.clone();
        async move {
            let r = api.invoke("quick", "{}").await.unwrap();
            r.status == 200 && json_body(&r)["message"] == "v1"
        }
    })
    .await;
    let answered = answered.max(t0.elapsed());
    eprintln!("create through n1 answered on n2 after {answered:?} (cold start included)");
    assert!(answered < Duration::from_secs(3), "took {answered:?}");

    // New code through node 2 runs on node 3.
    let zip = node_zip("v2");
    let r = n2
        .api
        .call(
            "PUT",
            "/2015-03-31/functions/quick/code",
            &[],
            json!({ "ZipFile": base64::engine::general_purpose::STANDARD.encode(&zip) })
                .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let t0 = Instant::now();
    let api3 = n3.api.clone();
    let updated = until("new code on node 3", Duration::from_secs(10), || {
        let api = api3.clone();
        async move {
            let r = api.invoke("quick", "{}").await.unwrap();
            json_body(&r)["message"] == "v2"
        }
    })
    .await;
    eprintln!("code update through n2 running on n3 after {updated:?}");
    assert!(t0.elapsed() < Duration::from_secs(3));

    // Deleted through node 3, gone on node 1.
    let r = n3
        .api
        .call("DELETE", "/2015-03-31/functions/quick", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let api1 = n1.api.clone();
    let gone = until("the deletion on node 1", Duration::from_secs(10), || {
        let api = api1.clone();
        async move {
            let r = api.invoke("quick", "{}").await.unwrap();
            r.status == 404
        }
    })
    .await;
    eprintln!("deletion through n3 seen on n1 after {gone:?}");

    // A key made through one node signs requests to another.
    let r = n1
        .api
        .call(
            "POST",
            "/stratus/v1/keys",
            &[("content-type", "application/json")],
            json!({"UserName": "ci", "PolicyDocument": stratus_server::auth::ADMIN_POLICY})
                .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let k = json_body(&r)["AccessKey"].clone();
    let creds = stratus_cli::signing::Credentials {
        access_key_id: k["AccessKeyId"].as_str().unwrap().into(),
        secret_access_key: k["SecretAccessKey"].as_str().unwrap().into(),
        session_token: None,
    };
    let api = Api::with_signer(
        &ep(&n3),
        stratus_cli::signing::Signer::with(creds, "us-east-1", "test"),
    );
    until(
        "the key made on n1 signing on n3",
        Duration::from_secs(2),
        || {
            let api = api.clone();
            async move {
                api.call("GET", "/stratus/v1/cluster", &[], "")
                    .await
                    .is_ok_and(|r| r.status == 200)
            }
        },
    )
    .await;

    // SIGKILL node 2: the others see it dead within about six seconds.
    let mut n2 = n2;
    n2.child.start_kill().unwrap();
    n2.child.wait().await.unwrap();
    let killed = Instant::now();
    let n1r = &n1;
    let dead = until("n2 dead", Duration::from_secs(10), || async move {
        health_of(&status(n1r).await, "n2") == "dead"
    })
    .await;
    eprintln!("SIGKILLed n2 shown dead after {dead:?}");
    assert!(
        killed.elapsed() < Duration::from_secs(7),
        "{:?}",
        killed.elapsed()
    );
    let table = stratus_ok(tmp.path(), &ep(&n1), &["cluster", "status"]).await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("n2 ") && l.contains("dead")),
        "{table}"
    );

    // Restarted, it rejoins, with everything the cluster has.
    let n2 = start_node(&tmp.path().join("n2"), &url, &blobs, "n2", &key).await;
    let n3r = &n3;
    until("n2 healthy again", Duration::from_secs(5), || async move {
        health_of(&status(n3r).await, "n2") == "healthy"
    })
    .await;
    let r = n2
        .invoke("hello-node-dev-hello", r#"{"name":"again"}"#)
        .await;
    assert_eq!(json_body(&r)["message"], "Hello, again!");
    let r = n2.invoke("quick", "{}").await;
    assert_eq!(r.status, 404, "the deleted function stays deleted");

    // A clean stop is "stopped", not dead.
    assert!(n3.terminate().await.success());
    let v = status(&n1).await;
    assert_eq!(health_of(&v, "n3"), "stopped", "{v:#}");
    drop(n2);
}

async fn run_sdk_boto3(s: &Server, function: &str, expected: &str) {
    let path = format!("{}/tests/sdk/boto3_cluster.py", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("python3")
        .arg(&path)
        .arg(format!("http://{}", s.addr))
        .arg(function)
        .arg(expected)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            s.data_dir.join("credentials"),
        )
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .await
        .expect("run python3 (boto3 is installed by scripts/test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("done"),
        "boto3 against {}: {stdout}\n{}",
        s.addr,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A single node answers `GET /stratus/v1/cluster` with itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_reports_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let v = status(&s).await;
    assert_eq!(v["mode"], "single", "{v:#}");
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{v:#}");
    assert_eq!(nodes[0]["address"], s.addr.as_str());
    assert_eq!(nodes[0]["health"], "healthy");
    assert_eq!(nodes[0]["self"], true);
    let out = stratus_ok(
        tmp.path(),
        &format!("http://{}", s.addr),
        &["cluster", "status", "--json"],
    )
    .await;
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["mode"], "single");
    // A single node has no node rows to forget.
    let o = stratus_cmd(
        tmp.path(),
        &format!("http://{}", s.addr),
        &["cluster", "forget", "x"],
    )
    .await;
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains(
            "InvalidParameterValueException: cannot forget node x: this is a single node"
        ),
        "{}",
        output_text(&o)
    );
    // No file of cluster mode appears in a single node's data dir.
    assert!(!tmp.path().join("data/node-id").exists());
}

/// Runs `stratus server ARGS` expecting it to refuse to start; returns stderr.
async fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
            .arg("server")
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--sandbox", "process"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("the server gave up in time")
    .unwrap();
    assert!(!out.status.success(), "started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cluster_flags_are_clear_errors() {
    let blobs = "file:///tmp/stratus-test-blobs-never-used";
    let pg = "postgres://stratus:hunter2@127.0.0.1:1/stratus";
    for (args, says) in [
        (vec!["--cluster", pg], "--cluster: needs --blobs"),
        (
            vec!["--cluster", pg, "--blobs", blobs],
            "--cluster: needs --nats",
        ),
        (
            vec!["--cluster", "mysql://a@b/c", "--blobs", blobs],
            "expected a PostgreSQL URL",
        ),
        (
            vec!["--advertise", "10.0.0.1:9000"],
            "--advertise: only means something with --cluster",
        ),
        (
            vec!["--node-id", "n1"],
            "--node-id: only means something with --cluster",
        ),
        (vec!["--blobs", "s3://Bucket"], "not a bucket name"),
        (vec!["--blobs", "file://relative"], "absolute path"),
        (
            vec![
                "--cluster",
                pg,
                "--nats",
                "nats://127.0.0.1:1",
                "--blobs",
                blobs,
                "--advertise",
                "0.0.0.0:9000",
            ],
            "unspecified address",
        ),
        // Nothing listens on port 1: named at start-up, the password hidden.
        (
            vec![
                "--cluster",
                pg,
                "--nats",
                "nats://127.0.0.1:1",
                "--blobs",
                blobs,
            ],
            "cannot connect to the cluster database",
        ),
    ] {
        let err = refused(&args, &[]).await;
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains("hunter2"),
            "{args:?} leaked the password: {err}"
        );
    }
}

/// A package altered in the shared store is refused by a node that has no copy of
/// its own, with an error that says so; it never runs. Uploading it again repairs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_blob_never_runs() {
    let pg = stratus_testkit::Postgres::shared();
    let url = pg.database();
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("blobs");
    let blobs = format!("file://{}", shared.display());
    let key = master_key();
    let n1 = start_node(&tmp.path().join("n1"), &url, &blobs, "c1", &key).await;
    let zip = node_zip("intact");
    n1.create_ok("fragile", "nodejs20.x", "index.handler", &zip, json!({}))
        .await;
    let hash = stratus_package::sha256_hex(&zip);
    let file = shared.join("sha256").join(&hash[..2]).join(&hash);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    // A second node joins: it has no copy of its own and must read the shared one.
    let n2 = start_node(&tmp.path().join("n2"), &url, &blobs, "c2", &key).await;
    let r = n2.invoke("fragile", "{}").await;
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_ne!(r.status, 200, "a corrupt package ran: {body}");
    assert!(body.contains("corrupt") && body.contains(&hash), "{body}");
    assert!(
        !tmp.path().join("n2/code").join(&hash).exists(),
        "it was unpacked"
    );
    // Node 1 still runs its own verified copy.
    let r = n1.invoke("fragile", "{}").await;
    assert_eq!(json_body(&r)["message"], "intact");

    // Uploading the package again (through node 1) repairs the shared copy; a
    // configuration change makes node 2 install the function anew.
    let r = n1
        .api
        .call(
            "PUT",
            &format!("/stratus/v1/blobs/{hash}"),
            &[],
            zip.clone(),
        )
        .await
        .unwrap();
    assert!(r.status < 300, "{}", String::from_utf8_lossy(&r.body));
    let r = n1
        .api
        .call(
            "PUT",
            "/2015-03-31/functions/fragile/configuration",
            &[],
            json!({"Description": "repaired"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let api2 = n2.api.clone();
    until(
        "the repaired package on node 2",
        Duration::from_secs(10),
        || {
            let api = api2.clone();
            async move {
                let r = api.invoke("fragile", "{}").await.unwrap();
                r.status == 200 && json_body(&r)["message"] == "intact"
            }
        },
    )
    .await;
}

/// Reserved concurrency holds across the cluster: callers spread over three nodes
/// never have more invocations of the function running at once than it reserves;
/// the rest are throttled with Lambda's reason. Each invocation reports when it
/// started and ended (one machine, one clock), and the test counts the overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reserved_concurrency_holds_across_three_nodes() {
    const RESERVED: usize = 4;
    const CALLERS_PER_NODE: usize = 8;
    let pg = stratus_testkit::Postgres::shared();
    let url = pg.database();
    let tmp = tempfile::tempdir().unwrap();
    let blobs = format!("file://{}", tmp.path().join("blobs").display());
    let key = master_key();
    let n1 = start_node(&tmp.path().join("n1"), &url, &blobs, "r1", &key).await;
    let n2 = start_node(&tmp.path().join("n2"), &url, &blobs, "r2", &key).await;
    let n3 = start_node(&tmp.path().join("n3"), &url, &blobs, "r3", &key).await;
    let js = "exports.handler = async () => { const start = Date.now(); \
              await new Promise(r => setTimeout(r, 1500)); \
              return { start, end: Date.now() }; };\n";
    n1.create_ok(
        "capped",
        "nodejs20.x",
        "index.handler",
        &raw_zip(&[("index.js", js.as_bytes())]),
        json!({}),
    )
    .await;
    let r = n1
        .api
        .call(
            "PUT",
            "/2017-10-31/functions/capped/concurrency",
            &[],
            format!(r#"{{"ReservedConcurrentExecutions":{RESERVED}}}"#),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Every node knows the reservation before the burst.
    for n in [&n2, &n3] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = n
                .api
                .call("GET", "/2019-09-30/functions/capped/concurrency", &[], "")
                .await
                .unwrap();
            if json_body(&r)["ReservedConcurrentExecutions"] == RESERVED {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the reservation never reached {}",
                n.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let mut calls = Vec::new();
    for n in [&n1, &n2, &n3] {
        for _ in 0..CALLERS_PER_NODE {
            let api = n.api.clone();
            calls.push(tokio::spawn(async move {
                api.invoke("capped", "{}").await.expect("invoke")
            }));
        }
    }
    let mut spans = Vec::new();
    let mut throttled = 0;
    for c in calls {
        let r = c.await.unwrap();
        match r.status {
            200 => {
                let v = json_body(&r);
                spans.push((v["start"].as_i64().unwrap(), v["end"].as_i64().unwrap()));
            }
            429 => {
                let v = json_body(&r);
                assert_eq!(
                    v["Reason"], "ReservedFunctionConcurrentInvocationLimitExceeded",
                    "{v}"
                );
                assert_eq!(v["message"], "Rate Exceeded.", "{v}");
                throttled += 1;
            }
            s => panic!("unexpected {s}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    // Most invocations running at any instant.
    let mut edges: Vec<(i64, i32)> = spans.iter().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
    edges.sort();
    let (mut running, mut most) = (0, 0);
    for (_, d) in edges {
        running += d;
        most = most.max(running);
    }
    assert!(
        most as usize <= RESERVED,
        "{most} ran at once with {RESERVED} reserved: {spans:?}"
    );
    assert!(!spans.is_empty(), "nothing ran");
    assert!(throttled > 0, "nothing was throttled");
    assert_eq!(spans.len() + throttled, 3 * CALLERS_PER_NODE);
}

/// Sends `body` with `method` to `path` through `s`: (status, JSON answer).
async fn send(s: &Server, method: &str, path: &str, body: Value) -> (u16, Value) {
    let r = s
        .api
        .call(method, path, &[], body.to_string())
        .await
        .unwrap();
    (r.status, json_body(&r))
}

/// Waits until both nodes show the same `$LATEST` (or alias) revision; returns
/// what they show.
async fn settled(n1: &Server, n2: &Server, name: &str, alias: Option<&str>) -> Value {
    let path = match alias {
        None => format!("/2015-03-31/functions/{name}/configuration"),
        Some(a) => format!("/2015-03-31/functions/{name}/aliases/{a}"),
    };
    let t0 = Instant::now();
    loop {
        let a = n1.api.call("GET", &path, &[], "").await.unwrap();
        let b = n2.api.call("GET", &path, &[], "").await.unwrap();
        if a.status == 200 && b.status == 200 {
            let (a, b) = (json_body(&a), json_body(&b));
            if a["RevisionId"] == b["RevisionId"] {
                return a;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{path} never settled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The answer to one of two racing updates: accepted, or refused as a conflict
/// (never accepted and then lost).
fn accepted(who: &str, status: u16, body: &Value) -> bool {
    match status {
        200 => true,
        409 => {
            assert_eq!(body["Type"], "User", "{who}: {body:#}");
            let m = body["message"].as_str().unwrap();
            assert!(m.contains("was changed through another node"), "{who}: {m}");
            false
        }
        _ => panic!("{who}: {status} {body:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_through_two_nodes_lose_nothing() {
    let c = Cluster::new();
    let n1 = c.node("n1").await;
    let n2 = c.node("n2").await;
    n1.create_ok(
        "race",
        "nodejs20.x",
        "index.handler",
        &node_zip("v"),
        json!({}),
    )
    .await;
    settled(&n1, &n2, "race", None).await;

    // Each round changes a different field through each node at the same time.
    // Both may be accepted (then both changes are kept: the second was applied
    // on top of the first) or one is refused; an accepted change is never lost.
    let path = "/2015-03-31/functions/race/configuration";
    let mut refused = 0;
    for i in 0..12u32 {
        let (memory, timeout) = (200 + i, 10 + i);
        let ((s1, b1), (s2, b2)) = tokio::join!(
            send(&n1, "PUT", path, json!({ "MemorySize": memory })),
            send(&n2, "PUT", path, json!({ "Timeout": timeout })),
        );
        let (ok1, ok2) = (accepted("n1", s1, &b1), accepted("n2", s2, &b2));
        assert!(ok1 || ok2, "round {i}: both refused: {b1:#} {b2:#}");
        refused += usize::from(!ok1) + usize::from(!ok2);
        // The refused node re-read the function before answering: the same
        // request sent again at once is applied on top of the other change.
        let (ok1, ok2) = if ok1 && ok2 {
            (true, true)
        } else {
            let (node, body) = if ok1 {
                (&n2, json!({ "Timeout": timeout }))
            } else {
                (&n1, json!({ "MemorySize": memory }))
            };
            let (s, b) = send(node, "PUT", path, body).await;
            assert_eq!(s, 200, "round {i}: retry refused: {b:#}");
            (true, true)
        };
        let now = settled(&n1, &n2, "race", None).await;
        if ok1 {
            assert_eq!(
                now["MemorySize"], memory,
                "round {i}: n1's change lost: {now:#}"
            );
        }
        if ok2 {
            assert_eq!(
                now["Timeout"], timeout,
                "round {i}: n2's change lost: {now:#}"
            );
        }
    }
    eprintln!("$LATEST: {refused} of 24 racing updates refused as conflicts, none lost");

    // A RevisionId the caller read before another node's change: refused with
    // Lambda's PreconditionFailedException whether or not the node it asks has
    // heard of the change yet.
    for i in 0..4u32 {
        let before = n1.configuration("race").await["RevisionId"].clone();
        let (s, b) = send(
            &n1,
            "PUT",
            path,
            json!({ "Description": format!("n1 {i}") }),
        )
        .await;
        assert_eq!(s, 200, "{b:#}");
        let (s, b) = send(
            &n2,
            "PUT",
            path,
            json!({ "Description": format!("n2 {i}"), "RevisionId": before }),
        )
        .await;
        assert_eq!(s, 412, "{b:#}");
        assert!(
            b["message"]
                .as_str()
                .unwrap()
                .starts_with("The Revision Id provided does not match"),
            "{b:#}"
        );
        let now = settled(&n1, &n2, "race", None).await;
        assert_eq!(now["Description"], format!("n1 {i}"));
    }

    // Aliases: n1 changes the description while n2 moves the alias.
    n1.publish("race").await;
    send(&n1, "PUT", path, json!({ "MemorySize": 256 })).await;
    settled(&n1, &n2, "race", None).await;
    let v2 = n1.publish("race").await;
    let (s, b) = send(
        &n1,
        "POST",
        "/2015-03-31/functions/race/aliases",
        json!({ "Name": "live", "FunctionVersion": "1" }),
    )
    .await;
    assert_eq!(s, 201, "{b:#}");
    settled(&n1, &n2, "race", Some("live")).await;
    let alias_path = "/2015-03-31/functions/race/aliases/live";
    let mut refused = 0;
    for i in 0..8u32 {
        let target = if i % 2 == 0 { v2.as_str() } else { "1" };
        let description = format!("round {i}");
        let ((s1, b1), (s2, b2)) = tokio::join!(
            send(
                &n1,
                "PUT",
                alias_path,
                json!({ "Description": description })
            ),
            send(&n2, "PUT", alias_path, json!({ "FunctionVersion": target })),
        );
        let (ok1, ok2) = (accepted("n1", s1, &b1), accepted("n2", s2, &b2));
        assert!(ok1 || ok2, "alias round {i}: both refused: {b1:#} {b2:#}");
        refused += usize::from(!ok1) + usize::from(!ok2);
        let now = settled(&n1, &n2, "race", Some("live")).await;
        if ok1 {
            assert_eq!(
                now["Description"], description,
                "alias round {i}: n1's change lost: {now:#}"
            );
        }
        if ok2 {
            assert_eq!(
                now["FunctionVersion"], target,
                "alias round {i}: n2's change lost: {now:#}"
            );
        }
    }
    eprintln!("alias: {refused} of 16 racing updates refused as conflicts, none lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_node_is_forgotten_and_a_live_one_is_not() {
    let c = Cluster::new();
    let n1 = c.node("n1").await;
    let n2 = c.node("n2").await;
    let dir = c.tmp.path();
    let forget = |id: &'static str| {
        let ep = ep(&n1);
        async move { stratus_cmd(dir, &ep, &["cluster", "forget", id]).await }
    };
    // A healthy node is refused, naming it; an unknown id is not found.
    let o = forget("n2").await;
    assert!(!o.status.success());
    let text = output_text(&o);
    assert!(
        text.contains("ResourceConflictException: node n2 at ")
            && text.contains("is healthy")
            && text.contains("stop it first"),
        "{text}"
    );
    let o = forget("n9").await;
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("ResourceNotFoundException: no node n9 in the cluster"),
        "{}",
        output_text(&o)
    );
    // Stopped, it is forgotten and no longer listed.
    n2.terminate().await;
    until("n2 stopped", Duration::from_secs(10), || async {
        health_of(&status(&n1).await, "n2") == "stopped"
    })
    .await;
    let out = stratus_ok(dir, &ep(&n1), &["cluster", "forget", "n2"]).await;
    assert_eq!(out.trim(), "forgot node n2 (stopped)");
    let v = status(&n1).await;
    let ids: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["n1"], "{v:#}");
    // Started again, it rejoins by itself.
    let _n2 = c.node("n2").await;
    assert_eq!(health_of(&status(&n1).await, "n2"), "healthy");
}
