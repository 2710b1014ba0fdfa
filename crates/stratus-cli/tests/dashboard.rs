//! The web dashboard end to end: a real headless Chromium signs in (a wrong secret
//! is refused), watches a function deployed with the CLI appear and its invocation
//! count rise, reads its log line, sees a failed async event and an SQS message
//! dead-lettered appear in the dead-letter panel (reading them consumes nothing),
//! and leaves a screenshot in `target/test-artifacts/dashboard.png`; and the session cookie's rules over real
//! HTTP: only with `X-Stratus-UI: 1`, only for the dashboard's reads, never forged,
//! expiring, dying with its key, its logout and the server's restart, the key's
//! policies applying, failed sign-ins slowed and then refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt as _, Full};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// A plain, unsigned HTTP request (as a browser sends it): status, headers, body.
async fn raw(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, http::HeaderMap, Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, h, v)
}

/// The admin key and secret a server wrote into its data dir.
fn admin(data_dir: &Path) -> (String, String) {
    let (c, _) = stratus_cli::signing::load_profile(&data_dir.join("credentials"), "default")
        .unwrap()
        .unwrap();
    (c.access_key_id, c.secret_access_key)
}

/// Signs in; answers the `stratus_session=…` pair and the whole `Set-Cookie`.
async fn login(base: &str, id: &str, secret: &str, seconds: Option<u64>) -> (String, String) {
    let mut body = json!({ "accessKeyId": id, "secretAccessKey": secret });
    if let Some(s) = seconds {
        body["durationSeconds"] = json!(s);
    }
    let (status, h, v) = raw(
        "POST",
        &format!("{base}/ui/login"),
        &[("x-stratus-ui", "1"), ("content-type", "application/json")],
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let set = h
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    let pair = set.split(';').next().unwrap().to_string();
    (pair, set)
}

async fn overview(base: &str, cookie: &str) -> (u16, Value) {
    let (s, _, v) = raw(
        "GET",
        &format!("{base}/stratus/v1/ui/overview"),
        &[("cookie", cookie), ("x-stratus-ui", "1")],
        "",
    )
    .await;
    (s, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_only_a_dashboard_read_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, &[]).await;
    let base = format!("http://{}", s.addr);
    let (id, secret) = admin(&data);

    // The page itself is open, and keeps to its own origin.
    let (status, h, page) = raw("GET", &format!("{base}/ui"), &[], "").await;
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("id=\"login-form\""));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let (status, h, _) = raw("GET", &format!("{base}/ui/assets/app.js"), &[], "").await;
    assert_eq!(status, 200);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));

    // Sign-in needs the dashboard's header.
    let creds = json!({ "accessKeyId": id, "secretAccessKey": secret }).to_string();
    let (status, _, v) = raw("POST", &format!("{base}/ui/login"), &[], &creds).await;
    assert_eq!(status, 403, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("X-Stratus-UI"),
        "{v}"
    );

    // A wrong secret: refused with a clear message, after a delay, no cookie.
    let t = Instant::now();
    let wrong = json!({ "accessKeyId": id, "secretAccessKey": "nope" }).to_string();
    let (status, h, v) = raw(
        "POST",
        &format!("{base}/ui/login"),
        &[("x-stratus-ui", "1")],
        &wrong,
    )
    .await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(
        v["message"],
        "The access key id or the secret access key is not correct."
    );
    assert!(t.elapsed() >= Duration::from_millis(400));
    assert!(h.get("set-cookie").is_none());

    let (admin_cookie, set) = login(&base, &id, &secret, None).await;
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let (status, v) = overview(&base, &admin_cookie).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["principal"]["user"], "admin");
    assert_eq!(v["principal"]["accessKeyId"], id.as_str());

    // Without the header (a cross-site form or link), or with another value: refused.
    for hdr in [None, Some("0"), Some("true")] {
        let mut headers = vec![("cookie", admin_cookie.as_str())];
        if let Some(hv) = hdr {
            headers.push(("x-stratus-ui", hv));
        }
        let (status, _, v) = raw(
            "GET",
            &format!("{base}/stratus/v1/ui/overview"),
            &headers,
            "",
        )
        .await;
        assert_eq!(status, 403, "{hdr:?}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("X-Stratus-UI: 1"),
            "{v}"
        );
    }
    // Only the dashboard's reads: not the management API, not a write.
    let cookie_and_header = [("cookie", admin_cookie.as_str()), ("x-stratus-ui", "1")];
    for (method, path, body) in [
        ("GET", "/2015-03-31/functions/", ""),
        ("POST", "/stratus/v1/keys", r#"{"UserName":"sneaky"}"#),
        ("DELETE", &format!("/stratus/v1/keys/{id}") as &str, ""),
    ] {
        let (status, _, v) = raw(method, &format!("{base}{path}"), &cookie_and_header, body).await;
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert_eq!(v["message"], "Missing Authentication Token", "{v}");
    }
    // The dashboard's other reads work with it.
    let (status, _, v) = raw(
        "GET",
        &format!("{base}/stratus/v1/async"),
        &cookie_and_header,
        "",
    )
    .await;
    assert_eq!(status, 200, "{v}");

    // Forged: an altered expiry, another key's id, a made-up value.
    let value = admin_cookie.trim_start_matches("stratus_session=");
    let mut fields: Vec<String> = value.split(':').map(str::to_string).collect();
    fields[2] = (fields[2].parse::<i64>().unwrap() + 86_400).to_string();
    let longer = format!("stratus_session={}", fields.join(":"));
    let viewer = s
        .api
        .call(
            "POST",
            "/stratus/v1/keys",
            &[],
            json!({
                "UserName": "viewer",
                "PolicyName": "dash",
                "PolicyDocument": json!({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "stratus:GetDashboard", "Resource": "*"}
                ]}).to_string(),
            })
            .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        viewer.status,
        201,
        "{}",
        String::from_utf8_lossy(&viewer.body)
    );
    let viewer = json_body(&viewer);
    let (vid, vsecret) = (
        viewer["AccessKey"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .to_string(),
        viewer["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let mut swapped = value.split(':').map(str::to_string).collect::<Vec<_>>();
    swapped[1] = vid.clone();
    let swapped = format!("stratus_session={}", swapped.join(":"));
    let made_up = format!(
        "stratus_session=v1:{id}:99999999999:{}:{}",
        "0".repeat(32),
        "ab".repeat(32)
    );
    for forged in [
        &longer,
        &swapped,
        &made_up,
        &"stratus_session=garbage".to_string(),
    ] {
        let (status, v) = overview(&base, forged).await;
        assert_eq!(status, 401, "{forged}: {v}");
    }

    // The session acts as its key: the viewer's policy allows the overview only.
    let (viewer_cookie, _) = login(&base, &vid, &vsecret, None).await;
    let (status, v) = overview(&base, &viewer_cookie).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["principal"]["user"], "viewer");
    let (status, _, v) = raw(
        "GET",
        &format!("{base}/stratus/v1/async"),
        &[("cookie", viewer_cookie.as_str()), ("x-stratus-ui", "1")],
        "",
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("stratus:ListAsyncEvents"),
        "{v}"
    );

    // It expires.
    let (short, set) = login(&base, &vid, &vsecret, Some(1)).await;
    assert!(set.contains("Max-Age=1"), "{set}");
    assert_eq!(overview(&base, &short).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, v) = overview(&base, &short).await;
    assert_eq!(status, 401, "{v}");
    assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");

    // It dies with its key.
    let r = s
        .api
        .call("DELETE", &format!("/stratus/v1/keys/{vid}"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let (status, v) = overview(&base, &viewer_cookie).await;
    assert_eq!(status, 401, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("no longer exists"),
        "{v}"
    );

    // Logout ends that session (not just the browser's copy).
    let (other, _) = login(&base, &id, &secret, None).await;
    let (status, h, _) = raw(
        "POST",
        &format!("{base}/ui/logout"),
        &[("cookie", other.as_str()), ("x-stratus-ui", "1")],
        "",
    )
    .await;
    assert_eq!(status, 204);
    assert!(h["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(overview(&base, &other).await.0, 401);
    assert_eq!(overview(&base, &admin_cookie).await.0, 200);

    // Guessing: after ten failures from one address it is refused, even the right
    // secret, until the window passes.
    for _ in 0..9 {
        let (status, _, _) = raw(
            "POST",
            &format!("{base}/ui/login"),
            &[("x-stratus-ui", "1")],
            &wrong,
        )
        .await;
        assert_eq!(status, 401);
    }
    let (status, h, v) = raw(
        "POST",
        &format!("{base}/ui/login"),
        &[("x-stratus-ui", "1")],
        &creds,
    )
    .await;
    assert_eq!(status, 429, "{v}");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("Too many failed sign-ins"));
    assert!(h.contains_key("retry-after"));

    // A restart makes every session invalid (the signing key lived in memory).
    let _ = s.terminate().await;
    let s = Server::start(&data, &[]).await;
    let base = format!("http://{}", s.addr);
    let (status, v) = overview(&base, &admin_cookie).await;
    assert_eq!(status, 401, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_auth_the_dashboard_needs_no_sign_in() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &["--no-auth"]).await;
    let base = format!("http://{}", s.addr);
    let (status, _, v) = raw(
        "GET",
        &format!("{base}/stratus/v1/ui/overview"),
        &[("x-stratus-ui", "1")],
        "",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["principal"]["user"], "anonymous");
    assert!(v["principal"]["accessKeyId"].is_null());
    let (status, _, v) = raw(
        "POST",
        &format!("{base}/ui/login"),
        &[("x-stratus-ui", "1")],
        "{}",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["auth"], false);
}

/// The system's Chromium, or a failure saying how to install it.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATUS_CHROMIUM") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        for name in ["chromium", "chromium-browser"] {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "the dashboard test needs Chromium and none is on PATH: install Debian's `chromium` \
         (`apt-get install chromium`; scripts/test does it) or set STRATUS_CHROMIUM to its executable"
    );
}

/// The `node_modules` holding puppeteer-core (installed by scripts/test), or a
/// failure saying how to install it.
fn puppeteer_dir() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps/puppeteer/node_modules");
    assert!(
        dir.join("puppeteer-core/package.json").is_file(),
        "the dashboard test drives Chromium with puppeteer-core, not found in {}: run scripts/test \
         (it installs it), or: mkdir -p target/test-deps/puppeteer && cd target/test-deps/puppeteer && \
         PUPPETEER_SKIP_DOWNLOAD=1 npm install puppeteer-core@24.43.1",
        dir.display()
    );
    dir
}

const MARKER: &str = "dashboard-marker";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_and_watches_a_function_deploy_and_run() {
    let (chromium, puppeteer) = (chromium(), puppeteer_dir());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, &[]).await;
    let base = format!("http://{}", s.addr);
    let (id, secret) = admin(&data);
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);

    let svc = tmp.path().join("dash");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(
        svc.join("serverless.yml"),
        "service: dash\nframeworkVersion: '3'\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  hello:\n    handler: handler.hello\n    provisionedConcurrency: 1\n    concurrencyAutoscaling:\n      enabled: true\n      minimum: 1\n      maximum: 3\n  fail:\n    handler: handler.fail\n    maximumRetryAttempts: 0\n",
    )
    .unwrap();
    std::fs::write(
        svc.join("handler.js"),
        format!("module.exports.hello = async (e) => {{ console.log('{MARKER}', e.n); return {{ ok: true }}; }};\nmodule.exports.fail = async () => {{ throw new Error('always fails'); }};\n"),
    )
    .unwrap();

    let mut node = tokio::process::Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard/drive.mjs"))
        .env("STRATUS_URL", &base)
        .env("STRATUS_KEY", &id)
        .env("STRATUS_SECRET", &secret)
        .env("CHROMIUM", &chromium)
        .env("PUPPETEER_DIR", &puppeteer)
        .env("SCREENSHOT", &shot)
        .env("MARKER", MARKER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    let mut stdin = node.stdin.take().unwrap();
    let mut out = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut step = async |name: &str| -> Value {
        let line = tokio::time::timeout(Duration::from_secs(120), out.next_line())
            .await
            .unwrap_or_else(|_| panic!("the browser never reached step {name}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the driver ended before step {name}"));
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("driver said: {line}"));
        assert!(
            v.get("error").is_none(),
            "the browser failed before {name}: {v:#}"
        );
        assert_eq!(v["step"], name, "{v:#}");
        v
    };

    let v = step("signed-in").await;
    assert_eq!(
        v["refused"], "The access key id or the secret access key is not correct.",
        "{v}"
    );
    assert_eq!(v["dashboardAfterWrong"], false, "{v}");
    assert!(v["whoami"].as_str().unwrap().contains(&id), "{v}");
    assert_eq!(v["httpOnly"], true, "{v}");
    assert_eq!(v["sameSite"], "Strict", "{v}");
    assert_eq!(v["scriptSeesCookie"], false, "{v}");

    stratus_ok(&svc, &base, &["deploy"]).await;
    stdin.write_all(b"deployed dash-dev-hello\n").await.unwrap();
    let v = step("seen").await;
    assert_eq!(v["invocations"], 0, "{v}");

    for n in 0..5 {
        stratus_ok(
            &svc,
            &base,
            &["invoke", "-f", "hello", "--data", &format!("{{\"n\":{n}}}")],
        )
        .await;
    }
    stdin.write_all(b"invoked 5\n").await.unwrap();
    let v = step("checked").await;
    assert_eq!(v["invocations"], 5, "{v}");
    assert!(
        v["logLines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains(MARKER)),
        "{v:#}"
    );
    assert!(
        v["detailTitle"]
            .as_str()
            .unwrap()
            .starts_with("dash-dev-hello"),
        "{v}"
    );
    let charts = v["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 6, "{v}");
    for c in charts {
        // Drawn from the server's per-minute series: the five invocations counted.
        assert_eq!(c["drawn"], true, "{c}");
        assert_eq!(c["note"], Value::Null, "{c}");
        if c["metric"] == "Invocations" {
            assert_eq!(c["total"], 5, "{c}");
        }
    }
    // The scalable target deployed from `concurrencyAutoscaling`, with its bounds.
    let autoscaling = v["autoscaling"].as_str().unwrap();
    assert!(
        autoscaling.contains("dash-dev-hello:provisioned") && autoscaling.contains("1–3"),
        "{autoscaling}"
    );

    // An async event the function fails (no retries) and an SQS message received
    // more often than its queue's redrive policy allows: both dead letters.
    let payload = r#"{"order":"async-7"}"#;
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/dash-dev-fail/invocations",
            &[("x-amz-invocation-type", "Event")],
            payload,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    sqs(&s, "CreateQueue", json!({"QueueName": "dash-dlq"})).await;
    let redrive = json!({
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dash-dlq",
        "maxReceiveCount": "1",
    })
    .to_string();
    let url = sqs(
        &s,
        "CreateQueue",
        json!({"QueueName": "dash-jobs", "Attributes": {"RedrivePolicy": redrive}}),
    )
    .await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let body = r#"{"order":"sqs-42"}"#;
    sqs(
        &s,
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": body,
               "MessageAttributes": {"origin": {"DataType": "String", "StringValue": "checkout"}}}),
    )
    .await;
    let receive = json!({"QueueUrl": url, "VisibilityTimeout": 0, "MaxNumberOfMessages": 10});
    let got = sqs(&s, "ReceiveMessage", receive.clone()).await;
    assert_eq!(got["Messages"].as_array().map(Vec::len), Some(1), "{got}");
    // Received once already: this receive moves it to dash-dlq instead.
    let got = sqs(&s, "ReceiveMessage", receive).await;
    assert!(
        got["Messages"].as_array().is_none_or(Vec::is_empty),
        "{got}"
    );
    let dead =
        json!({"function": "dash-dev-fail", "payload": payload, "queue": "dash-dlq", "body": body});
    stdin
        .write_all(format!("dead-lettered {dead}\n").as_bytes())
        .await
        .unwrap();
    let v = step("done").await;
    let async_dl = v["asyncDeadLetters"].as_array().unwrap();
    assert_eq!(async_dl.len(), 1, "{v:#}");
    let text = async_dl[0].as_str().unwrap();
    assert!(
        text.contains("RetriesExhausted")
            && text.contains(" · 1 attempt · ")
            && text.contains(payload),
        "{text}"
    );
    let queue_text = v["queueDeadLetters"].as_str().unwrap();
    for want in [
        "dash-dlq",
        "dead-letter queue of dash-jobs",
        "1 message",
        "from dash-jobs",
        "origin=checkout",
        body,
    ] {
        assert!(queue_text.contains(want), "{want} in {queue_text}");
    }
    // One failed async event and one message in a dead-letter queue.
    assert_eq!(v["deadLetterTile"], "2", "{v:#}");
    assert_eq!(v["pageErrors"], json!([]), "{v:#}");
    // The page read the dead-letter queue many times; none of it was a receive.
    let dlq = sqs(&s, "GetQueueUrl", json!({"QueueName": "dash-dlq"})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let got = sqs(
        &s,
        "ReceiveMessage",
        json!({"QueueUrl": dlq, "MessageSystemAttributeNames": ["All"]}),
    )
    .await;
    let m = &got["Messages"][0];
    assert_eq!(m["Body"], body, "{got}");
    assert_eq!(m["Attributes"]["ApproximateReceiveCount"], "1", "{got}");
    let status = node.wait().await.unwrap();
    assert!(status.success());
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{}",
        shot.display()
    );
}

const OBS_SERVICE: &str = "service: obs
provider:
  name: aws
  runtime: nodejs20.x
functions:
  api:
    handler: h.api
    provisionedConcurrency: 1
    reservedConcurrency: 5
    events:
      - httpApi: 'GET /echo'
  fail:
    handler: h.fail
";

const OBS_HANDLERS: &str = r#"
exports.api = async (event) => ({ cookies: event.cookies || [], header: event.headers.cookie || null });
exports.fail = async () => { throw new Error('always fails'); };
"#;

async fn sqs(s: &Server, action: &str, body: Value) -> Value {
    let target = format!("AmazonSQS.{action}");
    let r = s
        .api
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
    json_body(&r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_concurrency_queues_and_dead_letters_and_the_gateway_never_sees_the_session(
) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, &["--gateway", "127.0.0.1:0"]).await;
    let base = format!("http://{}", s.addr);
    let gw = s.gateway.clone().expect("gateway url");
    let (id, secret) = admin(&data);
    let dir = tmp.path().join("obs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("serverless.yml"), OBS_SERVICE).unwrap();
    std::fs::write(dir.join("h.js"), OBS_HANDLERS).unwrap();
    stratus_ok(&dir, &base, &["deploy"]).await;
    // Deployments put provisioned concurrency on the version the `provisioned` alias
    // points to.
    s.wait_ready("obs-dev-api", "1").await;

    // An event that fails once, with no retries: a dead letter.
    let r = s
        .api
        .call(
            "PUT",
            "/2019-09-25/functions/obs-dev-fail/event-invoke-config",
            &[],
            r#"{"MaximumRetryAttempts":0}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/obs-dev-fail/invocations",
            &[("x-amz-invocation-type", "Event")],
            r#"{"lost":true}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    // A queue with a dead-letter queue, two messages waiting.
    sqs(&s, "CreateQueue", json!({"QueueName": "work-dlq"})).await;
    let redrive = json!({
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:work-dlq",
        "maxReceiveCount": "3",
    })
    .to_string();
    let url = sqs(
        &s,
        "CreateQueue",
        json!({"QueueName": "work", "Attributes": {"RedrivePolicy": redrive}}),
    )
    .await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    for n in 0..2 {
        sqs(
            &s,
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": format!("m{n}")}),
        )
        .await;
    }

    let (cookie, _) = login(&base, &id, &secret, None).await;
    // Through the gateway (same host, another port: the browser sends the cookie
    // there too) the function gets the page's other cookies, never the session.
    let (status, _, v) = raw(
        "GET",
        &format!("{gw}/echo"),
        &[("cookie", &format!("theme=dark; {cookie}; lang=en"))],
        "",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["cookies"], json!(["theme=dark", "lang=en"]), "{v}");
    assert!(!v.to_string().contains("stratus_session"), "{v}");

    let mut o = Value::Null;
    for _ in 0..200 {
        let (status, v) = overview(&base, &cookie).await;
        assert_eq!(status, 200, "{v}");
        o = v;
        let fail = o["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "obs-dev-fail")
            .cloned()
            .unwrap();
        if fail["deadLetters"] == 1 && o["asyncPending"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let f = |name: &str| {
        o["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {o:#}"))
    };
    let api = f("obs-dev-api");
    assert_eq!(api["reserved"], 5, "{api:#}");
    assert_eq!(api["provisionedRequested"], 1, "{api:#}");
    assert_eq!(api["provisionedAvailable"], 1, "{api:#}");
    assert_eq!(
        api["provisioned"],
        json!([{"qualifier": "1", "requested": 1, "available": 1, "status": "READY"}])
    );
    assert_eq!(
        api["aliases"],
        json!([{"name": "provisioned", "functionVersion": "1", "additionalVersions": {}}])
    );
    let versions: Vec<&str> = api["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["$LATEST", "1"]);
    // The provisioned environment lives on version 1.
    assert!(
        api["versions"][1]["environments"]["total"]
            .as_u64()
            .unwrap()
            >= 1,
        "{api:#}"
    );
    assert_eq!(api["invocations"], 1, "{api:#}");
    assert_eq!(api["concurrent"], 0);
    let fail = f("obs-dev-fail");
    assert_eq!(fail["deadLetters"], 1, "{fail:#}");
    assert_eq!(fail["errors"], 1, "{fail:#}");
    assert_eq!(fail["reserved"], Value::Null);
    assert_eq!(o["asyncPending"], 0);
    assert_eq!(o["account"]["reserved"], 5);
    assert_eq!(o["account"]["concurrencyLimit"], 1000);
    assert_eq!(
        o["queues"],
        json!([
            {"name": "work", "visible": 2, "inFlight": 0, "delayed": 0, "deadLetterFor": []},
            {"name": "work-dlq", "visible": 0, "inFlight": 0, "delayed": 0, "deadLetterFor": ["work"]},
        ])
    );

    // The dead letter's contents, read twice: reading does not consume it.
    for _ in 0..2 {
        let (status, _, v) = raw(
            "GET",
            &format!("{base}/stratus/v1/dead-letters?function=obs-dev-fail&limit=50"),
            &[("cookie", cookie.as_str()), ("x-stratus-ui", "1")],
            "",
        )
        .await;
        assert_eq!(status, 200, "{v}");
        let dl = v["deadLetters"].as_array().unwrap();
        assert_eq!(dl.len(), 1, "{v}");
        assert_eq!(dl[0]["condition"], "RetriesExhausted");
        assert_eq!(dl[0]["payload"], r#"{"lost":true}"#);
    }

    // An SQS dead-letter queue's messages, through the same endpoint. Empty first.
    let queue_dl = async |query: &str| {
        let (status, _, v) = raw(
            "GET",
            &format!("{base}/stratus/v1/dead-letters?{query}"),
            &[("cookie", cookie.as_str()), ("x-stratus-ui", "1")],
            "",
        )
        .await;
        (status, v)
    };
    let (status, v) = queue_dl("queue=work-dlq").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["deadLetterFor"], json!(["work"]), "{v}");
    assert_eq!(
        v["queueArn"], "arn:aws:sqs:us-east-1:000000000000:work-dlq",
        "{v}"
    );
    assert_eq!(v["messages"], json!([]), "{v}");
    // Three receives use up `maxReceiveCount`; the fourth moves both messages.
    let receive = json!({"QueueUrl": url, "VisibilityTimeout": 0, "MaxNumberOfMessages": 10});
    for _ in 0..3 {
        let got = sqs(&s, "ReceiveMessage", receive.clone()).await;
        assert_eq!(got["Messages"].as_array().map(Vec::len), Some(2), "{got}");
    }
    let got = sqs(&s, "ReceiveMessage", receive).await;
    assert!(
        got["Messages"].as_array().is_none_or(Vec::is_empty),
        "{got}"
    );
    // Read twice: a read receives nothing, so nothing changes.
    let mut first = Value::Null;
    for n in 0..2 {
        let (status, v) = queue_dl("queue=work-dlq&limit=1").await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            (v["visible"].as_u64(), v["inFlight"].as_u64()),
            (Some(2), Some(0)),
            "{v}"
        );
        let m = &v["messages"];
        assert_eq!(m.as_array().unwrap().len(), 1, "limit=1: {v}");
        assert_eq!(m[0]["body"], "m0", "{v}");
        assert_eq!(m[0]["state"], "visible", "{v}");
        assert_eq!(m[0]["receiveCount"], 0, "{v}");
        assert_eq!(
            m[0]["deadLetterQueueSourceArn"], "arn:aws:sqs:us-east-1:000000000000:work",
            "{v}"
        );
        if n == 0 {
            first = v;
        } else {
            assert_eq!(v, first);
        }
    }
    let o = overview(&base, &cookie).await.1;
    assert_eq!(
        o["queues"][1],
        json!({"name": "work-dlq", "visible": 2, "inFlight": 0, "delayed": 0, "deadLetterFor": ["work"]})
    );
    // Not a dead-letter queue, no such queue, both kinds at once, a bad limit.
    let (status, v) = queue_dl("queue=work").await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("work is not a dead-letter queue"),
        "{v}"
    );
    let (status, v) = queue_dl("queue=nope").await;
    assert_eq!(status, 404, "{v}");
    assert!(v["message"].as_str().unwrap().contains("nope"), "{v}");
    let (status, v) = queue_dl("queue=work-dlq&function=obs-dev-fail").await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = queue_dl("queue=work-dlq&limit=101").await;
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("limit"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_session_cookie_is_secure() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, &["--tls-self-signed"]).await;
    // The harness strips only `http://` from the announced URL.
    let url = s.addr.clone();
    assert!(url.starts_with("https://"), "{url}");
    let api = Api::with_parts(
        &url,
        // `--tls-self-signed` keeps its CA in `{data-dir}/tls/ca.pem`.
        &stratus_cli::transport::Transport::new(Some(&data.join("tls/ca.pem")), false).unwrap(),
        stratus_cli::signing::Signer::unsigned(),
    );
    let (id, secret) = admin(&data);
    let r = api
        .call(
            "POST",
            "/ui/login",
            &[("x-stratus-ui", "1")],
            json!({ "accessKeyId": id, "secretAccessKey": secret }).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let set = r.header("set-cookie").unwrap();
    assert!(set.ends_with("; Secure"), "{set}");
    let cookie = set.split(';').next().unwrap();
    let r = api
        .call(
            "GET",
            "/stratus/v1/ui/overview",
            &[("cookie", cookie), ("x-stratus-ui", "1")],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}
