//! SigV4 authentication end to end: botocore as the signing oracle (header and
//! presigned forms, every refusal's exact shape), the AWS CLI with the server's
//! credentials file, `stratus keys`, the credentials file itself, `--no-auth`, and
//! the payload rules (hash checked, Invoke's 6 MB limit while the body arrives).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_signed_requests_pass_and_every_refusal_has_the_aws_shape() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    run_sdk_script(&s, "boto3_auth.py", "boto3 auth: all checks passed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_uses_the_credentials_file_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let aws = |args: &[&str], creds: Option<std::path::PathBuf>| {
        let mut cmd = std::process::Command::new("aws");
        cmd.args(args)
            .args([
                "--endpoint-url",
                &format!("http://{}", s.addr),
                "--output",
                "json",
            ])
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("HOME", dir.path())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION");
        match creds {
            Some(c) => cmd.env("AWS_SHARED_CREDENTIALS_FILE", c),
            None => cmd.env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none")),
        };
        cmd.output()
            .expect("run the AWS CLI (installed by scripts/test)")
    };
    let creds = s.data_dir.join("credentials");
    // The region comes from the file too (no --region).
    let o = aws(
        &["sqs", "create-queue", "--queue-name", "cli"],
        Some(creds.clone()),
    );
    assert!(o.status.success(), "{}", output_text(&o));
    let o = aws(&["lambda", "list-functions"], Some(creds));
    assert!(o.status.success(), "{}", output_text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Functions"], serde_json::json!([]));
    // Without credentials the CLI cannot sign at all.
    let o = aws(&["lambda", "list-functions", "--region", "us-east-1"], None);
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("credentials"),
        "{}",
        output_text(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stratus_keys_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let policy = work.join("invoke-only.json");
    std::fs::write(
        &policy,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:InvokeFunction","Resource":"*"}]}"#,
    )
    .unwrap();
    let created = stratus_ok(
        &work,
        &ep,
        &[
            "keys",
            "create",
            "alice",
            "--policy",
            policy.to_str().unwrap(),
        ],
    )
    .await;
    let key: Value = serde_json::from_str(&created).unwrap();
    let id = key["AccessKeyId"].as_str().unwrap().to_string();
    let secret = key["SecretAccessKey"].as_str().unwrap().to_string();
    assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
    assert_eq!(secret.len(), 40);
    assert_eq!(key.as_object().unwrap().len(), 2, "{created}");

    // Listed, with its policy's name and never a secret.
    let list = stratus_ok(&work, &ep, &["keys", "list"]).await;
    assert!(!list.contains(&secret), "{list}");
    let v: Value = serde_json::from_str(&list).unwrap();
    let alice = v["AccessKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["AccessKeyId"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(alice["UserName"], "alice");
    assert_eq!(alice["Arn"], "arn:aws:iam::000000000000:user/alice");
    assert_eq!(alice["PolicyNames"], serde_json::json!(["invoke-only"]));

    // The new key signs requests.
    let as_alice = |args: &'static [&'static str]| {
        let (id, secret, work, ep) = (id.clone(), secret.clone(), work.clone(), ep.clone());
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
                .args(args)
                .current_dir(&work)
                .env("STRATUS_ENDPOINT", &ep)
                .env("AWS_ACCESS_KEY_ID", &id)
                .env("AWS_SECRET_ACCESS_KEY", &secret)
                .env("NO_COLOR", "1")
                .output()
                .await
                .unwrap()
        }
    };
    // Its policy (invoke only) decides the rest: listing keys is denied, by name.
    let o = as_alice(&["keys", "list"]).await;
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains(
            "User: arn:aws:iam::000000000000:user/alice is not authorized to perform: stratus:ListKeys on resource: *"
        ),
        "{}",
        output_text(&o)
    );

    // Attach and detach a second policy.
    stratus_ok(
        &work,
        &ep,
        &[
            "keys",
            "attach-policy",
            &id,
            "--policy",
            policy.to_str().unwrap(),
            "--name",
            "extra",
        ],
    )
    .await;
    let list = stratus_ok(&work, &ep, &["keys", "list"]).await;
    assert!(list.contains("\"extra\""), "{list}");
    stratus_ok(
        &work,
        &ep,
        &["keys", "detach-policy", &id, "--name", "extra"],
    )
    .await;
    let o = stratus_cmd(
        &work,
        &ep,
        &["keys", "detach-policy", &id, "--name", "extra"],
    )
    .await;
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("has no policy named extra"),
        "{}",
        output_text(&o)
    );
    let bad = work.join("bad.json");
    std::fs::write(&bad, "{\"Statement\": [\n  oops]}").unwrap();
    let o = stratus_cmd(
        &work,
        &ep,
        &[
            "keys",
            "attach-policy",
            &id,
            "--policy",
            bad.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("bad.json:2:"),
        "{}",
        output_text(&o)
    );

    // Deleted: the key stops working at once.
    stratus_ok(&work, &ep, &["keys", "delete", &id]).await;
    let o = as_alice(&["keys", "list"]).await;
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("The security token included in the request is invalid."),
        "{}",
        output_text(&o)
    );
    let o = stratus_cmd(&work, &ep, &["keys", "delete", &id]).await;
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("cannot be found"),
        "{}",
        output_text(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credentials_file_is_owner_only_and_kept_across_restarts() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]).await;
    let file = data.join("credentials");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("[default]") && text.contains("region = us-east-1"),
        "{text}"
    );
    // The server said where, and the secret is in no log.
    let log = std::fs::read_to_string(data.with_extension("server.log")).unwrap();
    assert!(
        log.contains(&format!(
            "export AWS_SHARED_CREDENTIALS_FILE={}",
            std::fs::canonicalize(&file).unwrap().display()
        )),
        "{log}"
    );
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("aws_secret_access_key = "))
        .unwrap()
        .to_string();
    assert!(!log.contains(&secret));
    s.terminate().await;
    let s = Server::start(&data, &[]).await;
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "kept as it was"
    );
    assert_eq!(
        s.api
            .call("GET", "/2015-03-31/functions", &[], "")
            .await
            .unwrap()
            .status,
        200
    );
    let log = std::fs::read_to_string(data.with_extension("server.log")).unwrap();
    assert!(!log.contains(&secret));
    assert_eq!(
        log.matches("created the admin access key").count(),
        2,
        "one tracing line and one notice, first start only: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auth_is_loopback_only_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["server", "--no-auth", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("refused"))
        .output()
        .await
        .unwrap();
    assert!(!o.status.success());
    let text = output_text(&o);
    assert!(
        text.contains("--no-auth is refused on 0.0.0.0:0") && text.contains("loopback"),
        "{text}"
    );
    // On loopback it runs, says so on every start, and takes unsigned requests.
    let data = dir.path().join("open");
    for _ in 0..2 {
        let s = Server::start(&data, &["--no-auth"]).await;
        let r = s
            .api
            .call("GET", "/2015-03-31/functions", &[], "")
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        s.terminate().await;
    }
    let log = std::fs::read_to_string(data.with_extension("server.log")).unwrap();
    assert_eq!(log.matches("WARNING: --no-auth").count(), 2, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_without_credentials_says_where_to_find_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["keys", "list", "--endpoint", &format!("http://{}", s.addr)])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("STRATUS_DATA_DIR")
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    assert!(!o.status.success());
    let text = output_text(&o);
    assert!(
        text.contains("requires signed requests")
            && text.contains("export AWS_SHARED_CREDENTIALS_FILE={data-dir}/credentials"),
        "{text}"
    );
    // The health check stays open.
    let r = Api::with_signer(
        &format!("http://{}", s.addr),
        stratus_cli::signing::Signer::unsigned(),
    )
    .call("GET", "/stratus/v1/health", &[], "")
    .await
    .unwrap();
    assert_eq!(r.status, 200);
}

/// Sends a request by hand (header block, then `body` as is), returns the status,
/// the error type and the body of the response.
async fn raw(addr: &str, head: String, body: &[u8], then_stall: bool) -> (u16, String, Value) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and stop reading) before the body is all sent.
    let _ = tcp.write_all(body).await;
    if !then_stall {
        let _ = tcp.flush().await;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut chunk))
            .await
            .expect("the server answered without waiting for the rest of the body")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(i) = text.find("\r\n\r\n") {
            let len: usize = text[..i]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= i + 4 + len {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text[9..12].parse().unwrap();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap();
    let kind = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-amzn-errortype: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (
        status,
        kind,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// A signed request head for `body` (its hash in `X-Amz-Content-Sha256`).
fn signed_head(s: &Server, path: &str, body: &[u8], framing: &str) -> String {
    let uri: http::Uri = format!("http://{}{path}", s.addr).parse().unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    signer_for(&s.data_dir).sign("POST", &uri, &mut h, body);
    let mut head = format!("POST {path} HTTP/1.1\r\n");
    for (k, v) in &h {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    head.push_str(framing);
    head.push_str("\r\n");
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_are_hashed_and_invoke_keeps_its_6_mb_limit_while_the_body_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "f",
        "nodejs20.x",
        "index.handler",
        &fixture_zip("node"),
        serde_json::json!({}),
    )
    .await;
    let path = "/2015-03-31/functions/f/invocations";

    // 7 MB in 1 MB chunks, then the client stalls: refused as soon as it passes 6 MB,
    // signature checked first (the hash is claimed up front).
    let body = vec![b' '; 7 * 1024 * 1024];
    let mut chunked = Vec::new();
    for c in body.chunks(1024 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        chunked.extend_from_slice(c);
        chunked.extend_from_slice(b"\r\n");
    }
    let head = signed_head(&s, path, &body, "transfer-encoding: chunked\r\n");
    let (status, kind, v) = raw(&s.addr, head, &chunked, true).await;
    assert_eq!(
        (status, kind.as_str()),
        (413, "requesttoolargeexception"),
        "{v}"
    );
    assert_eq!(
        v["message"],
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    );

    // Unsigned, the same request is refused before any of it is read.
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ntransfer-encoding: chunked\r\n\r\n",
        s.addr
    );
    let (status, kind, _) = raw(&s.addr, head, &chunked, true).await;
    assert_eq!(
        (status, kind.as_str()),
        (403, "missingauthenticationtokenexception")
    );

    // A body that is not the one whose hash was signed.
    let head = signed_head(&s, path, b"{\"a\":1}", "content-length: 7\r\n");
    let (status, kind, v) = raw(&s.addr, head, b"{\"a\":2}", false).await;
    assert_eq!(
        (status, kind.as_str()),
        (403, "invalidsignatureexception"),
        "{v}"
    );
    assert_eq!(
        v["message"],
        "The provided 'x-amz-content-sha256' header does not match what was computed."
    );

    // The same, honest, reaches the function.
    let head = signed_head(&s, path, b"{\"a\":1}", "content-length: 7\r\n");
    let (status, _, v) = raw(&s.addr, head, b"{\"a\":1}", false).await;
    assert_eq!(status, 200, "{v}");
}
