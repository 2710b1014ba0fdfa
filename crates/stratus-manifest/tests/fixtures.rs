//! Fixture tests. Each directory under `tests/fixtures/valid/` holds a service
//! (`serverless.yml`, `.yaml` or `.json`, plus any files it includes) and
//! `expected.json`: the resolved service and the warnings, as serialized here.
//! Each directory under `tests/fixtures/invalid/` holds a service and
//! `expected-error.txt`: the exact error text.
//!
//! Every case runs with the same fixed environment and `${sls:instanceId}`; an
//! optional `options.json` beside the service adds `stage`, `region`,
//! `cli_options`, `params`, `env` or `strict`.
//!
//! `STRATUS_BLESS=1 cargo test -p stratus-manifest --test fixtures` rewrites
//! the expected files from the current output (review the diff before
//! committing it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use stratus_manifest::{load, Options};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseOptions {
    stage: Option<String>,
    region: Option<String>,
    #[serde(default)]
    cli_options: BTreeMap<String, String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    strict: bool,
}

fn options(dir: &Path) -> Options {
    let case: CaseOptions = match fs::read_to_string(dir.join("options.json")) {
        Ok(text) => serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: bad options.json: {e}", dir.display())),
        Err(_) => CaseOptions::default(),
    };
    let mut env: BTreeMap<String, String> = [
        ("HOME", "/home/tester"),
        ("DB_HOST", "db.internal"),
        ("FEATURE_FLAG", "true"),
        ("EMPTY", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(case.env);
    Options {
        stage: case.stage,
        region: case.region,
        cli_options: case.cli_options,
        params: case.params,
        env,
        strict: case.strict,
        instance_id: Some("test-instance-id".into()),
    }
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures under {}", root.display());
    dirs
}

fn bless() -> bool {
    std::env::var_os("STRATUS_BLESS").is_some_and(|v| v == "1")
}

/// Compares `actual` with the file, or rewrites the file when blessing.
fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if bless() {
        fs::write(path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    match fs::read_to_string(path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{}: output differs\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )),
        Err(_) => failures.push(format!(
            "{}: missing (run with STRATUS_BLESS=1 to create it)\n--- actual\n{actual}",
            path.display()
        )),
    }
}

fn finish(kind: &str, count: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} of {count} {kind} fixtures failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[derive(serde::Serialize)]
struct Expected<'a> {
    service: &'a stratus_manifest::Service,
    warnings: Vec<String>,
}

#[test]
fn valid_fixtures_resolve_to_expected_json() {
    let dirs = cases("valid");
    let mut failures = Vec::new();
    for dir in &dirs {
        match load(dir, &options(dir)) {
            Ok(loaded) => {
                let warnings: Vec<String> = loaded
                    .warnings
                    .iter()
                    .map(|w| format!("{}: {w}", w.severity))
                    .collect();
                // A struct, not `json!`, so fields keep the model's order.
                let doc = Expected {
                    service: &loaded.service,
                    warnings,
                };
                let text = serde_json::to_string_pretty(&doc).expect("serializable") + "\n";
                check(&dir.join("expected.json"), &text, &mut failures);
            }
            Err(e) => failures.push(format!("{}: failed to load:\n{e}", dir.display())),
        }
    }
    finish("valid", dirs.len(), failures);
}

#[test]
fn invalid_fixtures_fail_with_expected_error() {
    let dirs = cases("invalid");
    let mut failures = Vec::new();
    for dir in &dirs {
        match load(dir, &options(dir)) {
            Ok(loaded) => failures.push(format!(
                "{}: loaded, but an error was expected; service: {}",
                dir.display(),
                loaded.service.service
            )),
            Err(e) => check(
                &dir.join("expected-error.txt"),
                &format!("{e}\n"),
                &mut failures,
            ),
        }
    }
    finish("invalid", dirs.len(), failures);
}

#[test]
fn expected_json_round_trips_through_the_model() {
    // The serialized form is a contract with the server and the CLI: what we
    // write must read back into the same Service.
    for dir in cases("valid") {
        let Ok(loaded) = load(&dir, &options(&dir)) else {
            continue;
        };
        let json = serde_json::to_string(&loaded.service).expect("serializable");
        let back: stratus_manifest::Service = serde_json::from_str(&json).expect("deserializable");
        assert_eq!(back, loaded.service, "{}", dir.display());
    }
}
