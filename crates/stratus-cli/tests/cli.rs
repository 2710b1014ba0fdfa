//! The `stratus` CLI end to end, as a Serverless Framework user drives it:
//! create → deploy → invoke → logs → deploy unchanged → change code → deploy →
//! rollback → remove, plus package determinism, invoke local, print, info, metrics
//! and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;

use common::stratus_cmd as stratus;

fn text(o: &Output) -> String {
    output_text(o)
}

/// `stratus create --template {template} --path {path}` in `parent`; returns the
/// service's directory.
async fn create_service(parent: &Path, ep: &str, template: &str, path: &str) -> PathBuf {
    ok(stratus(
        parent,
        ep,
        &["create", "--template", template, "--path", path],
    )
    .await);
    parent.join(path)
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serverless_workflow_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let dir = create_service(tmp.path(), &ep, "aws-nodejs", "svc").await;
    // Give the function a provisioned floor, an environment variable and a second file.
    let yml = std::fs::read_to_string(dir.join("serverless.yml")).unwrap();
    let yml = yml.replace(
        "    # provisionedConcurrency: 1   # keep one environment warm",
        "    provisionedConcurrency: 1",
    );
    let yml = yml.replace("provider:\n  name: aws\n  runtime: nodejs20.x\n", "provider:\n  name: aws\n  runtime: nodejs20.x\n  environment:\n    STAGE_NAME: ${sls:stage}\n");
    std::fs::write(dir.join("serverless.yml"), &yml).unwrap();
    std::fs::write(dir.join("handler.js"), "module.exports.hello = async (e) => { console.log('v1 says', e.name); return { v: 1, stage: process.env.STAGE_NAME, init: process.env.AWS_LAMBDA_INITIALIZATION_TYPE }; };\n").unwrap();

    let out = ok(stratus(&dir, &ep, &["deploy", "--verbose"]).await);
    assert!(out.contains("✔ Service deployed to svc stage dev"), "{out}");
    assert!(
        out.contains("hello: svc-dev-hello (created, version 1)"),
        "{out}"
    );

    let out = ok(stratus(
        &dir,
        &ep,
        &[
            "invoke",
            "-f",
            "hello",
            "--data",
            r#"{"name":"x"}"#,
            "--log",
        ],
    )
    .await);
    let (result, log) = out
        .split_once("--------------------------------------------------------------------")
        .unwrap();
    let v: Value = serde_json::from_str(result).unwrap();
    assert_eq!(v["v"], 1);
    assert_eq!(v["stage"], "dev");
    assert!(
        log.contains("v1 says x") && log.contains("REPORT RequestId"),
        "{log}"
    );
    // Through the provisioned alias: warm.
    let out = ok(stratus(
        &dir,
        &ep,
        &["invoke", "-f", "hello", "--qualifier", "provisioned"],
    )
    .await);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["init"],
        "provisioned-concurrency"
    );

    // Log lines are written in batches within a few tens of milliseconds.
    let mut logs = String::new();
    for _ in 0..50 {
        logs = ok(stratus(&dir, &ep, &["logs", "-f", "hello"]).await);
        if logs.matches("REPORT RequestId").count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        logs.contains("START RequestId") && logs.contains("v1 says x"),
        "{logs}"
    );
    let filtered = ok(stratus(
        &dir,
        &ep,
        &[
            "logs",
            "-f",
            "hello",
            "--filter",
            "v1 says",
            "--startTime",
            "30m",
        ],
    )
    .await);
    assert!(
        filtered.lines().all(|l| l.contains("v1 says")) && !filtered.is_empty(),
        "{filtered}"
    );

    // Unchanged inputs: nothing deployed, no new version.
    let out = ok(stratus(&dir, &ep, &["deploy"]).await);
    assert!(
        out.contains("No changes to deploy. Deployment skipped."),
        "{out}"
    );
    let versions = json_body(
        &s.api
            .call(
                "GET",
                "/2015-03-31/functions/svc-dev-hello/versions",
                &[],
                "",
            )
            .await
            .unwrap(),
    );
    assert_eq!(versions["Versions"].as_array().unwrap().len(), 2);

    // Changed code: version 2, the alias follows once warm.
    std::fs::write(dir.join("handler.js"), "module.exports.hello = async () => ({ v: 2, init: process.env.AWS_LAMBDA_INITIALIZATION_TYPE });\n").unwrap();
    let out = ok(stratus(&dir, &ep, &["deploy", "--verbose"]).await);
    assert!(
        out.contains("hello: svc-dev-hello (updated, version 2)"),
        "{out}"
    );
    let err = text(&stratus(&dir, &ep, &["deploy", "--verbose"]).await);
    assert!(err.contains("No changes"), "{err}");
    let out = ok(stratus(&dir, &ep, &["invoke", "-f", "hello", "-q", "provisioned"]).await);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["v"].as_i64(), v["init"].as_str()),
        (Some(2), Some("provisioned-concurrency"))
    );

    let info = ok(stratus(&dir, &ep, &["info"]).await);
    assert!(
        info.contains("service: svc")
            && info.contains("hello: svc-dev-hello")
            && info.contains("alias provisioned -> 2"),
        "{info}"
    );
    assert!(info.contains("provisioned 1/1 on 2 (READY)"), "{info}");
    let info: Value =
        serde_json::from_str(&ok(stratus(&dir, &ep, &["info", "--json"]).await)).unwrap();
    assert_eq!(info["functions"][0]["version"], "2");

    // History and rollback.
    let list = ok(stratus(&dir, &ep, &["deploy", "list"]).await);
    let stamps: Vec<&str> = list
        .lines()
        .filter_map(|l| l.strip_prefix("Timestamp: "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(stamps.len(), 2, "{list}");
    ok(stratus(&dir, &ep, &["rollback", "-t", stamps[0]]).await);
    let out = ok(stratus(&dir, &ep, &["invoke", "-f", "hello", "-q", "provisioned"]).await);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["v"], 1);
    let bad = stratus(&dir, &ep, &["rollback", "-t", "42"]).await;
    assert!(
        !bad.status.success() && text(&bad).contains("no deployment"),
        "{}",
        text(&bad)
    );

    // Metrics count what ran, as `serverless metrics` prints them.
    let m = ok(stratus(&dir, &ep, &["metrics", "-f", "hello"]).await);
    assert!(m.starts_with("hello\n"), "{m}");
    let figure = |name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {m}"))
            .to_string()
    };
    assert!(figure("invocations").parse::<u64>().unwrap() >= 4, "{m}");
    assert_eq!(
        (figure("errors"), figure("throttles")),
        ("0".into(), "0".into()),
        "{m}"
    );

    // deploy function -f, another stage, then remove.
    std::fs::write(
        dir.join("handler.js"),
        "module.exports.hello = async () => ({ v: 3 });\n",
    )
    .unwrap();
    let out = ok(stratus(&dir, &ep, &["deploy", "function", "-f", "hello"]).await);
    assert!(out.contains("(updated, version"), "{out}");
    let out = ok(stratus(&dir, &ep, &["deploy", "--stage", "prod"]).await);
    assert!(out.contains("svc-prod-hello (created"), "{out}");
    let out = ok(stratus(&dir, &ep, &["invoke", "-f", "hello", "--stage", "prod"]).await);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["v"], 3);
    let out = ok(stratus(&dir, &ep, &["remove"]).await);
    assert!(out.contains("removed svc-dev-hello"), "{out}");
    assert_eq!(s.invoke("svc-dev-hello", "{}").await.status, 404);
    assert_eq!(
        s.invoke("svc-prod-hello", "{}").await.status,
        200,
        "other stages untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_non_zero_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let dir = create_service(tmp.path(), &ep, "aws-python3", "py").await;
    std::fs::write(
        dir.join("handler.py"),
        "def hello(event, context):\n    raise ValueError('nope')\n",
    )
    .unwrap();
    ok(stratus(&dir, &ep, &["deploy"]).await);
    let o = stratus(&dir, &ep, &["invoke", "-f", "hello"]).await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "a function error exits 1: {}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\"errorType\": \"ValueError\""),
        "{}",
        text(&o)
    );
    let o = stratus(&dir, &ep, &["invoke", "-f", "nothere"]).await;
    assert!(
        !o.status.success()
            && text(&o).contains("Function \"nothere\" doesn't exist in this Service"),
        "{}",
        text(&o)
    );
    let o = stratus(&dir, "http://127.0.0.1:1", &["invoke", "-f", "hello"]).await;
    assert!(
        !o.status.success()
            && text(&o).contains("cannot reach the Stratus server at http://127.0.0.1:1"),
        "{}",
        text(&o)
    );
    std::fs::write(dir.join("serverless.yml"), "service: py\nprovider:\n  name: aws\n  runtime: python3.12\nfunctions:\n  hello:\n    handler: handler.hello\n    timeout: ten\n").unwrap();
    let o = stratus(&dir, &ep, &["deploy"]).await;
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("serverless.yml:8:") && text(&o).contains("functions.hello.timeout"),
        "{}",
        text(&o)
    );
    let empty = tempfile::tempdir().unwrap();
    let o = stratus(empty.path(), &ep, &["deploy"]).await;
    assert!(
        !o.status.success() && text(&o).contains("serverless.yml"),
        "{}",
        text(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_is_deterministic_and_invoke_local_needs_no_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = create_service(tmp.path(), "http://127.0.0.1:1", "aws-nodejs", "svc").await;
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(dir.join("lib/util.js"), "module.exports = 1;\n").unwrap();
    std::fs::write(dir.join("notes.md"), "not shipped\n").unwrap();
    let yml = std::fs::read_to_string(dir.join("serverless.yml")).unwrap()
        + "\npackage:\n  patterns:\n    - '!notes.md'\n";
    std::fs::write(dir.join("serverless.yml"), yml).unwrap();
    let first = ok(stratus(&dir, "http://127.0.0.1:1", &["package"]).await);
    let zip1 = std::fs::read(dir.join(".serverless/svc.zip")).unwrap();
    // Touch every file: same content, new mtimes.
    std::thread::sleep(Duration::from_millis(1100));
    for f in ["handler.js", "lib/util.js", "serverless.yml"] {
        let c = std::fs::read(dir.join(f)).unwrap();
        std::fs::write(dir.join(f), c).unwrap();
    }
    let second = ok(stratus(&dir, "http://127.0.0.1:1", &["package"]).await);
    assert_eq!(first, second, "same sha256");
    assert_eq!(
        zip1,
        std::fs::read(dir.join(".serverless/svc.zip")).unwrap(),
        "same bytes"
    );
    let mut names: Vec<String> = {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip1)).unwrap();
        (0..z.len())
            .map(|i| z.by_index(i).unwrap().name().unwrap().to_string())
            .collect()
    };
    names.sort();
    assert_eq!(
        names,
        ["handler.js", "lib/util.js"],
        "serverless.yml, .gitignore, notes.md and .serverless excluded"
    );

    std::fs::write(dir.join("handler.js"), "module.exports.hello = async (e) => { console.log('local log line'); if (e.fail) throw new Error('local boom'); return { env: process.env.EXTRA, got: e }; };\n").unwrap();
    let out = ok(stratus(
        &dir,
        "http://127.0.0.1:1",
        &[
            "invoke",
            "local",
            "-f",
            "hello",
            "--data",
            r#"{"a":1}"#,
            "--env",
            "EXTRA=yes",
        ],
    )
    .await);
    assert!(out.contains("\"env\": \"yes\""), "{out}");
    assert!(
        out.contains("local log line") && out.contains("REPORT RequestId"),
        "{out}"
    );
    std::fs::write(dir.join("event.json"), r#"{"fail": true}"#).unwrap();
    let o = stratus(
        &dir,
        "http://127.0.0.1:1",
        &["invoke", "local", "-f", "hello", "--path", "event.json"],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("local boom"), "{}", text(&o));

    let printed = ok(stratus(&dir, "http://127.0.0.1:1", &["print", "--format", "json"]).await);
    let v: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(v["functions"]["hello"]["name"], "svc-dev-hello");
    let yaml = ok(stratus(&dir, "http://127.0.0.1:1", &["print"]).await);
    assert!(yaml.lines().any(|l| l == "service: svc"), "{yaml}");
    let model = ok(stratus(
        &dir,
        "http://127.0.0.1:1",
        &["print", "--model", "--format", "json"],
    )
    .await);
    let v: Value = serde_json::from_str(&model).unwrap();
    assert_eq!(v["functions"]["hello"]["memory_size"], 1024, "{model}");
}

/// Two Rust functions of one service (not `individually`) each get their own
/// `bootstrap`: one shared service zip would run the first one's binary for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rust_function_is_packaged_with_its_own_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("two-bins");
    std::fs::create_dir_all(dir.join("src/bin")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"two-bins\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    for name in ["alpha", "beta"] {
        std::fs::write(
            dir.join(format!("src/bin/{name}.rs")),
            format!("fn main() {{ println!(\"{name}\"); }}\n"),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("serverless.yml"),
        "service: twobins\nprovider:\n  name: aws\n  runtime: provided.al2023\nfunctions:\n  a:\n    handler: alpha\n  b:\n    handler: beta\n",
    )
    .unwrap();
    ok(stratus(&dir, "http://127.0.0.1:1", &["package"]).await);
    let bootstrap = |key: &str| {
        let bytes = std::fs::read(dir.join(format!(".serverless/{key}.zip"))).unwrap();
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let names: Vec<String> = z.file_names().map(|n| n.unwrap().to_string()).collect();
        assert_eq!(names, ["bootstrap"], "{key}");
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut z.by_name("bootstrap").unwrap(), &mut out).unwrap();
        out
    };
    let (a, b) = (bootstrap("a"), bootstrap("b"));
    assert_ne!(a, b, "each function has its own binary");
    let runs = |bin: &[u8], name: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, bin).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        String::from_utf8(std::process::Command::new(&path).output().unwrap().stdout).unwrap()
    };
    assert_eq!(runs(&a, "a-bootstrap"), "alpha\n");
    assert_eq!(runs(&b, "b-bootstrap"), "beta\n");
    assert!(!dir.join(".serverless/twobins.zip").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_deploys_and_redeploys_on_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = create_service(tmp.path(), "http://127.0.0.1:1", "aws-nodejs", "svc").await;
    std::fs::write(
        dir.join("handler.js"),
        "module.exports.hello = async () => ({ v: 'one' });\n",
    )
    .unwrap();
    let yml = std::fs::read_to_string(dir.join("serverless.yml"))
        .unwrap()
        .replace(
            "    handler: handler.hello\n",
            "    handler: handler.hello\n    events:\n      - httpApi: 'GET /hello'\n",
        );
    std::fs::write(dir.join("serverless.yml"), yml).unwrap();
    let mut dev = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["dev", "--port", "0", "--gateway-port", "0"])
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(dev.stdout.take().unwrap()).lines();
    let mut endpoint = String::new();
    let mut seen = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .unwrap()
    {
        if let Some(rest) = line.strip_prefix("Stratus dev server on ") {
            endpoint = rest.split(' ').next().unwrap().to_string();
        }
        let watching = line.starts_with("Watching");
        seen.push(line);
        if watching {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("hello: svc-dev-hello (created, version 1)")),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("HTTP gateway on http://127.0.0.1:")),
        "dev runs the gateway: {seen:#?}"
    );
    let route = seen
        .iter()
        .find_map(|l| l.trim().strip_prefix("GET - "))
        .expect("dev prints the HTTP endpoint")
        .to_string();
    assert!(route.ends_with("/hello"), "{route}");
    let (gateway, path) = route.split_at(route.len() - "/hello".len());
    // `stratus dev` wrote its admin key into its data dir on first start.
    let api = Api::with_signer(&endpoint, signer_for(&dir.join(".stratus").join("data")));
    let r = api.invoke("svc-dev-hello", "{}").await.unwrap();
    assert_eq!(r.json().unwrap()["v"], "one");
    let http = Api::new(gateway);
    assert_eq!(
        http.call("GET", path, &[], "")
            .await
            .unwrap()
            .json()
            .unwrap()["v"],
        "one"
    );

    std::fs::write(
        dir.join("handler.js"),
        "module.exports.hello = async () => ({ v: 'two' });\n",
    )
    .unwrap();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if line.contains("(updated, version 2)") {
            break;
        }
    }
    let r = api.invoke("svc-dev-hello", "{}").await.unwrap();
    assert_eq!(
        r.json().unwrap()["v"],
        "two",
        "the next request runs the new code"
    );
    let r = http.call("GET", path, &[], "").await.unwrap();
    assert_eq!(r.json().unwrap()["v"], "two", "over HTTP too");
    let pid = dev.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), dev.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_settings_from_serverless_yml_apply() {
    let tmp = tempfile::tempdir().unwrap();
    // The function writes to a host file the test reads: only the `process` driver
    // shows it the host.
    let s = Server::start(&tmp.path().join("data"), &["--sandbox", "process"]).await;
    let ep = format!("http://{}", s.addr);
    let dir = tmp.path().join("svc");
    std::fs::create_dir_all(&dir).unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        dir.join("serverless.yml"),
        format!(
            "service: asy\nprovider:\n  name: aws\n  runtime: nodejs20.x\n  environment:\n    OUT: {}\nfunctions:\n  worker:\n    handler: h.worker\n    maximumRetryAttempts: 0\n    destinations:\n      onFailure: failures\n  failures:\n    handler: h.failures\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("h.js"),
        "const fs = require('fs');\nexports.worker = async () => { throw new Error('worker failed'); };\nexports.failures = async (record) => { fs.writeFileSync(process.env.OUT + '/record.json', JSON.stringify(record)); return 'ok'; };\n",
    )
    .unwrap();
    ok(stratus(&dir, &ep, &["deploy"]).await);
    let cfg = json_body(
        &s.api
            .call(
                "GET",
                "/2019-09-25/functions/asy-dev-worker/event-invoke-config",
                &[],
                "",
            )
            .await
            .unwrap(),
    );
    assert_eq!(cfg["MaximumRetryAttempts"], 0);
    assert_eq!(
        cfg["DestinationConfig"]["OnFailure"]["Destination"],
        "arn:aws:lambda:us-east-1:000000000000:function:asy-dev-failures"
    );
    let o = ok(stratus(
        &dir,
        &ep,
        &[
            "invoke",
            "-f",
            "worker",
            "--type",
            "Event",
            "-d",
            r#"{"job":7}"#,
        ],
    )
    .await);
    assert!(o.contains("Invocation accepted"), "{o}");
    let record = out.join("record.json");
    for _ in 0..200 {
        if record.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&record).expect("OnFailure record written"))
            .unwrap();
    assert_eq!(v["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(v["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(v["requestPayload"], serde_json::json!({"job": 7}));
    // Unchanged settings: nothing to deploy.
    assert!(ok(stratus(&dir, &ep, &["deploy"]).await).contains("No changes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_follows_new_invocations() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let dir = create_service(tmp.path(), &ep, "aws-nodejs", "svc").await;
    std::fs::write(
        dir.join("handler.js"),
        "module.exports.hello = async (e) => { console.log('tail me', e.n); return 1; };\n",
    )
    .unwrap();
    ok(stratus(&dir, &ep, &["deploy"]).await);
    let mut tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["logs", "-f", "hello", "--tail"])
        .current_dir(&dir)
        .env("STRATUS_ENDPOINT", &ep)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials_file(&ep).unwrap(),
        )
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(tail.stdout.take().unwrap()).lines();
    for n in 1..=2 {
        ok(stratus(
            &dir,
            &ep,
            &["invoke", "-f", "hello", "-d", &format!("{{\"n\":{n}}}")],
        )
        .await);
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .expect("a new line in time")
                .unwrap()
                .unwrap();
            if line.ends_with(&format!("tail me {n}")) {
                break;
            }
        }
    }
    tail.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_and_info_shows_the_next_firing() {
    let tmp = tempfile::tempdir().unwrap();
    // The function writes to a host file the test reads: only the `process` driver
    // shows it the host.
    let s = Server::start(&tmp.path().join("data"), &["--sandbox", "process"]).await;
    let ep = format!("http://{}", s.addr);
    let dir = tmp.path().join("svc");
    std::fs::create_dir_all(&dir).unwrap();
    let out = tmp.path().join("fired.json");
    std::fs::write(
        dir.join("serverless.yml"),
        format!(
            "service: sch\nprovider:\n  name: aws\n  runtime: nodejs20.x\n  environment:\n    OUT: {}\nfunctions:\n  tick:\n    handler: h.tick\n    events:\n      - schedule: rate(1 minute)\n      - schedule:\n          rate: cron(0 12 * * ? *)\n          input:\n            kind: noon\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("h.js"), "exports.tick = async (e) => { require('fs').writeFileSync(process.env.OUT, JSON.stringify(e)); };\n").unwrap();
    let o = ok(stratus(&dir, &ep, &["deploy", "--verbose"]).await);
    assert!(o.contains("created"), "{o}");
    let info = ok(stratus(&dir, &ep, &["info"]).await);
    assert!(info.contains("schedule rate(1 minute): next 20"), "{info}");
    assert!(
        info.contains("schedule cron(0 12 * * ? *): next 20") && info.contains("T12:00:00Z"),
        "{info}"
    );
    // rate(1 minute) fires one minute after the deployment, as an asynchronous
    // invocation carrying the EventBridge Scheduled Event.
    for _ in 0..150 {
        if out.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(&out).expect("the schedule fired within 75 s"),
    )
    .unwrap();
    assert_eq!(v["detail-type"], "Scheduled Event");
    assert_eq!(v["source"], "aws.events");
    assert_eq!(
        v["resources"][0],
        "arn:aws:events:us-east-1:000000000000:rule/sch-dev-tick-rule-1"
    );
    // Invalid expressions are refused at deploy time, naming the function.
    let yml = std::fs::read_to_string(dir.join("serverless.yml"))
        .unwrap()
        .replace("rate(1 minute)", "rate(0 minutes)");
    std::fs::write(dir.join("serverless.yml"), yml).unwrap();
    let o = stratus(&dir, &ep, &["deploy"]).await;
    assert!(!o.status.success(), "{}", text(&o));
}
