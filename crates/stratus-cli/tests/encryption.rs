//! Encryption at rest, end to end with the real `stratus` binary: secrets planted
//! as function environment variables (deployed from serverless.yml and through
//! the Lambda API) and as queue message bodies and attributes still reach the
//! function and the receiver, yet no file of the data dir holds them once the
//! server has stopped; and the master key's handling: owner-only key file, a
//! wrong key refused at start-up, `rotate-key` (refused while a server runs), a
//! tampered value reported clearly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use stratus_cli::client::Api;
use tokio::io::{AsyncBufReadExt, BufReader};

const HANDLER: &str = r#"
exports.read = async () => ({ a: process.env.SECRET_A || null, b: process.env.SECRET_B || null });
"#;

fn secret(what: &str) -> String {
    format!("{what}-{}", hex_of(&rand::random::<[u8; 16]>()))
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                stack.push(e.path());
            } else if ty.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// The files (of `files`) whose bytes contain `needle`.
fn holding(files: &[PathBuf], needle: &str) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .cloned()
        .collect()
}

async fn sqs(api: &Api, action: &str, body: Value) -> Value {
    let target = format!("AmazonSQS.{action}");
    let r = api
        .call(
            "POST",
            "/",
            &[
                ("x-amz-target", target.as_str()),
                ("content-type", "application/x-amz-json-1.0"),
            ],
            body.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        r.status,
        200,
        "{action}: {}",
        String::from_utf8_lossy(&r.body)
    );
    serde_json::from_slice(&r.body).unwrap()
}

async fn lambda(api: &Api, method: &str, path: &str, body: Value) -> Value {
    let r = api.call(method, path, &[], body.to_string()).await.unwrap();
    assert!(
        (200..300).contains(&r.status),
        "{method} {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

async fn invoke_json(s: &Server, target: &str) -> Value {
    let r = s.invoke(target, "{}").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice(&r.body).unwrap()
}

fn service_yml(secret_a: &str, queue: &str) -> String {
    format!(
        r#"service: sealed
provider:
  name: aws
  runtime: nodejs20.x
  kmsKeyArn: arn:aws:kms:us-east-1:000000000000:key/provider-key
functions:
  reader:
    handler: h.read
    kmsKeyArn: arn:aws:kms:us-east-1:000000000000:key/function-key
    environment:
      SECRET_A: {secret_a}
resources:
  Resources:
    Q:
      Type: AWS::SQS::Queue
      Properties:
        QueueName: {queue}
"#
    )
}

/// `stratus server` with `STRATUS_MASTER_KEY` set (or removed) that is expected to
/// fail at start-up; returns what it printed.
async fn start_fails(data: &Path, master_key: Option<&str>) -> String {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"));
    cmd.arg("server")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .env_remove("STRATUS_MASTER_KEY")
        .kill_on_drop(true);
    if let Some(k) = master_key {
        cmd.env("STRATUS_MASTER_KEY", k);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the server gave up in time")
        .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "the server started: {text}");
    assert!(!text.contains("panicked"), "{text}");
    text
}

/// `stratus server` with the master key in `STRATUS_MASTER_KEY`.
async fn start_with_key(data: &Path, key: &str) -> Server {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .arg("server")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--shutdown-grace", "5"])
        .env("STRATUS_MASTER_KEY", key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("the server announced its address");
    let url = line.rsplit(' ').next().unwrap().to_string();
    Server {
        child,
        api: Api::with_signer(&url, signer_for(data)),
        addr: url.trim_start_matches("http://").to_string(),
        data_dir: data.to_path_buf(),
        gateway: None,
    }
}

async fn rotate_key(data: &Path, extra: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["server", "rotate-key", "--data-dir"])
        .arg(data)
        .args(extra)
        .env_remove("STRATUS_MASTER_KEY")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_secrets_work_but_no_file_of_the_data_dir_holds_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, &[]).await;
    let ep = format!("http://{}", s.addr);
    let (a1, a2) = (secret("yml-env"), secret("yml-env-changed"));
    let (b1, b2) = (secret("api-env"), secret("api-env-changed"));
    let (body, attr) = (secret("queue-body"), secret("queue-attr"));
    let plain_marker = secret("plain-description");
    let queue = "sealed-q";

    // serverless.yml, deployed twice (the second time with a changed value).
    let svc = tmp.path().join("svc");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(svc.join("h.js"), HANDLER).unwrap();
    std::fs::write(svc.join("serverless.yml"), service_yml(&a1, queue)).unwrap();
    stratus_ok(&svc, &ep, &["deploy"]).await;
    assert_eq!(invoke_json(&s, "sealed-dev-reader").await["a"], a1.as_str());
    std::fs::write(svc.join("serverless.yml"), service_yml(&a2, queue)).unwrap();
    stratus_ok(&svc, &ep, &["deploy"]).await;
    assert_eq!(invoke_json(&s, "sealed-dev-reader").await["a"], a2.as_str());
    let cfg = lambda(
        &s.api,
        "GET",
        "/2015-03-31/functions/sealed-dev-reader/configuration",
        Value::Null,
    )
    .await;
    assert_eq!(cfg["Environment"]["Variables"]["SECRET_A"], a2.as_str());
    assert_eq!(
        cfg["KMSKeyArn"],
        "arn:aws:kms:us-east-1:000000000000:key/function-key"
    );

    // The Lambda API: a function, a published version, then a changed value.
    let zip = raw_zip(&[("h.js", HANDLER.as_bytes())]);
    s.create_ok(
        "api-fn",
        "nodejs20.x",
        "h.read",
        &zip,
        json!({ "Description": plain_marker, "Environment": { "Variables": { "SECRET_B": b1 } } }),
    )
    .await;
    lambda(
        &s.api,
        "POST",
        "/2015-03-31/functions/api-fn/versions",
        json!({}),
    )
    .await;
    lambda(
        &s.api,
        "PUT",
        "/2015-03-31/functions/api-fn/configuration",
        json!({ "Environment": { "Variables": { "SECRET_B": b2 } } }),
    )
    .await;
    assert_eq!(invoke_json(&s, "api-fn:1").await["b"], b1.as_str());
    assert_eq!(invoke_json(&s, "api-fn").await["b"], b2.as_str());
    let got = lambda(&s.api, "GET", "/2015-03-31/functions/api-fn", Value::Null).await;
    assert_eq!(
        got["Configuration"]["Environment"]["Variables"]["SECRET_B"],
        b2.as_str()
    );

    // A queue message (body and attribute): one received, one left in the queue.
    let url = format!("{ep}/000000000000/{queue}");
    for _ in 0..2 {
        sqs(
            &s.api,
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": body,
                    "MessageAttributes": { "k": { "DataType": "String", "StringValue": attr } } }),
        )
        .await;
    }
    let r = sqs(
        &s.api,
        "ReceiveMessage",
        json!({ "QueueUrl": url, "MaxNumberOfMessages": 1, "MessageAttributeNames": ["All"] }),
    )
    .await;
    assert_eq!(r["Messages"][0]["Body"], body.as_str());
    assert_eq!(
        r["Messages"][0]["MessageAttributes"]["k"]["StringValue"],
        attr.as_str()
    );
    assert!(s.terminate().await.success());

    let mut files = files_under(&data);
    // The server's own log (beside the data dir) must not hold them either.
    files.push(data.with_extension("server.log"));
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    assert!(names.iter().any(|n| n.ends_with("state.db")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("queues.db")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("/blobs/")), "{names:?}");
    // The search finds what is stored in plain text, so it can find a secret.
    assert!(
        !holding(&files, &plain_marker).is_empty(),
        "the search itself is broken"
    );
    for s in [&a1, &a2, &b1, &b2, &body, &attr] {
        let found = holding(&files, s);
        assert!(found.is_empty(), "{s} is readable in {found:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_file_wrong_keys_rotation_and_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key_file = data.join("master.key");
    let b1 = secret("api-env");
    let s = Server::start(&data, &[]).await;
    let zip = raw_zip(&[("h.js", HANDLER.as_bytes())]);
    s.create_ok(
        "fn",
        "nodejs20.x",
        "h.read",
        &zip,
        json!({ "Environment": { "Variables": { "SECRET_B": b1 } } }),
    )
    .await;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "master.key is created owner-only");

    // No rotation under a running server.
    let o = rotate_key(&data, &[]).await;
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("in use by a running Stratus server"),
        "{}",
        output_text(&o)
    );
    assert!(s.terminate().await.success());

    // A key file others can read is refused.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = start_fails(&data, None).await;
    assert!(out.contains("chmod 600"), "{out}");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Another key is refused at start-up, clearly.
    let wrong = "A".repeat(43) + "=";
    let out = start_fails(&data, Some(&wrong)).await;
    assert!(out.contains("does not match this data dir"), "{out}");
    let out = start_fails(&data, Some("short")).await;
    assert!(out.contains("STRATUS_MASTER_KEY is invalid"), "{out}");

    // Rotation: a new master key, a new data key; old values still open.
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let o = rotate_key(&data, &["--new-data-key"]).await;
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("data key 2 seals new values"),
        "{}",
        output_text(&o)
    );
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), old_key);
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let out = start_fails(&data, Some(old_key.trim())).await;
    assert!(out.contains("does not match this data dir"), "{out}");

    let s = Server::start(&data, &[]).await;
    assert_eq!(invoke_json(&s, "fn").await["b"], b1.as_str());
    let b2 = secret("after-rotation");
    lambda(
        &s.api,
        "PUT",
        "/2015-03-31/functions/fn/configuration",
        json!({ "Environment": { "Variables": { "SECRET_B": b2 } } }),
    )
    .await;
    assert_eq!(invoke_json(&s, "fn").await["b"], b2.as_str());
    assert!(s.terminate().await.success());

    // One altered byte of a sealed environment: a clear start-up error, no panic.
    {
        let conn = rusqlite::Connection::open(data.join("state.db")).unwrap();
        let config: String = conn
            .query_row("SELECT config FROM functions WHERE name = 'fn'", [], |r| {
                r.get(0)
            })
            .unwrap();
        let mut v: Value = serde_json::from_str(&config).unwrap();
        let sealed = v["SealedEnvironment"].as_str().expect("sealed").to_string();
        let mut bytes = base64_decode(&sealed);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        v["SealedEnvironment"] = base64_encode(&bytes).into();
        conn.execute(
            "UPDATE functions SET config = ?1 WHERE name = 'fn'",
            [v.to_string()],
        )
        .unwrap();
    }
    let out = start_fails(&data, None).await;
    assert!(
        out.contains("state/functions/fn/environment does not open")
            && out.contains("failed authentication"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_can_come_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key = base64_encode(&rand::random::<[u8; 32]>());
    let s = start_with_key(&data, &key).await;
    let b1 = secret("env-key");
    s.create_ok(
        "fn",
        "nodejs20.x",
        "h.read",
        &raw_zip(&[("h.js", HANDLER.as_bytes())]),
        json!({ "Environment": { "Variables": { "SECRET_B": b1 } } }),
    )
    .await;
    assert!(s.terminate().await.success());
    assert!(
        !data.join("master.key").exists(),
        "no key file when the key is given"
    );
    // Without the key, the data dir does not open (and no new key is made up).
    let out = start_fails(&data, None).await;
    assert!(out.contains("master.key is missing"), "{out}");
    let s = start_with_key(&data, &key).await;
    assert_eq!(invoke_json(&s, "fn").await["b"], b1.as_str());
    assert!(s.terminate().await.success());
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
