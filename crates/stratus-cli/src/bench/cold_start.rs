//! `stratus bench --cold-starts`: a cold start after another for every runtime the
//! server runs, each with a trivial function.
//!
//! - Which runtimes: every ID in the server's `GET /stratus/v1/health` `runtimes`
//!   (the interpreters it found: Node.js, Python, and any language added later)
//!   whose language has a row in [`TRIVIAL`], skipping IDs that run as another one
//!   (`runsAs`: legacy IDs and aliases); then `provided.al2023` with the Rust no-op
//!   bootstrap (`--bootstrap`) and with a Go one (standard library only) built with
//!   `go build` when Go is installed (as `stratus deploy` finds it). A new language is
//!   one row: ID prefix, file name, source, handler (Java's is compiled with the
//!   `javac` on PATH first, and runs at 512 MB).
//! - Forcing cold: the function is created once; before every later sample an
//!   UpdateFunctionConfiguration changes an environment variable, so the next invoke
//!   is of a new revision and starts a new environment (Lambda does the same).
//!   A sample whose REPORT has no `Init Duration` was warm, and is an error.
//! - Figures per runtime: Init Duration from the REPORT line (environment start to
//!   the runtime's first `/next`), and the client-observed latency of that first call
//!   (request sent to response read, signing and loopback HTTP included), p50/p90;
//!   then, for scale, the p50 of [`WARM_CALLS`] warm calls through the same client.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::{create_with, init_duration, percentile};
use crate::client::Api;

/// Warm calls after the cold samples, for the warm p50 beside the cold figures.
const WARM_CALLS: u32 = 100;

/// A trivial function per language: runtime ID prefix, file name, source, handler.
const TRIVIAL: &[(&str, &str, &str, &str)] = &[
    (
        "nodejs",
        "index.js",
        "exports.handler = async () => ({ ok: true });\n",
        "index.handler",
    ),
    (
        "python",
        "app.py",
        "def handler(event, context):\n    return {'ok': True}\n",
        "app.handler",
    ),
    (
        "ruby",
        "function.rb",
        "def handler(event:, context:)\n  { ok: true }\nend\n",
        "function.handler",
    ),
    // A POJO handler (no interface needed); compiled by [`compile_java`].
    (
        "java",
        "example/Hello.java",
        "package example;\n\npublic class Hello {\n    public java.util.Map<String, Object> handleRequest(java.util.Map<String, Object> event) {\n        return java.util.Map.of(\"ok\", true);\n    }\n}\n",
        "example.Hello::handleRequest",
    ),
];

/// Compiles the trivial Java function in `dir` in place with the `javac` on PATH
/// (`--release 17`, what every Java runtime ID runs), leaving only its class.
fn compile_java(dir: &Path, file: &str) -> anyhow::Result<()> {
    let source = dir.join(file);
    let out = std::process::Command::new("javac")
        .args(["--release", "17", "-d"])
        .arg(dir)
        .arg(&source)
        .output()
        .context("cannot run javac (a JDK on PATH builds the Java function)")?;
    if !out.status.success() {
        bail!(
            "javac failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::remove_file(&source)?;
    Ok(())
}

/// The Go no-op: the Runtime API loop on the standard library, as a Go function
/// without aws-lambda-go would be.
const GO_NOOP: &str = r#"package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
)

func main() {
	base := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	for {
		r, err := http.Get(base + "next")
		if err != nil {
			os.Exit(1)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		id := r.Header.Get("Lambda-Runtime-Aws-Request-Id")
		p, err := http.Post(base+id+"/response", "application/json", bytes.NewReader([]byte(`{"ok":true}`)))
		if err != nil {
			os.Exit(1)
		}
		io.Copy(io.Discard, p.Body)
		p.Body.Close()
	}
}
"#;

/// One runtime to measure.
struct Subject {
    label: String,
    runtime: String,
    runs_on: String,
    handler: String,
    zip: Vec<u8>,
    /// MemorySize: 128 MB, but 512 MB for Java (a JVM at 128 MB's sliver of CPU
    /// measures the quota, not the runtime; 512 MB is the usual Java setting).
    memory_mb: u32,
}

/// Measures `samples` cold starts per runtime and prints a table.
pub(super) async fn run(
    api: &Api,
    health: &Value,
    provided_zip: &[u8],
    work: &Path,
    samples: u32,
) -> anyhow::Result<()> {
    let mut subjects = Vec::new();
    let mut skipped = Vec::new();
    for (id, rt) in health["runtimes"].as_object().into_iter().flatten() {
        if !rt["runsAs"].is_null() {
            continue;
        }
        let Some((_, file, source, handler)) =
            TRIVIAL.iter().find(|(prefix, ..)| id.starts_with(prefix))
        else {
            skipped.push(format!(
                "{id} (no trivial function for it in bench/cold_start.rs)"
            ));
            continue;
        };
        let dir = work.join(format!("cold-{id}"));
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap_or(&dir))?;
        std::fs::write(&path, source)?;
        if id.starts_with("java") {
            if let Err(e) = compile_java(&dir, file) {
                skipped.push(format!("{id} ({e:#})"));
                continue;
            }
        }
        subjects.push(Subject {
            label: if id.starts_with("java") {
                format!("{id} (512 MB)")
            } else {
                id.clone()
            },
            runtime: id.clone(),
            runs_on: format!(
                "{}{}",
                rt["version"].as_str().unwrap_or("?"),
                if rt["exact"] == false {
                    " (nearest)"
                } else {
                    ""
                }
            ),
            handler: (*handler).to_string(),
            zip: stratus_package::zip_dir(&dir)?,
            memory_mb: if id.starts_with("java") { 512 } else { 128 },
        });
    }
    // `nodejs18.x` … `python3.9`, `python3.10` …: by language, then version.
    subjects.sort_by_key(|s| {
        let split = s.runtime.find(|c: char| c.is_ascii_digit()).unwrap_or(0);
        let version: Vec<u32> = s.runtime[split..]
            .split('.')
            .filter_map(|p| p.parse().ok())
            .collect();
        (s.runtime[..split].to_string(), version)
    });
    subjects.push(Subject {
        label: "provided.al2023 (Rust)".into(),
        runtime: "provided.al2023".into(),
        runs_on: "noop-bootstrap".into(),
        handler: "bootstrap".into(),
        zip: provided_zip.to_vec(),
        memory_mb: 128,
    });
    match go_noop(work) {
        Ok((zip, version)) => subjects.push(Subject {
            label: "provided.al2023 (Go)".into(),
            runtime: "provided.al2023".into(),
            runs_on: version,
            handler: "bootstrap".into(),
            zip,
            memory_mb: 128,
        }),
        Err(e) => skipped.push(format!("Go ({e:#})")),
    }

    println!("cold starts, {samples} per runtime (UpdateFunctionConfiguration before each call):");
    println!(
        "{:<24} {:<20} {:>26} {:>26} {:>14}",
        "runtime", "runs on", "Init Duration p50 / p90", "first call p50 / p90", "warm call p50"
    );
    for (i, s) in subjects.iter().enumerate() {
        let name = format!("cold-{i}");
        let result = measure(api, &name, s, samples).await;
        let _ = api
            .call("DELETE", &format!("/2015-03-31/functions/{name}"), &[], "")
            .await;
        match result {
            Ok((init, first, warm)) => println!(
                "{:<24} {:<20} {:>26} {:>26} {:>14}",
                s.label,
                s.runs_on,
                format!(
                    "{:.1} / {:.1} ms",
                    percentile(&init, 0.5),
                    percentile(&init, 0.9)
                ),
                format!(
                    "{:.1} / {:.1} ms",
                    percentile(&first, 0.5),
                    percentile(&first, 0.9)
                ),
                format!("{:.2} ms", percentile(&warm, 0.5)),
            ),
            Err(e) => println!("{:<24} failed: {e:#}", s.label),
        }
    }
    for s in skipped {
        println!("skipped: {s}");
    }
    Ok(())
}

/// Init Durations, first-call and warm-call latencies (ms), sorted.
async fn measure(
    api: &Api,
    name: &str,
    s: &Subject,
    samples: u32,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    create_with(api, name, &s.runtime, &s.handler, &s.zip, s.memory_mb).await?;
    let (mut init, mut first) = (Vec::new(), Vec::new());
    for i in 0..samples {
        if i > 0 {
            let body = json!({ "Environment": { "Variables": { "COLD": i.to_string() } } });
            let r = api
                .call(
                    "PUT",
                    &format!("/2015-03-31/functions/{name}/configuration"),
                    &[],
                    body.to_string(),
                )
                .await?;
            if r.status != 200 {
                bail!(
                    "UpdateFunctionConfiguration: {}",
                    String::from_utf8_lossy(&r.body)
                );
            }
        }
        let t = Instant::now();
        let r = api
            .call(
                "POST",
                &format!("/2015-03-31/functions/{name}/invocations"),
                &[("x-amz-log-type", "Tail")],
                "{}",
            )
            .await?;
        first.push(t.elapsed().as_secs_f64() * 1000.0);
        if r.status != 200 || r.header("x-amz-function-error").is_some() {
            bail!("invoke: {}", String::from_utf8_lossy(&r.body));
        }
        init.push(init_duration(&r).with_context(|| format!("sample {i} was not cold"))?);
    }
    let mut warm = Vec::new();
    for _ in 0..WARM_CALLS {
        let t = Instant::now();
        let r = api
            .call(
                "POST",
                &format!("/2015-03-31/functions/{name}/invocations"),
                &[],
                "{}",
            )
            .await?;
        warm.push(t.elapsed().as_secs_f64() * 1000.0);
        if r.status != 200 || r.header("x-amz-function-error").is_some() {
            bail!("warm invoke: {}", String::from_utf8_lossy(&r.body));
        }
    }
    init.sort_by(f64::total_cmp);
    first.sort_by(f64::total_cmp);
    warm.sort_by(f64::total_cmp);
    Ok((init, first, warm))
}

/// The Go no-op built as `stratus deploy` builds Go functions; its zip and Go's
/// version.
fn go_noop(work: &Path) -> anyhow::Result<(Vec<u8>, String)> {
    let go = crate::pack::go_binary()?;
    let dir = work.join("go-noop");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("go.mod"), "module example.com/noop\n\ngo 1.21\n")?;
    std::fs::write(dir.join("main.go"), GO_NOOP)?;
    let zip = crate::pack::go_build_zip(&go, &dir, ".", &dir.join("out"))?;
    let version = std::process::Command::new(&go)
        .args(["env", "GOVERSION"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Ok((zip, version))
}
