//! Encryption in transit (issue 8, part 4), end to end with the real binary and real
//! clients: `--tls-self-signed` and a given certificate and key; the stratus CLI
//! with `--ca-bundle` and `AWS_CA_BUNDLE`; boto3 with `verify=` and the AWS CLI with
//! `--ca-bundle`; clients without the CA refused; TLS 1.2 refused unless
//! `--tls-min-version 1.2`; plain HTTP to the TLS port answered with a clear 400;
//! functions reaching the API through the plain loopback endpoint; the CLI refusing
//! plain HTTP beyond loopback without `--insecure`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use stratus_cli::transport::Transport;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// A `stratus server` started with TLS flags.
struct TlsServer {
    child: Child,
    /// `https://127.0.0.1:PORT`.
    url: String,
    /// The gateway's URL, when asked for.
    gateway: Option<String>,
    /// The CA the server printed (self-signed only).
    ca: Option<PathBuf>,
    /// The data dir (its `credentials` file holds the admin key requests sign with).
    data_dir: PathBuf,
}

impl TlsServer {
    async fn start(data_dir: &Path, extra: &[&str]) -> TlsServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stratus"))
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--shutdown-grace", "5"])
            .args(extra)
            .env_remove("AWS_CA_BUNDLE")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start stratus server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        async fn next(
            lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
        ) -> String {
            tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .expect("server printed in time")
                .unwrap()
                .expect("a line")
        }
        let url = next(&mut lines)
            .await
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string();
        let gateway = if extra.iter().any(|a| a.starts_with("--gateway")) {
            Some(
                next(&mut lines)
                    .await
                    .rsplit(' ')
                    .next()
                    .unwrap()
                    .to_string(),
            )
        } else {
            None
        };
        let ca = if extra.contains(&"--tls-self-signed") {
            let line = next(&mut lines).await;
            let path = line
                .strip_prefix("TLS certificate authority: ")
                .and_then(|r| r.split(" (").next())
                .unwrap_or_else(|| panic!("the CA line: {line}"));
            Some(PathBuf::from(path))
        } else {
            None
        };
        TlsServer {
            child,
            url,
            gateway,
            ca,
            data_dir: data_dir.to_path_buf(),
        }
    }

    fn api(&self, ca: &Path) -> Api {
        Api::with_parts(
            &self.url,
            &Transport::new(Some(ca), false).unwrap(),
            signer_for(&self.data_dir),
        )
    }

    /// The admin key's id and secret, from the server's credentials file.
    fn admin_key(&self) -> (String, String) {
        let (c, _) =
            stratus_cli::signing::load_profile(&self.data_dir.join("credentials"), "default")
                .unwrap()
                .unwrap();
        (c.access_key_id, c.secret_access_key)
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    async fn terminate(mut self) {
        let pid = self.child.id().unwrap() as i32;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("server exited after SIGTERM")
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

/// Runs python3 with `code` and arguments; returns (success, stdout + stderr).
async fn python(code: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .output()
        .await
        .expect("run python3");
    (out.status.success(), output_text(&out))
}

/// Connects with Python's ssl module allowing at most TLS 1.2.
const TLS12_CLIENT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            t.sendall(b"GET /stratus/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            print("accepted", t.version(), t.recv(100).split(b"\r\n")[0].decode())
except ssl.SSLError as e:
    print("refused", e)
"#;

/// Sends `request` over plain TCP and reads until the server closes.
async fn raw_exchange(port: u16, request: &[u8]) -> String {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .expect("the server answered and closed in time")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_serves_https_and_is_reused_across_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = TlsServer::start(&data, &["--tls-self-signed", "--gateway", "127.0.0.1:0"]).await;
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    assert!(
        s.gateway.as_deref().unwrap().starts_with("https://"),
        "{:?}",
        s.gateway
    );
    let ca = s.ca.clone().unwrap();
    assert_eq!(ca, data.join("tls/ca.pem"));
    use std::os::unix::fs::PermissionsExt as _;
    for key in ["tls/key.pem", "tls/ca-key.pem"] {
        let mode = std::fs::metadata(data.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }

    // Trusting the CA: served. The gateway shares the certificate.
    let health = s
        .api(&ca)
        .call("GET", "/stratus/v1/health", &[], "")
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    let gw = Api::with_transport(
        s.gateway.as_deref().unwrap(),
        &Transport::new(Some(&ca), false).unwrap(),
    );
    assert_eq!(
        gw.call("GET", "/nothing", &[], "").await.unwrap().status,
        404
    );

    // The system's roots do not know this CA: refused.
    let e = Api::with_transport(&s.url, &Transport::new(None, false).unwrap())
        .call("GET", "/stratus/v1/health", &[], "")
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("certificate"), "{e:#}");

    // Plain HTTP to the TLS port: a clear 400, then the connection closes.
    let reply = raw_exchange(
        s.port(),
        b"GET /stratus/v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("use an https:// URL"), "{reply}");

    // A client that speaks at most TLS 1.2 is refused by default.
    let port = s.port().to_string();
    let (_, out) = python(TLS12_CLIENT, &[&port, ca.to_str().unwrap()]).await;
    assert!(out.starts_with("refused"), "{out}");

    let ca_bytes = std::fs::read(&ca).unwrap();
    let cert_bytes = std::fs::read(data.join("tls/cert.pem")).unwrap();
    s.terminate().await;

    // A later start reuses the CA and the certificate; with TLS 1.2 allowed, the
    // same client is served.
    let s = TlsServer::start(&data, &["--tls-self-signed", "--tls-min-version", "1.2"]).await;
    assert_eq!(std::fs::read(&ca).unwrap(), ca_bytes);
    assert_eq!(
        std::fs::read(data.join("tls/cert.pem")).unwrap(),
        cert_bytes
    );
    let port = s.port().to_string();
    let (_, out) = python(TLS12_CLIENT, &[&port, ca.to_str().unwrap()]).await;
    assert!(out.starts_with("accepted TLSv1.2 HTTP/1.1 200"), "{out}");
    // TLS 1.3 clients still are.
    let health = s
        .api(&ca)
        .call("GET", "/stratus/v1/health", &[], "")
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    s.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_certificate_and_key_are_served_and_bad_ones_named() {
    let dir = tempfile::tempdir().unwrap();
    // A certificate and key made elsewhere: here by another server's
    // --tls-self-signed, handed over as plain PEM files.
    let issuer = TlsServer::start(&dir.path().join("issuer"), &["--tls-self-signed"]).await;
    let ca = issuer.ca.clone().unwrap();
    issuer.terminate().await;
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let (cert, key) = (pki.join("server.crt"), pki.join("server.key"));
    std::fs::copy(dir.path().join("issuer/tls/cert.pem"), &cert).unwrap();
    std::fs::copy(dir.path().join("issuer/tls/key.pem"), &key).unwrap();

    let s = TlsServer::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    assert!(s.url.starts_with("https://"), "{}", s.url);
    assert!(!dir.path().join("data/tls").exists(), "nothing self-signed");
    let health = s
        .api(&ca)
        .call("GET", "/stratus/v1/health", &[], "")
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    s.terminate().await;

    // A key that is not a key: the server does not start, and says which file.
    let out = Command::new(env!("CARGO_BIN_EXE_stratus"))
        .arg("server")
        .arg("--data-dir")
        .arg(dir.path().join("data2"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&ca)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let text = output_text(&out);
    assert!(
        text.contains("private key") && text.contains("ca.pem"),
        "{text}"
    );
    // --tls-cert alone is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["server", "--tls-cert"])
        .arg(&cert)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("--tls-key"),
        "{}",
        output_text(&out)
    );
}

/// `stratus ARGS` in `dir` against `endpoint`, with extra environment.
async fn stratus(
    dir: &Path,
    endpoint: &str,
    args: &[&str],
    env: &[(&str, &Path)],
) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stratus"));
    cmd.args(args)
        .current_dir(dir)
        .env("STRATUS_ENDPOINT", endpoint)
        .env("NO_COLOR", "1")
        .env_remove("AWS_CA_BUNDLE")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_deploys_and_invokes_over_tls_with_a_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let s = TlsServer::start(&dir.path().join("data"), &["--tls-self-signed"]).await;
    let ca = s.ca.clone().unwrap();
    let svc = dir.path().join("hello-python");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello-python"),
        &svc,
    );

    // --ca-bundle.
    let ca_arg = ca.to_str().unwrap();
    let creds = s.data_dir.join("credentials");
    let signed: &[(&str, &Path)] = &[("AWS_SHARED_CREDENTIALS_FILE", &creds)];
    let out = stratus(&svc, &s.url, &["deploy", "--ca-bundle", ca_arg], signed).await;
    assert!(out.status.success(), "{}", output_text(&out));
    // AWS_CA_BUNDLE, as the AWS CLI reads it.
    let out = stratus(
        &svc,
        &s.url,
        &["invoke", "-f", "hello", "--data", r#"{"name":"tls"}"#],
        &[
            ("AWS_CA_BUNDLE", &ca),
            ("AWS_SHARED_CREDENTIALS_FILE", &creds),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Hello, tls!"),
        "{}",
        output_text(&out)
    );

    // Without the CA the certificate is refused, and the error says how to fix it.
    let out = stratus(&svc, &s.url, &["invoke", "-f", "hello"], signed).await;
    assert!(!out.status.success());
    let text = output_text(&out);
    assert!(
        text.contains("certificate") && text.contains("--ca-bundle"),
        "{text}"
    );
    // A CA bundle that is not one is named.
    let out = stratus(
        &svc,
        &s.url,
        &[
            "invoke",
            "-f",
            "hello",
            "--ca-bundle",
            "/nonexistent/ca.pem",
        ],
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("/nonexistent/ca.pem"),
        "{}",
        output_text(&out)
    );
    s.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_aws_cli_verify_the_server_with_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let s = TlsServer::start(&dir.path().join("data"), &["--tls-self-signed"]).await;
    let ca = s.ca.clone().unwrap();
    let api = s.api(&ca);
    let zip = fixture_zip("python");
    use base64::Engine as _;
    let body = json!({
        "FunctionName": "tlsfn", "Runtime": "python3.11", "Handler": "app.handler",
        "Role": "arn:aws:iam::000000000000:role/test",
        "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
    });
    let r = api
        .call("POST", "/2015-03-31/functions", &[], body.to_string())
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    let code = r#"
import sys, json, boto3, botocore.exceptions
url, ca, key, secret = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id=key, aws_secret_access_key=secret)
c = boto3.client("lambda", verify=ca, **kw)
r = c.invoke(FunctionName="tlsfn", Payload=b'{"from":"boto3"}')
print("invoked", r["StatusCode"], json.loads(r["Payload"].read())["functionName"])
try:
    boto3.client("lambda", **kw).list_functions()
    print("trusted without the CA")
except botocore.exceptions.SSLError as e:
    print("refused without the CA")
"#;
    let (key, secret) = s.admin_key();
    let (ok, out) = python(code, &[&s.url, ca.to_str().unwrap(), &key, &secret]).await;
    assert!(ok, "{out}");
    assert!(out.contains("invoked 200 tlsfn"), "{out}");
    assert!(out.contains("refused without the CA"), "{out}");

    let aws = |ca: Option<&Path>| {
        let mut cmd = Command::new("aws");
        cmd.args(["lambda", "list-functions", "--endpoint-url", &s.url])
            .args(["--region", "us-east-1", "--output", "json"])
            .env("AWS_ACCESS_KEY_ID", &key)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env_remove("AWS_CA_BUNDLE");
        if let Some(ca) = ca {
            cmd.arg("--ca-bundle").arg(ca);
        }
        cmd.output()
    };
    let out = aws(Some(&ca)).await.expect("run the AWS CLI");
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("tlsfn"));
    let out = aws(None).await.unwrap();
    assert!(!out.status.success());
    assert!(
        output_text(&out).to_lowercase().contains("ssl"),
        "{}",
        output_text(&out)
    );
    s.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_reach_the_api_over_plain_loopback_while_clients_use_tls() {
    let dir = tempfile::tempdir().unwrap();
    let s = TlsServer::start(&dir.path().join("data"), &["--tls-self-signed"]).await;
    let ca = s.ca.clone().unwrap();
    let api = s.api(&ca);
    let handler = br#"
import json, os, urllib.error, urllib.request
def handler(event, context):
    # Unsigned on purpose: the server answers (its authentication refuses it), which
    # shows the function reached the API over the plain loopback endpoint.
    url = os.environ["AWS_ENDPOINT_URL"]
    try:
        with urllib.request.urlopen(url + "/2015-03-31/functions", timeout=10) as r:
            return {"endpoint": url, "status": r.status}
    except urllib.error.HTTPError as e:
        return {"endpoint": url, "status": e.code, "body": json.loads(e.read())}
"#;
    let zip = raw_zip(&[("app.py", handler)]);
    use base64::Engine as _;
    let body = json!({
        "FunctionName": "caller", "Runtime": "python3.11", "Handler": "app.handler",
        "Role": "arn:aws:iam::000000000000:role/test",
        "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
    });
    let r = api
        .call("POST", "/2015-03-31/functions", &[], body.to_string())
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = api.invoke("caller", "{}").await.unwrap();
    assert_eq!(r.status, 200);
    let v = json_body(&r);
    let endpoint = v["endpoint"].as_str().unwrap_or_default();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{v}");
    assert_ne!(endpoint, s.url.replace("https", "http"), "its own listener");
    assert_eq!(v["status"], 403, "{v}");
    assert_eq!(v["body"]["message"], "Missing Authentication Token", "{v}");
    s.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refuses_plain_http_beyond_loopback_without_insecure() {
    let dir = tempfile::tempdir().unwrap();
    // Refused before any connection is attempted (no traffic leaves the machine).
    for args in [
        vec!["invoke", "-f", "hello"],
        vec!["queue", "list"],
        vec!["logs", "-f", "hello"],
    ] {
        let started = Instant::now();
        let out = stratus(dir.path(), "http://10.1.2.3:1", &args, &[]).await;
        assert!(!out.status.success(), "{args:?}");
        let text = output_text(&out);
        assert!(
            text.contains("refusing plain HTTP to 10.1.2.3")
                && text.contains("not a loopback address")
                && text.contains("--insecure"),
            "{args:?}: {text}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // Loopback is fine without --insecure (a refused connection, not a refusal).
    let out = stratus(dir.path(), "http://127.0.0.1:1", &["queue", "list"], &[]).await;
    assert!(!out.status.success());
    assert!(
        !output_text(&out).contains("refusing plain HTTP"),
        "{}",
        output_text(&out)
    );
}
