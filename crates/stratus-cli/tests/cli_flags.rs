//! The Serverless Framework v3 options of the commands Stratus has.
//!
//! - A differential test against v3's own commands schema (read with node from the
//!   `serverless@3` that scripts/test installs into target/test-deps/serverless):
//!   every option of every such command, by its name, its `--name=value` form and its
//!   short form, must be understood by `stratus` as that same option
//!   (`STRATUS_CHECK_ARGS` makes `stratus` print what it parsed instead of running).
//! - The options that mean something here, against a real server: `package
//!   --package` then `deploy --package` (no rebuild), `deploy --force`, `deploy
//!   function --update-config`, `rollback function`, `invoke --raw/--context/
//!   --contextPath`, `logs --interval`, `info --verbose`, `deploy list functions`,
//!   `create --template-path`, `--debug`, and the notes for the options that have no
//!   effect.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The commands Stratus has, as v3's schema names them (`print` is tested elsewhere).
const VERBS: &[&str] = &[
    "deploy",
    "deploy function",
    "deploy list",
    "deploy list functions",
    "package",
    "invoke",
    "invoke local",
    "logs",
    "info",
    "remove",
    "rollback",
    "rollback function",
    "metrics",
    "create",
];

/// Where serverless@3 is installed: `STRATUS_TEST_SERVERLESS` (an npm prefix holding
/// node_modules/serverless, or the package itself), else target/test-deps/serverless.
/// `None` when absent outside CI; under `CI=true` a missing install fails.
fn serverless_package() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("STRATUS_TEST_SERVERLESS") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => {
            vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-deps/serverless")]
        }
    };
    for c in &candidates {
        for pkg in [c.join("node_modules/serverless"), c.clone()] {
            if pkg.join("lib/cli/commands-schema/index.js").is_file() {
                return Some(pkg);
            }
        }
    }
    let msg = format!(
        "serverless@3 is not installed at {} (scripts/test installs it; or set STRATUS_TEST_SERVERLESS to an npm prefix holding it)",
        candidates[0].display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

/// v3's commands schema for [`VERBS`]: verb → option → {shortcut, type, required}.
fn v3_schema(pkg: &Path) -> Value {
    let script = r#"
const schema = require(process.argv[1] + '/lib/cli/commands-schema/index.js');
const verbs = JSON.parse(process.argv[2]);
const out = {};
for (const v of verbs) {
  const s = schema.get(v);
  if (!s) throw new Error('v3 has no command ' + v);
  out[v] = {};
  for (const [name, o] of Object.entries(s.options || {})) {
    out[v][name] = { shortcut: o.shortcut || null, type: o.type || 'string', required: !!o.required };
  }
}
console.log(JSON.stringify(out));
"#;
    let o = std::process::Command::new("node")
        .args(["-e", script])
        .arg(pkg)
        .arg(serde_json::to_string(VERBS).unwrap())
        .output()
        .expect("run node");
    assert!(
        o.status.success(),
        "reading v3's schema: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("schema JSON")
}

/// `stratus ARGS` with `STRATUS_CHECK_ARGS`: what it parsed, or the error.
fn check_args(args: &[String]) -> Result<Value, String> {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(args)
        .env("STRATUS_CHECK_ARGS", "1")
        .env_remove("STRATUS_ENDPOINT")
        .output()
        .expect("run stratus");
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    serde_json::from_slice(&o.stdout).map_err(|e| format!("{e}: {}", output_text(&o)))
}

#[test]
fn every_v3_option_of_every_stratus_command_is_understood() {
    let Some(pkg) = serverless_package() else {
        return;
    };
    let schema = v3_schema(&pkg);
    // The harness itself refuses what it should: an unknown option, a missing
    // required one.
    assert!(check_args(&["deploy".into(), "--no-such-option".into()]).is_err());
    assert!(check_args(&["logs".into()]).is_err());
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut n = 1000;
    for verb in VERBS {
        let words: Vec<String> = verb.split(' ').map(str::to_string).collect();
        let options = schema[*verb].as_object().expect("options");
        assert!(!options.is_empty(), "{verb}: v3 lists no options");
        for (name, o) in options {
            let short = o["shortcut"].as_str();
            let kind = o["type"].as_str().unwrap_or("string");
            if name == "help" || name == "version" {
                for form in
                    std::iter::once(format!("--{name}")).chain(short.map(|s| format!("-{s}")))
                {
                    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
                        .args(&words)
                        .arg(&form)
                        .output()
                        .expect("run stratus");
                    let text = String::from_utf8_lossy(&out.stdout);
                    let expected = if name == "help" {
                        "Usage: stratus"
                    } else {
                        env!("CARGO_PKG_VERSION")
                    };
                    if !out.status.success() || !text.contains(expected) {
                        failures.push(format!("stratus {verb} {form}: {}", output_text(&out)));
                    }
                    checked += 1;
                }
                continue;
            }
            // What v3 requires (the function), and Stratus's template for `create`.
            let mut filler: Vec<String> = Vec::new();
            for (other, oo) in options {
                if other != name && oo["required"] == true {
                    filler.extend([format!("--{other}"), "filler".into()]);
                }
            }
            if *verb == "create" && !name.starts_with("template") {
                filler.extend(["--template".into(), "aws-nodejs".into()]);
            }
            let mut forms: Vec<(Vec<String>, Vec<String>)> = Vec::new();
            n += 1;
            let value = n.to_string();
            match kind {
                "boolean" => {
                    forms.push((vec![format!("--{name}")], vec!["true".into()]));
                    if let Some(s) = short {
                        forms.push((vec![format!("-{s}")], vec!["true".into()]));
                    }
                }
                "multiple" => {
                    let second = (n + 5000).to_string();
                    forms.push((
                        vec![
                            format!("--{name}"),
                            value.clone(),
                            format!("--{name}={second}"),
                        ],
                        vec![value.clone(), second],
                    ));
                    if let Some(s) = short {
                        forms.push((vec![format!("-{s}"), value.clone()], vec![value.clone()]));
                    }
                }
                _ => {
                    forms.push((
                        vec![format!("--{name}"), value.clone()],
                        vec![value.clone()],
                    ));
                    forms.push((vec![format!("--{name}={value}")], vec![value.clone()]));
                    if let Some(s) = short {
                        forms.push((vec![format!("-{s}"), value.clone()], vec![value.clone()]));
                    }
                }
            }
            for (form, values) in forms {
                let args: Vec<String> = words.iter().chain(&filler).chain(&form).cloned().collect();
                checked += 1;
                match check_args(&args) {
                    Err(e) => failures.push(format!("stratus {}: {e}", args.join(" "))),
                    Ok(parsed) => {
                        if parsed["command"] != json!(words) {
                            failures.push(format!(
                                "stratus {}: parsed as command {}",
                                args.join(" "),
                                parsed["command"]
                            ));
                        } else if parsed["options"][name] != json!(values) {
                            failures.push(format!(
                                "stratus {}: --{name} should be {values:?}; parsed {}",
                                args.join(" "),
                                parsed["options"]
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} v3 option forms not understood:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 300, "only {checked} forms checked");
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", output_text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(o: Output) -> String {
    assert!(!o.status.success(), "should fail: {}", output_text(&o));
    output_text(&o)
}

/// A new aws-nodejs service whose `hello` returns its event, the client context and
/// `marker`.
async fn node_service(parent: &Path, ep: &str, marker: &str) -> PathBuf {
    ok(stratus_cmd(
        parent,
        ep,
        &["create", "--template", "aws-nodejs", "--path", "svc"],
    )
    .await);
    let dir = parent.join("svc");
    write_handler(&dir, marker);
    dir
}

fn write_handler(dir: &Path, marker: &str) {
    std::fs::write(
        dir.join("handler.js"),
        format!("module.exports.hello = async (event, context) => ({{ marker: '{marker}', event, cc: context.clientContext }});\n"),
    )
    .unwrap();
}

/// GetFunction's configuration.
async fn configuration(s: &Server, name: &str) -> Value {
    let r = s
        .api
        .call("GET", &format!("/2015-03-31/functions/{name}"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json().unwrap()["Configuration"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_deploys_later_without_its_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let dir = node_service(tmp.path(), &ep, "packaged").await;

    // Inside the service directory, and packaged twice: the output directory never
    // ends up in its own package.
    let out = ok(stratus_cmd(&dir, &ep, &["package", "--package", "artifacts"]).await);
    let first = std::fs::read(dir.join("artifacts/svc.zip")).unwrap();
    assert!(out.contains("stratus-deployment.json"), "{out}");
    ok(stratus_cmd(&dir, &ep, &["package", "-p", "artifacts"]).await);
    assert_eq!(std::fs::read(dir.join("artifacts/svc.zip")).unwrap(), first);
    assert!(!dir.join(".serverless/svc.zip").exists());
    let plan: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("artifacts/stratus-deployment.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(plan["service"], "svc");
    assert_eq!(plan["request"]["functions"][0]["key"], "hello");

    // The source is gone and the code changed on disk: the package is what deploys.
    std::fs::remove_file(dir.join("handler.js")).unwrap();
    let out = ok(stratus_cmd(&dir, &ep, &["deploy", "--package", "artifacts"]).await);
    assert!(
        out.contains("hello: svc-dev-hello (created, version 1)"),
        "{out}"
    );
    let r = s.invoke("svc-dev-hello", "{}").await;
    assert_eq!(r.json().unwrap()["marker"], "packaged");
    // Unchanged: skipped, as a normal deploy would be.
    let out = ok(stratus_cmd(&dir, &ep, &["deploy", "-p", "artifacts"]).await);
    assert!(out.contains("No changes to deploy"), "{out}");

    // Refused: the service directory itself as the output; not a package, another
    // stage, another service, a changed zip.
    let e = fails(stratus_cmd(&dir, &ep, &["package", "--package", "."]).await);
    assert!(e.contains("is the service directory or holds it"), "{e}");
    let e = fails(stratus_cmd(&dir, &ep, &["deploy", "--package", "nowhere"]).await);
    assert!(e.contains("nowhere has no stratus-deployment.json"), "{e}");
    let e = fails(stratus_cmd(&dir, &ep, &["deploy", "-p", "artifacts", "--stage", "prod"]).await);
    assert!(
        e.contains("packaged for stage \"dev\", not \"prod\""),
        "{e}"
    );
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(
        other.join("serverless.yml"),
        "service: other\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  hello:\n    handler: handler.hello\n",
    )
    .unwrap();
    let pkg = dir.join("artifacts");
    let e = fails(stratus_cmd(&other, &ep, &["deploy", "--package", pkg.to_str().unwrap()]).await);
    assert!(
        e.contains("is a package of service \"svc\", not \"other\""),
        "{e}"
    );
    let mut bytes = first.clone();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(pkg.join("svc.zip"), bytes).unwrap();
    let e = fails(stratus_cmd(&dir, &ep, &["deploy", "-p", "artifacts"]).await);
    assert!(e.contains("changed since it was packaged"), "{e}");

    // A plain deploy leaves a deployable package in .serverless.
    write_handler(&dir, "fresh");
    ok(stratus_cmd(&dir, &ep, &["deploy"]).await);
    assert!(dir.join(".serverless/stratus-deployment.json").is_file());
    write_handler(&dir, "newer");
    ok(stratus_cmd(&dir, &ep, &["deploy"]).await);
    let out = ok(stratus_cmd(&dir, &ep, &["deploy", "list", "functions"]).await);
    assert!(out.contains("hello: 1, 2, 3"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_and_update_config() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let dir = node_service(tmp.path(), &ep, "v1").await;
    ok(stratus_cmd(&dir, &ep, &["deploy"]).await);
    let before = configuration(&s, "svc-dev-hello").await;

    // Unchanged: skipped. --force: applied and recorded anyway, same version.
    assert!(ok(stratus_cmd(&dir, &ep, &["deploy"]).await).contains("No changes"));
    let out = ok(stratus_cmd(&dir, &ep, &["deploy", "--force"]).await);
    assert!(
        out.contains("hello: svc-dev-hello (updated, version 1)"),
        "{out}"
    );
    let after = configuration(&s, "svc-dev-hello").await;
    assert_ne!(before["RevisionId"], after["RevisionId"]);
    let list = ok(stratus_cmd(&dir, &ep, &["deploy", "list"]).await);
    assert_eq!(list.matches("Timestamp:").count(), 2, "{list}");
    // The same for one function.
    assert!(
        ok(stratus_cmd(&dir, &ep, &["deploy", "function", "-f", "hello"]).await)
            .contains("No changes")
    );
    let out = ok(stratus_cmd(&dir, &ep, &["deploy", "function", "-f", "hello", "--force"]).await);
    assert!(out.contains("(updated, version 1)"), "{out}");

    // --update-config: the new timeout applies, the new code does not.
    write_handler(&dir, "v2");
    let yml = std::fs::read_to_string(dir.join("serverless.yml")).unwrap();
    std::fs::write(
        dir.join("serverless.yml"),
        yml.replace(
            "    handler: handler.hello\n",
            "    handler: handler.hello\n    timeout: 17\n",
        ),
    )
    .unwrap();
    let out = ok(stratus_cmd(
        &dir,
        &ep,
        &["deploy", "function", "-f", "hello", "--update-config"],
    )
    .await);
    assert!(out.contains("(updated, version 2)"), "{out}");
    let c = configuration(&s, "svc-dev-hello").await;
    assert_eq!(c["Timeout"], 17);
    assert_eq!(c["CodeSha256"], before["CodeSha256"]);
    let r = s.invoke("svc-dev-hello", "{}").await;
    assert_eq!(r.json().unwrap()["marker"], "v1");
    // Without it, the code follows.
    ok(stratus_cmd(&dir, &ep, &["deploy", "function", "-f", "hello"]).await);
    let r = s.invoke("svc-dev-hello", "{}").await;
    assert_eq!(r.json().unwrap()["marker"], "v2");
    // rollback function: version 1's code back on $LATEST.
    let out = ok(stratus_cmd(
        &dir,
        &ep,
        &[
            "rollback",
            "function",
            "-f",
            "hello",
            "--function-version",
            "1",
        ],
    )
    .await);
    assert!(
        out.contains("Successfully rolled back function hello to version \"1\""),
        "{out}"
    );
    let r = s.invoke("svc-dev-hello", "{}").await;
    assert_eq!(r.json().unwrap()["marker"], "v1");
    let e = fails(
        stratus_cmd(
            &dir,
            &ep,
            &[
                "rollback",
                "function",
                "-f",
                "hello",
                "--function-version",
                "99",
            ],
        )
        .await,
    );
    assert!(e.contains("has no version 99"), "{e}");
    // Nothing deployed yet: nothing to keep.
    let e = fails(
        stratus_cmd(
            &dir,
            &ep,
            &["deploy", "function", "-f", "hello", "-u", "--stage", "qa"],
        )
        .await,
    );
    assert!(e.contains("is not deployed yet"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_raw_and_client_context() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let dir = node_service(tmp.path(), &ep, "ctx").await;
    ok(stratus_cmd(&dir, &ep, &["deploy"]).await);
    let parse = |out: String| -> Value {
        let json = out.split("\n----").next().unwrap();
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    std::fs::write(dir.join("ctx.json"), r#"{"custom":{"from":"file"}}"#).unwrap();
    std::fs::write(dir.join("event.txt"), r#"{"not": json"#).unwrap();
    let e = fails(stratus_cmd(&dir, &ep, &["invoke", "-f", "hello", "-p", "event.txt"]).await);
    assert!(e.contains("not valid JSON (use --raw"), "{e}");
    for local in [false, true] {
        let base: Vec<&str> = if local {
            vec!["invoke", "local", "-f", "hello"]
        } else {
            vec!["invoke", "-f", "hello"]
        };
        let run = |extra: &[&str]| {
            let args: Vec<String> = base.iter().chain(extra).map(|a| a.to_string()).collect();
            let (dir, ep) = (dir.clone(), ep.clone());
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                parse(ok(stratus_cmd(&dir, &ep, &args).await))
            }
        };
        let v = run(&["-d", r#"{"a":1}"#]).await;
        assert_eq!(v["event"], json!({"a": 1}), "local={local}");
        assert_eq!(v["cc"], Value::Null);
        let v = run(&["-d", r#"{"a":1}"#, "--raw"]).await;
        assert_eq!(v["event"], json!(r#"{"a":1}"#), "local={local}");
        let v = run(&["-p", "event.txt", "--raw"]).await;
        assert_eq!(v["event"], json!("{\"not\": json"), "local={local}");
        let v = run(&["--context", r#"{"custom":{"k":"v"}}"#]).await;
        assert_eq!(v["cc"]["custom"]["k"], "v", "local={local}: {v}");
        let v = run(&["--contextPath", "ctx.json"]).await;
        assert_eq!(v["cc"]["custom"]["from"], "file", "local={local}: {v}");
        let v = run(&["-x", "ctx.json", "--context", r#"{"custom":{"k":"wins"}}"#]).await;
        assert_eq!(v["cc"]["custom"]["k"], "wins", "local={local}: {v}");
        let e = fails(
            stratus_cmd(
                &dir,
                &ep,
                &base
                    .iter()
                    .chain(&["--contextPath", "missing.json"])
                    .copied()
                    .collect::<Vec<_>>(),
            )
            .await,
        );
        assert!(e.contains("cannot read the context file"), "{e}");
    }
    // --debug: debug logs on stderr (the in-process server's and the client's).
    for debug in [false, true] {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"));
        cmd.args(["invoke", "local", "-f", "hello"]);
        if debug {
            cmd.arg("--debug");
        }
        let o = cmd
            .current_dir(&dir)
            .env_remove("STRATUS_LOG")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{}", output_text(&o));
        assert_eq!(err.contains("DEBUG"), debug, "{err}");
    }
    // Options without effect are noted, not refused.
    let o = stratus_cmd(
        &dir,
        &ep,
        &[
            "invoke",
            "local",
            "-f",
            "hello",
            "--docker",
            "--docker-arg",
            "-p 9229:9229",
        ],
    )
    .await;
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("note: --docker has no effect on Stratus"),
        "{text}"
    );
    assert!(
        text.contains("note: --docker-arg has no effect on Stratus"),
        "{text}"
    );
}

/// When a line ending in `suffix` arrives.
async fn wait_for_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    suffix: &str,
) -> Instant {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("a new line in time")
            .unwrap()
            .unwrap();
        if line.ends_with(suffix) {
            return Instant::now();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_interval_is_milliseconds_between_polls() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let dir = node_service(tmp.path(), &ep, "logs").await;
    std::fs::write(
        dir.join("handler.js"),
        "module.exports.hello = async (e) => { console.log('polled', e.n); return 1; };\n",
    )
    .unwrap();
    ok(stratus_cmd(&dir, &ep, &["deploy"]).await);
    ok(stratus_cmd(&dir, &ep, &["invoke", "-f", "hello", "-d", r#"{"n":1}"#]).await);
    // The first poll prints line 1; line 2, logged right after, waits for the next
    // poll, 2.5 s later.
    let mut tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(["logs", "-f", "hello", "--tail", "--interval", "2500"])
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
    let first = wait_for_line(&mut lines, "polled 1").await;
    ok(stratus_cmd(&dir, &ep, &["invoke", "-f", "hello", "-d", r#"{"n":2}"#]).await);
    let second = wait_for_line(&mut lines, "polled 2").await;
    let gap = second - first;
    assert!(
        gap >= Duration::from_millis(2300) && gap < Duration::from_secs(15),
        "line 2 came {gap:?} after line 1"
    );
    tail.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_verbose_rollback_without_timestamp_and_no_op_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &[]).await;
    let ep = format!("http://{}", s.addr);
    let dir = node_service(tmp.path(), &ep, "info").await;
    let o = stratus_cmd(
        &dir,
        &ep,
        &[
            "deploy",
            "--aws-s3-accelerate",
            "--enforce-hash-update",
            "--minify-template",
            "--conceal",
            "--aws-profile",
            "default",
            "--app",
            "a",
            "--org",
            "o",
        ],
    )
    .await;
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    for flag in [
        "aws-s3-accelerate",
        "enforce-hash-update",
        "minify-template",
        "conceal",
        "app",
        "org",
    ] {
        assert!(
            text.contains(&format!("note: --{flag} has no effect on Stratus")),
            "{flag}: {text}"
        );
    }

    // --aws-profile picks the profile requests are signed with: it has an effect.
    assert!(!text.contains("--aws-profile has no effect"), "{text}");

    let plain = ok(stratus_cmd(&dir, &ep, &["info"]).await);
    assert!(!plain.contains("outputs:"), "{plain}");
    let verbose = ok(stratus_cmd(&dir, &ep, &["info", "--verbose"]).await);
    assert!(
        verbose.contains(
            "  HelloLambdaFunctionQualifiedArn: arn:aws:lambda:us-east-1:000000000000:function:svc-dev-hello:1\n"
        ),
        "{verbose}"
    );
    assert!(
        verbose.contains("    handler: handler.hello\n"),
        "{verbose}"
    );
    assert!(
        verbose.contains(&format!("  ServiceEndpoint: {ep}\n")),
        "{verbose}"
    );
    assert!(verbose.contains("deployments: 1\n"), "{verbose}");

    // rollback without --timestamp lists the deployments and asks for one.
    let e = fails(stratus_cmd(&dir, &ep, &["rollback"]).await);
    assert!(e.contains("Timestamp: "), "{e}");
    assert!(e.contains("which deployment?"), "{e}");

    // metrics reads a time range: a span ago, or ISO times.
    let o = stratus_cmd(
        &dir,
        &ep,
        &[
            "metrics",
            "--startTime",
            "1h",
            "--endTime",
            "2099-01-01T00:00:00Z",
        ],
    )
    .await;
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.starts_with("Service wide metrics\n"), "{text}");
    assert!(!text.contains("no effect"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_from_a_local_template() {
    let tmp = tempfile::tempdir().unwrap();
    let ep = "http://127.0.0.1:9";
    let tpl = tmp.path().join("tpl");
    std::fs::create_dir_all(tpl.join("lib")).unwrap();
    std::fs::write(
        tpl.join("serverless.yml"),
        "service: template-name\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  hello:\n    handler: lib/h.hello\n",
    )
    .unwrap();
    std::fs::write(
        tpl.join("lib/h.js"),
        "module.exports.hello = async () => 1;\n",
    )
    .unwrap();
    let out = ok(stratus_cmd(
        tmp.path(),
        ep,
        &[
            "create",
            "--template-path",
            "tpl",
            "--path",
            "made",
            "--name",
            "mine",
        ],
    )
    .await);
    assert!(out.contains("Project successfully created"), "{out}");
    let yml = std::fs::read_to_string(tmp.path().join("made/serverless.yml")).unwrap();
    assert!(yml.starts_with("service: mine\n"), "{yml}");
    assert!(tmp.path().join("made/lib/h.js").is_file());
    let e = fails(stratus_cmd(tmp.path(), ep, &["create", "-u", "https://github.com/x/y"]).await);
    assert!(e.contains("use --template-path"), "{e}");
    let e = fails(stratus_cmd(tmp.path(), ep, &["create"]).await);
    assert!(e.contains("--template"), "{e}");
}
