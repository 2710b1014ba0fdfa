//! Observability end to end: the CloudWatch Logs read API through the real boto3
//! `logs` client, the AWS CLI v1 and `aws logs tail --follow` of the AWS CLI v2,
//! and the denial shape of that API.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_reads_logs_through_the_cloudwatch_logs_api() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    run_sdk_script(&s, "boto3_logs.py", "boto3 logs: all checks passed").await;
}

/// Runs `aws logs ARGS` against `s`, returning its JSON output.
async fn aws_logs(s: &Server, args: &[&str]) -> Value {
    let out = tokio::process::Command::new("aws")
        .arg("logs")
        .args(args)
        .args([
            "--endpoint-url",
            &format!("http://{}", s.addr),
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            s.data_dir.join("credentials"),
        )
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .await
        .expect("run the AWS CLI (installed by scripts/test)");
    assert!(
        out.status.success(),
        "aws logs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_reads_logs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    s.create_ok(
        "clilogs",
        "python3.11",
        "app.handler",
        &fixture_zip("python"),
        json!({}),
    )
    .await;
    for word in ["first", "second"] {
        let r = s
            .invoke("clilogs", &json!({ "word": word }).to_string())
            .await;
        assert_eq!(r.status, 200);
    }
    s.wait_logs("clilogs", "REPORT", 2).await;
    let groups = aws_logs(&s, &["describe-log-groups"]).await;
    assert_eq!(
        groups["logGroups"][0]["logGroupName"],
        "/aws/lambda/clilogs"
    );
    // The CLI pages through every result itself (here one event per page).
    let found = aws_logs(
        &s,
        &[
            "filter-log-events",
            "--log-group-name",
            "/aws/lambda/clilogs",
            "--filter-pattern",
            "\"hello from python\" -first",
            "--page-size",
            "1",
        ],
    )
    .await;
    let msgs: Vec<&str> = found["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].contains("'second'"), "{msgs:?}");
    let streams = aws_logs(
        &s,
        &[
            "describe-log-streams",
            "--log-group-name",
            "/aws/lambda/clilogs",
        ],
    )
    .await;
    let stream = streams["logStreams"][0]["logStreamName"].as_str().unwrap();
    let events = aws_logs(
        &s,
        &[
            "get-log-events",
            "--log-group-name",
            "/aws/lambda/clilogs",
            "--log-stream-name",
            stream,
            "--start-from-head",
        ],
    )
    .await;
    let all: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(all[0].starts_with("START RequestId:"), "{all:?}");
    let all: Vec<String> = all.iter().map(|m| m.to_string()).collect();
    assert_eq!(count(&all, "REPORT RequestId:"), 2, "{all:?}");
}

/// AWS CLI v2 (Debian's `awscli` package): `aws logs tail` exists only in v2, while
/// the `aws` first on PATH is v1 from PyPI, which the other tests use. It runs by its
/// absolute path on Debian's python3 with only Debian's packages importable (`-S`
/// and `PYTHONPATH`), so an `awscli` or `botocore` that pip put in
/// /usr/local/lib/python3/dist-packages cannot shadow its own.
const AWS_V2: &str = "/usr/bin/aws";

fn aws_v2(s: &Server) -> tokio::process::Command {
    assert!(
        std::path::Path::new(AWS_V2).is_file()
            && std::path::Path::new("/usr/bin/python3").is_file(),
        "`aws logs tail` needs AWS CLI v2 at {AWS_V2}, not found: `apt-get install awscli` \
         (Debian 12's is v2; scripts/test installs it)"
    );
    let mut c = tokio::process::Command::new("/usr/bin/python3");
    c.args(["-S", AWS_V2])
        .env("PYTHONPATH", "/usr/lib/python3/dist-packages")
        // Each line as the CLI prints it, not when a pipe buffer fills.
        .env("PYTHONUNBUFFERED", "1")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            s.data_dir.join("credentials"),
        )
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_PAGER", "")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("PYTHONHOME")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    c
}

/// A running `aws logs tail --follow`, its output lines collected as they come.
struct Tail {
    child: tokio::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    what: String,
}

impl Tail {
    fn spawn(s: &Server, group: &str, args: &[&str]) -> Tail {
        let mut c = aws_v2(s);
        c.args(["logs", "tail", group, "--follow", "--since", "5m"])
            .args(args)
            .args([
                "--endpoint-url",
                &format!("http://{}", s.addr),
                "--region",
                "us-east-1",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().expect("run /usr/bin/python3 /usr/bin/aws");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt as _;
            let mut r = tokio::io::BufReader::new(out).lines();
            while let Ok(Some(l)) = r.next_line().await {
                sink.lock().unwrap().push(l);
            }
        });
        Tail {
            child,
            lines,
            what: format!("aws logs tail {group} --follow {}", args.join(" ")),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits (up to a minute: the CLI polls every 5 s) until `done` holds for the
    /// lines printed so far; fails if the CLI exits or the time runs out.
    async fn wait_for(&mut self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let lines = self.lines();
            if done(&lines) {
                return lines;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use tokio::io::AsyncReadExt as _;
                    let _ = e.read_to_string(&mut err).await;
                }
                panic!(
                    "{} exited ({status}) before {what}:\n{}\nstderr: {err}",
                    self.what,
                    lines.join("\n")
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: no {what} within a minute; it printed:\n{}",
                self.what,
                lines.join("\n")
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Stops the CLI; answers what it printed on stderr.
    async fn stop(mut self) -> String {
        let _ = self.child.kill().await;
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt as _;
            let _ = e.read_to_string(&mut err).await;
        }
        err
    }
}

/// Whether `lines` hold the START, END and REPORT lines of invocation `id` (each
/// once) and its function's line with `word`.
fn has_invocation(lines: &[String], id: &str, word: &str) -> bool {
    ["START", "END", "REPORT"].iter().all(|k| {
        lines
            .iter()
            .filter(|l| l.contains(&format!("{k} RequestId: {id}")))
            .count()
            == 1
    }) && lines
        .iter()
        .any(|l| l.contains(&format!("hello from python {{'word': '{word}'}}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_v2_logs_tail_follows_new_lines() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let version = aws_v2(&s).arg("--version").output().await.unwrap();
    let version = String::from_utf8_lossy(&version.stdout).to_string()
        + &String::from_utf8_lossy(&version.stderr);
    assert!(
        version.starts_with("aws-cli/2."),
        "{AWS_V2} is not AWS CLI v2 ({version}): `apt-get install awscli` (Debian 12's is v2)"
    );
    s.create_ok(
        "tailme",
        "python3.11",
        "app.handler",
        &fixture_zip("python"),
        json!({}),
    )
    .await;
    // One invocation before the tails start (a tail of a group that does not exist
    // yet fails): `--since 5m` shows it first.
    let r = s.invoke("tailme", r#"{"word":"before"}"#).await;
    assert_eq!(r.status, 200);
    let before = r.header("x-amzn-requestid").unwrap().to_string();
    s.wait_logs("tailme", "REPORT", 1).await;

    let group = "/aws/lambda/tailme";
    let mut short = Tail::spawn(&s, group, &["--format", "short"]);
    let mut detailed = Tail::spawn(
        &s,
        group,
        &[
            "--format",
            "detailed",
            "--filter-pattern",
            "\"hello from python\"",
        ],
    );
    short
        .wait_for("the invocation from before", |l| {
            has_invocation(l, &before, "before")
        })
        .await;
    detailed
        .wait_for("the line from before", |l| {
            l.iter().any(|l| l.contains("'before'"))
        })
        .await;

    // New invocations while both follow: their lines stream out.
    let mut ids = Vec::new();
    for word in ["during-1", "during-2", "during-3"] {
        let r = s
            .invoke("tailme", &json!({ "word": word }).to_string())
            .await;
        assert_eq!(r.status, 200);
        ids.push((
            r.header("x-amzn-requestid").unwrap().to_string(),
            word.to_string(),
        ));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let lines = short
        .wait_for("the new invocations", |l| {
            ids.iter().all(|(id, w)| has_invocation(l, id, w))
        })
        .await;
    let filtered = detailed
        .wait_for("the new function lines", |l| {
            ids.iter()
                .all(|(_, w)| l.iter().any(|l| l.contains(&format!("'{w}'"))))
        })
        .await;
    // A moment more: nothing is printed twice as the CLI polls on.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let lines_after = short.lines();
    let filtered_after = detailed.lines();
    let (e1, e2) = (short.stop().await, detailed.stop().await);
    assert_eq!(lines_after, lines, "stderr: {e1}");
    assert_eq!(filtered_after, filtered, "stderr: {e2}");

    // `short`: `YYYY-MM-DDTHH:MM:SS message`, the logger's lines too.
    for l in &lines {
        let (ts, msg) = l.split_at(19);
        assert!(
            time::PrimitiveDateTime::parse(
                ts,
                time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")
            )
            .is_ok()
                && msg.starts_with(' '),
            "{l}"
        );
    }
    assert_eq!(count(&lines, "logged at info"), 4, "{lines:#?}");
    // `detailed` with the filter: `{ISO time} {stream} {message}`, only the
    // function's matching lines, once each.
    assert_eq!(filtered.len(), 4, "{filtered:#?}");
    for (l, w) in filtered
        .iter()
        .zip(["before", "during-1", "during-2", "during-3"])
    {
        let mut parts = l.splitn(3, ' ');
        let (ts, stream, msg) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert!(
            ts.len() == 32 && ts.ends_with("+00:00") && ts.as_bytes()[10] == b'T',
            "{l}"
        );
        assert!(
            stream.len() == 11 + 9 + 32 && stream[10..].starts_with("/[$LATEST]"),
            "{l}"
        );
        assert_eq!(msg, format!("hello from python {{'word': '{w}'}}"), "{l}");
    }

    // Without `--follow` it prints what is there (paging FilterLogEvents) and ends.
    let out = aws_v2(&s)
        .args(["logs", "tail", group, "--since", "5m", "--format", "short"])
        .args(["--endpoint-url", &format!("http://{}", s.addr)])
        .args(["--region", "us-east-1"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let once: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(once, lines, "{}", output_text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_logs_permissions_is_denied_in_the_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]).await;
    // A key allowed to read one group only.
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Action":"logs:FilterLogEvents",
            "Resource":"arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/mine"}]}"#,
    )
    .unwrap();
    let endpoint = format!("http://{}", s.addr);
    let out = stratus_ok(
        dir.path(),
        &endpoint,
        &[
            "keys",
            "create",
            "reader",
            "--policy",
            policy.to_str().unwrap(),
        ],
    )
    .await;
    let key: Value = serde_json::from_str(&out).unwrap();
    let run = |group: &'static str| {
        let (endpoint, key) = (endpoint.clone(), key.clone());
        async move {
            tokio::process::Command::new("aws")
                .args(["logs", "filter-log-events", "--log-group-name", group])
                .args(["--endpoint-url", &endpoint, "--region", "us-east-1"])
                .env("AWS_ACCESS_KEY_ID", key["AccessKeyId"].as_str().unwrap())
                .env(
                    "AWS_SECRET_ACCESS_KEY",
                    key["SecretAccessKey"].as_str().unwrap(),
                )
                .env_remove("AWS_SESSION_TOKEN")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .output()
                .await
                .expect("run the AWS CLI")
        }
    };
    // Allowed: the group does not exist yet.
    let o = run("/aws/lambda/mine").await;
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("(ResourceNotFoundException)")
            && text.contains("The specified log group does not exist."),
        "{text}"
    );
    // Another group: denied, in the logs API's error shape, naming action and ARN.
    let o = run("/aws/lambda/theirs").await;
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("(AccessDeniedException)")
            && text.contains("logs:FilterLogEvents on resource: arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/theirs"),
        "{text}"
    );
}

const PY_TRACE: &str = "import os\n\ndef handler(event, context):\n    t = os.environ.get('_X_AMZN_TRACE_ID')\n    print('trace', t, context.aws_request_id)\n    return {'trace': t, 'requestId': context.aws_request_id}\n";
const JS_TRACE: &str = "exports.handler = async (event, context) => {\n  const t = process.env._X_AMZN_TRACE_ID;\n  console.log('trace', t, context.awsRequestId);\n  return { trace: t, requestId: context.awsRequestId };\n};\n";

/// `Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled={0|1}` split into its parts.
fn trace_parts(t: &str) -> (String, String, String) {
    let parts: Vec<&str> = t.split(';').collect();
    assert_eq!(parts.len(), 3, "{t}");
    let root = parts[0].strip_prefix("Root=").expect(t);
    let r: Vec<&str> = root.split('-').collect();
    assert!(
        r.len() == 3
            && r[0] == "1"
            && r[1].len() == 8
            && r[2].len() == 24
            && (r[1].to_string() + r[2])
                .bytes()
                .all(|b| b.is_ascii_hexdigit()),
        "{t}"
    );
    let parent = parts[1].strip_prefix("Parent=").expect(t);
    assert!(
        parent.len() == 16 && parent.bytes().all(|b| b.is_ascii_hexdigit()),
        "{t}"
    );
    let sampled = parts[2].strip_prefix("Sampled=").expect(t);
    assert!(sampled == "0" || sampled == "1", "{t}");
    (root.to_string(), parent.to_string(), sampled.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invocation_has_a_trace_id_and_a_callers_trace_carries_over() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &["--gateway", "127.0.0.1:0"]).await;
    s.create_ok(
        "pytrace",
        "python3.11",
        "app.handler",
        &raw_zip(&[("app.py", PY_TRACE.as_bytes())]),
        json!({}),
    )
    .await;
    s.create_ok(
        "jstrace",
        "nodejs20.x",
        "index.handler",
        &raw_zip(&[("index.js", JS_TRACE.as_bytes())]),
        json!({}),
    )
    .await;
    let incoming_root = "1-5759e988-bd862e3fe1be46a994272793";
    let incoming = format!("Root={incoming_root};Parent=53995c3f42cd8ad8;Sampled=1");
    for f in ["pytrace", "jstrace"] {
        // Twice without a trace header (cold, then warm): a new trace each time,
        // the one the runtime saw is the one the response names.
        let mut roots = Vec::new();
        for _ in 0..2 {
            let r = s.invoke(f, "{}").await;
            assert_eq!(r.status, 200, "{f}: {}", String::from_utf8_lossy(&r.body));
            let v = json_body(&r);
            let seen = v["trace"].as_str().unwrap_or_else(|| panic!("{f}: {v}"));
            assert_eq!(r.header("x-amzn-trace-id"), Some(seen), "{f}");
            let (root, _, sampled) = trace_parts(seen);
            assert_eq!(sampled, "0");
            roots.push(root);
        }
        assert_ne!(
            roots[0], roots[1],
            "{f}: a warm invocation gets its own trace"
        );
        // With the caller's trace: its root and sampling, a new parent.
        let r = s
            .api
            .call(
                "POST",
                &format!("/2015-03-31/functions/{f}/invocations"),
                &[("x-amzn-trace-id", incoming.as_str())],
                "{}",
            )
            .await
            .unwrap();
        let v = json_body(&r);
        let seen = v["trace"].as_str().unwrap();
        let (root, parent, sampled) = trace_parts(seen);
        assert_eq!(
            (root.as_str(), sampled.as_str()),
            (incoming_root, "1"),
            "{f}: {seen}"
        );
        assert_ne!(parent, "53995c3f42cd8ad8");
        assert_eq!(r.header("x-amzn-trace-id"), Some(seen));
        // A malformed header starts a trace of its own.
        let r = s
            .api
            .call(
                "POST",
                &format!("/2015-03-31/functions/{f}/invocations"),
                &[("x-amzn-trace-id", "Root=garbage")],
                "{}",
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        trace_parts(json_body(&r)["trace"].as_str().unwrap());
    }

    // Asynchronous: the delivery keeps the trace of the Invoke request.
    let async_root = "1-5759e988-00000000000000000000a5c1";
    let r = s
        .api
        .call(
            "POST",
            "/2015-03-31/functions/pytrace/invocations",
            &[
                ("x-amz-invocation-type", "Event"),
                ("x-amzn-trace-id", &format!("Root={async_root}")),
            ],
            "{}",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let logs = s.wait_logs("pytrace", "REPORT", 5).await;
    assert!(
        logs.iter()
            .any(|l| l.contains(&format!("trace Root={async_root};Parent="))),
        "{logs:#?}"
    );

    // Through the HTTP gateway: the request's X-Amzn-Trace-Id carries over.
    let gw = s.gateway.clone().unwrap();
    let dir = tmp.path().join("svc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("serverless.yml"),
        "service: tr\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  t:\n    handler: index.handler\n    events:\n      - httpApi: 'GET /t'\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.js"), JS_TRACE).unwrap();
    stratus_ok(&dir, &format!("http://{}", s.addr), &["deploy"]).await;
    let client = Api::new(&gw);
    let r = client
        .call("GET", "/t", &[("x-amzn-trace-id", incoming.as_str())], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = json_body(&r)["trace"].as_str().unwrap().to_string();
    assert_eq!(trace_parts(&seen).0, incoming_root, "{seen}");
    let r = client.call("GET", "/t", &[], "").await.unwrap();
    let seen = json_body(&r)["trace"].as_str().unwrap().to_string();
    assert_ne!(trace_parts(&seen).0, incoming_root, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_server_logs_carry_the_request_id_of_each_invocation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &["--log-format", "json"]).await;
    s.create_ok(
        "jsonlog",
        "python3.11",
        "app.handler",
        &fixture_zip("python"),
        json!({ "Timeout": 1 }),
    )
    .await;
    let cold = s.invoke("jsonlog", "{}").await;
    assert_eq!(cold.status, 200);
    let cold_id = cold.header("x-amzn-requestid").unwrap().to_string();
    let slow = s.invoke("jsonlog", r#"{"action":"sleep","ms":3000}"#).await;
    let slow_id = slow.header("x-amzn-requestid").unwrap().to_string();
    assert_eq!(slow.header("x-amz-function-error"), Some("Unhandled"));
    // Stopping the server flushes its stderr.
    s.terminate().await;
    let text = std::fs::read_to_string(data.with_extension("server.log")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    let about = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .collect()
    };
    let cold_lines = about(&cold_id);
    assert!(
        cold_lines.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"] == "cold start: environment ready"
            && l["span"]["function"] == "jsonlog"),
        "no line about {cold_id} in {text}"
    );
    let slow_lines = about(&slow_id);
    assert!(
        slow_lines
            .iter()
            .any(|l| l["level"] == "WARN" && l["fields"]["message"] == "the invocation timed out"),
        "no timeout line about {slow_id} in {text}"
    );
    // Lines outside any invocation have no request id.
    assert!(lines.iter().any(|l| l["span"].is_null()), "{text}");
}
