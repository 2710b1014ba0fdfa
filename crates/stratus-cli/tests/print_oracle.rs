//! Differential test of `stratus print` against the Serverless Framework v3
//! itself: the same services are printed by `serverless print` (v3, installed
//! by `scripts/test` into `target/test-deps/serverless`) and by the built
//! `stratus print`, and the outputs must be the same data in the same key
//! order.
//!
//! Services: every manifest fixture of `stratus-manifest` (valid and invalid;
//! each `options.json` becomes flags and environment for both tools) and the
//! services under `tests/fixtures/print`. When v3 refuses a service, Stratus
//! must refuse it too, naming file, line and column. Where Stratus
//! deliberately differs the case is listed, with the reason, in
//! [`DIFFERENCES`] (checked: v3 refuses, Stratus prints) or [`MASKED`]; a
//! fixture whose options cannot be given to both tools is in [`SKIPPED`].
//!
//! Without the v3 install the test says so and passes, except under CI
//! (`CI=true`), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use stratus_manifest::spanned::{parse_json, parse_yaml, Node, Value};

/// The v3 release `scripts/test` installs.
const SERVERLESS_VERSION: &str = "3.40.0";

/// Fixtures not run, and why.
const SKIPPED: &[(&str, &str)] = &[(
    "valid/variable-sources",
    "sets `${opt:color}` with `--color blue`: Stratus's CLI takes only its own flags",
)];

/// Services v3 refuses and Stratus prints, each with a line of v3's error and
/// the reason (the README lists them). The test checks both halves.
const DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "valid/defaults-and-nested-defaults",
        "Invalid variable source",
        "a variable as a default (`${env:X, ${self:y}}`, Serverless v2's form): v3 takes only `${env:X, self:y}`, Stratus resolves both",
    ),
    (
        "valid/unsupported-source-with-default",
        "Invalid variable source",
        "a variable as a default (`${cf:…, ${env:HOME}}`), as above",
    ),
    (
        "print/difference-opt-stage",
        "Value not found at \"opt\" source",
        "`${opt:stage}` without `--stage`: Stratus gives the effective stage (`--stage`, else `provider.stage`, else `dev`)",
    ),
    (
        "print/difference-str-to-bool",
        "Missing \"strToBool\" input",
        "`${strToBool(0)}`/`${strToBool(false)}`: v3 takes the falsy argument for a missing one, Stratus gives `false`",
    ),
    (
        "valid/plugins",
        "not found",
        "plugins that are not installed: v3 loads every plugin before printing, Stratus runs no plugins",
    ),
];

/// Manifest fixtures Stratus can load but v3 cannot print offline: Stratus's
/// `print` must refuse them as well.
const V3_REFUSES: &[(&str, &str)] = &[
    (
        "valid/params-per-stage",
        "another stage's `params` use `${ssm:}`; v3 (and Stratus's print) resolve every stage's params",
    ),
    (
        "print/framework-version-mismatch",
        "frameworkVersion excludes 3.40.0",
    ),
    (
        "print/validation-mode-error",
        "an unknown provider setting with configValidationMode: error",
    ),
    (
        "print/validation-mode-error-types",
        "wrong types, an unknown event kind and package key with configValidationMode: error",
    ),
];

/// Values left out of the comparison, and why.
const MASKED: &[(&str, &str, &str)] = &[(
    "valid/cli-stage-and-region",
    "custom.allOptions",
    "`${opt:}` lists every CLI option, and v3's include its own `print` options (format, path, …)",
)];

const BASE_ENV: &[(&str, &str)] = &[
    ("DB_HOST", "db.internal"),
    ("FEATURE_FLAG", "true"),
    ("EMPTY", ""),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn serverless_bin() -> Option<PathBuf> {
    let bin = root().join("target/test-deps/serverless/node_modules/.bin/serverless");
    bin.exists().then_some(bin)
}

/// What a case runs.
#[derive(Debug, Clone)]
struct Case {
    /// `valid/minimal-node`, `print/kitchen-sink`, …
    name: String,
    dir: PathBuf,
    /// `print` arguments for both tools.
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// How stdout is compared.
    format: Format,
    /// v3 must print it (a service written for this test).
    v3_accepts: bool,
    /// v3 must refuse it with this text and Stratus print it.
    difference: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Json,
    Yaml,
    Text,
}

/// `options.json` of a fixture.
#[derive(Debug, Default, serde::Deserialize)]
struct CaseOptions {
    stage: Option<String>,
    region: Option<String>,
    #[serde(default)]
    cli_options: BTreeMap<String, String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Stratus's `--strict` for `load`; `print` has no such mode (neither has v3).
    #[serde(default)]
    #[allow(dead_code)]
    strict: bool,
}

fn case_for(name: String, dir: PathBuf, v3_accepts: bool) -> Case {
    let opts: CaseOptions = match std::fs::read_to_string(dir.join("options.json")) {
        Ok(text) => serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: bad options.json: {e}", dir.display())),
        Err(_) => CaseOptions::default(),
    };
    let mut args: Vec<String> = vec!["--format".into(), "json".into()];
    if let Some(s) = opts.stage {
        args.extend(["--stage".into(), s]);
    }
    if let Some(r) = opts.region {
        args.extend(["--region".into(), r]);
    }
    for (k, v) in opts.params {
        args.extend(["--param".into(), format!("{k}={v}")]);
    }
    for (k, v) in &opts.cli_options {
        match (k.as_str(), v.as_str()) {
            ("verbose", "true") => args.push("--verbose".into()),
            _ => panic!("{name}: no flag of both tools for the CLI option {k}={v}; list the fixture in SKIPPED"),
        }
    }
    Case {
        name,
        dir,
        args,
        env: opts.env.into_iter().collect(),
        format: Format::Json,
        v3_accepts,
        difference: None,
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let manifest = root().join("crates/stratus-manifest/tests/fixtures");
    let print = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/print");
    for (kind, base) in [
        ("valid", &manifest),
        ("invalid", &manifest),
        ("print", &print),
    ] {
        let dir = if kind == "print" {
            base.to_path_buf()
        } else {
            base.join(kind)
        };
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for d in dirs {
            let name = format!("{kind}/{}", d.file_name().unwrap().to_string_lossy());
            if SKIPPED.iter().any(|(s, _)| *s == name) {
                continue;
            }
            let refused = V3_REFUSES.iter().any(|(s, _)| *s == name);
            let difference = DIFFERENCES
                .iter()
                .find(|(s, _, _)| *s == name)
                .map(|(_, says, _)| *says);
            let mut case = case_for(
                name,
                d,
                kind != "invalid" && !refused && difference.is_none(),
            );
            case.difference = difference;
            cases.push(case);
        }
    }
    // The print options themselves, on one service.
    let sink = print.join("kitchen-sink");
    // (arguments, how stdout compares, whether v3 prints it)
    let extra: &[(&[&str], Format, bool)] = &[
        (&["--format", "yaml"], Format::Yaml, true),
        (&[], Format::Yaml, true),
        (
            &[
                "--format",
                "text",
                "--path",
                "provider",
                "--transform",
                "keys",
            ],
            Format::Text,
            true,
        ),
        (
            &["--format", "text", "--path", "functions.api.events.1.http"],
            Format::Text,
            true,
        ),
        (
            &["--format", "text", "--path", "custom.regions"],
            Format::Text,
            true,
        ),
        (
            &["--format", "json", "--path", "functions.api.events.0"],
            Format::Json,
            true,
        ),
        (
            &[
                "--format",
                "json",
                "--path",
                "custom",
                "--transform",
                "keys",
            ],
            Format::Json,
            true,
        ),
        (
            &["--format", "yaml", "--path", "resources.Resources"],
            Format::Yaml,
            true,
        ),
        (&["--path", "custom.nothing"], Format::Text, false),
        (&["--path", "custom.zero"], Format::Text, false),
        (&["--format", "xml"], Format::Text, false),
        (&["--transform", "values"], Format::Text, false),
        (
            &["--format", "text", "--path", "provider"],
            Format::Text,
            false,
        ),
    ];
    for (args, format, v3_accepts) in extra {
        cases.push(Case {
            name: format!("print/kitchen-sink {}", args.join(" ")),
            dir: sink.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![("STAGE_COLOR".into(), "green".into())],
            format: *format,
            v3_accepts: *v3_accepts,
            difference: None,
        });
    }
    cases
}

/// Where v3 caches its compiled schema validator between runs (a cold run
/// costs seconds).
fn schema_cache() -> PathBuf {
    root().join("target/test-deps/serverless/schema-cache")
}

fn run(program: &Path, case: &Case, home: &Path) -> Output {
    let mut cmd = Command::new(program);
    cmd.arg("print")
        .args(&case.args)
        .current_dir(&case.dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("SLS_TELEMETRY_DISABLED", "1")
        .env("SLS_NOTIFICATIONS_MODE", "off")
        .env("SLS_SCHEMA_CACHE_BASE_DIR", schema_cache())
        .env("SLS_DEPRECATION_DISABLE", "*")
        .env("NO_COLOR", "1");
    for (k, v) in BASE_ENV {
        cmd.env(k, v);
    }
    for (k, v) in &case.env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("{}: cannot run {}: {e}", case.name, program.display()))
}

/// Runs `f` over `items` on `threads` threads; results in input order.
fn parallel<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                out.lock().unwrap()[i] = Some(r);
            });
        }
    });
    out.into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// The first difference between two trees (values and key order), as a path.
fn difference(a: &Node, b: &Node, path: &str) -> Option<String> {
    match (&a.value, &b.value) {
        (Value::Map(x), Value::Map(y)) => {
            let kx: Vec<&str> = x.iter().map(|e| e.key.as_str()).collect();
            let ky: Vec<&str> = y.iter().map(|e| e.key.as_str()).collect();
            if kx != ky {
                return Some(format!("{path}: keys {ky:?} (v3) vs {kx:?} (stratus)"));
            }
            x.iter()
                .zip(y)
                .find_map(|(e, f)| difference(&e.value, &f.value, &format!("{path}.{}", e.key)))
        }
        (Value::Seq(x), Value::Seq(y)) => {
            if x.len() != y.len() {
                return Some(format!(
                    "{path}: {} items (v3) vs {} (stratus)",
                    y.len(),
                    x.len()
                ));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (e, f))| difference(e, f, &format!("{path}[{i}]")))
        }
        (x, y) if x == y => None,
        _ => Some(format!(
            "{path}: {} (v3) vs {} (stratus)",
            b.to_json(),
            a.to_json()
        )),
    }
}

fn remove_path(node: &mut Node, path: &str) {
    let mut cur = node;
    let steps: Vec<&str> = path.split('.').collect();
    for (i, step) in steps.iter().enumerate() {
        let Value::Map(entries) = &mut cur.value else {
            return;
        };
        if i + 1 == steps.len() {
            entries.retain(|e| e.key != *step);
            return;
        }
        match entries.iter_mut().find(|e| e.key == *step) {
            Some(e) => cur = &mut e.value,
            None => return,
        }
    }
}

fn parse(case: &Case, tool: &str, stdout: &[u8]) -> Result<Node, String> {
    let text = String::from_utf8_lossy(stdout);
    let parsed = match case.format {
        Format::Json => parse_json(&text, tool.into()).map_err(|e| e.to_string()),
        Format::Yaml => parse_yaml(&text, tool.into()).map_err(|e| e.to_string()),
        Format::Text => Ok(Node::new(
            stratus_manifest::Span::start_of(tool.into()),
            Value::String(text.trim_end().to_string()),
        )),
    };
    parsed.map_err(|e| format!("{tool} output does not parse: {e}\n{text}"))
}

/// Everything wrong with one case.
fn check(case: &Case, v3: &Output, stratus: &Output) -> Result<(), String> {
    // v3's `print` writes its errors to stdout.
    let v3_err = strip_ansi(&format!(
        "{}{}",
        String::from_utf8_lossy(&v3.stderr),
        String::from_utf8_lossy(&v3.stdout)
    ));
    let st_err = String::from_utf8_lossy(&stratus.stderr).to_string();
    if let Some(says) = case.difference {
        return match (v3.status.success(), stratus.status.success()) {
            (false, true) if v3_err.contains(says) => Ok(()),
            (false, true) => Err(format!("v3 refuses, but without {says:?}: {v3_err}")),
            (true, _) => {
                Err("v3 now prints this listed difference: remove it from DIFFERENCES".into())
            }
            (false, false) => Err(format!("stratus refuses a listed difference: {st_err}")),
        };
    }
    if case.v3_accepts && !v3.status.success() {
        return Err(format!(
            "v3 refused a case written to be accepted:\n{v3_err}"
        ));
    }
    match (v3.status.success(), stratus.status.success()) {
        (true, true) => {
            let mut a = parse(case, "stratus", &stratus.stdout)?;
            let mut b = parse(case, "v3", &v3.stdout)?;
            for (name, path, _) in MASKED {
                if *name == case.name {
                    remove_path(&mut a, path);
                    remove_path(&mut b, path);
                }
            }
            match difference(&a, &b, "$") {
                None => Ok(()),
                Some(d) => Err(format!("outputs differ at {d}")),
            }
        }
        (false, false) => {
            // v3's schema errors (configValidationMode: error) are repeated
            // word for word, each of them.
            let schema: Vec<&str> = v3_err
                .lines()
                .filter_map(|l| l.split_once("at '").map(|(_, rest)| rest))
                .filter(|_| v3_err.contains("Configuration error"))
                .collect();
            if !schema.is_empty() {
                for rest in schema {
                    let line = format!("Configuration error at '{}", rest.trim());
                    if !st_err.contains(&line) {
                        return Err(format!("v3 says {line:?}; stratus says {st_err:?}"));
                    }
                }
                return Ok(());
            }
            // v3's own print errors are repeated word for word.
            for message in [
                "does not satisfy the",
                "Path \"",
                "Format must be",
                "Transform can only be",
                "Cannot print an object",
            ] {
                if let Some(line) = v3_err.lines().find(|l| l.contains(message)) {
                    if !st_err.contains(line.trim()) {
                        return Err(format!(
                            "v3 says {:?}; stratus says {st_err:?}",
                            line.trim()
                        ));
                    }
                    return Ok(());
                }
            }
            let located = st_err.split_whitespace().any(|w| {
                let mut parts = w.trim_end_matches(':').rsplitn(3, ':');
                let col = parts.next().unwrap_or("");
                let line = parts.next().unwrap_or("");
                let file = parts.next().unwrap_or("");
                !file.is_empty()
                    && !line.is_empty()
                    && line.bytes().all(|b| b.is_ascii_digit())
                    && !col.is_empty()
                    && col.bytes().all(|b| b.is_ascii_digit())
            });
            if located {
                Ok(())
            } else {
                Err(format!(
                    "stratus refused without file:line:column: {st_err}"
                ))
            }
        }
        (true, false) => Err(format!(
            "v3 prints it, stratus refuses: {st_err}\nv3 printed:\n{}",
            String::from_utf8_lossy(&v3.stdout)
        )),
        (false, true) => Err(format!(
            "v3 refuses it, stratus prints it.\nv3: {v3_err}\nstratus printed:\n{}",
            String::from_utf8_lossy(&stratus.stdout)
        )),
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn stratus_prints_what_serverless_v3_prints() {
    let Some(sls) = serverless_bin() else {
        let message = format!(
            "serverless@{SERVERLESS_VERSION} is not installed in target/test-deps/serverless: run scripts/test (it installs it)"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("skipping the v3 oracle test: {message}");
        return;
    };
    let version = Command::new(&sls)
        .arg("--version")
        .env("SLS_TELEMETRY_DISABLED", "1")
        .output()
        .expect("serverless --version");
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    assert!(
        version.contains(&format!("Framework Core: {SERVERLESS_VERSION}")),
        "target/test-deps/serverless is not v{SERVERLESS_VERSION}: {version}"
    );
    let home = tempfile::tempdir().unwrap();
    let cases = cases();
    let stratus = PathBuf::from(env!("CARGO_BIN_EXE_stratus"));
    let started = std::time::Instant::now();
    let outputs = parallel(&cases, 4, |case| {
        (
            run(&sls, case, home.path()),
            run(&stratus, case, home.path()),
        )
    });
    let mut failures = Vec::new();
    for (case, (v3, st)) in cases.iter().zip(&outputs) {
        if let Err(e) = check(case, v3, st) {
            failures.push(format!("== {} ({})\n{e}", case.name, case.args.join(" ")));
        }
    }
    eprintln!(
        "{} cases against serverless {SERVERLESS_VERSION} in {:.1?}; skipped: {}; differences: {}",
        cases.len(),
        started.elapsed(),
        SKIPPED
            .iter()
            .map(|(n, why)| format!("\n  {n}: {why}"))
            .collect::<String>(),
        DIFFERENCES
            .iter()
            .map(|(n, _, why)| format!("\n  {n}: {why}"))
            .collect::<String>()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from v3:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// The comparison itself catches what it must: another value, another key
/// order, a refusal on one side only, a refusal without a position.
#[test]
fn the_comparison_notices_differences() {
    let json = |t: &str| parse_json(t, "t".into()).unwrap();
    assert!(difference(
        &json(r#"{"a": 1, "b": [1]}"#),
        &json(r#"{"a": 1, "b": [1]}"#),
        "$"
    )
    .is_none());
    let d = difference(
        &json(r#"{"a": 1, "b": 2}"#),
        &json(r#"{"b": 2, "a": 1}"#),
        "$",
    )
    .unwrap();
    assert!(d.starts_with("$: keys"), "{d}");
    let d = difference(&json(r#"{"a": [1, 2.5]}"#), &json(r#"{"a": [1, 2]}"#), "$").unwrap();
    assert_eq!(d, "$.a[1]: 2 (v3) vs 2.5 (stratus)");
    let d = difference(&json(r#"{"a": "1"}"#), &json(r#"{"a": 1}"#), "$").unwrap();
    assert_eq!(d, "$.a: 1 (v3) vs \"1\" (stratus)");

    let output = |code: i32, stdout: &str, stderr: &str| {
        use std::os::unix::process::ExitStatusExt;
        Output {
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    };
    let case = Case {
        name: "unit".into(),
        dir: PathBuf::from("."),
        args: Vec::new(),
        env: Vec::new(),
        format: Format::Json,
        v3_accepts: false,
        difference: None,
    };
    let ok = output(0, r#"{"a": 1}"#, "");
    assert!(check(&case, &ok, &ok).is_ok());
    assert!(check(&case, &ok, &output(0, r#"{"a": 2}"#, "")).is_err());
    let refused = output(1, "", "Error:\nCannot resolve serverless.yml");
    assert!(check(&case, &refused, &ok).is_err());
    assert!(check(&case, &ok, &output(1, "", "x")).is_err());
    assert!(check(
        &case,
        &refused,
        &output(1, "", "✖ serverless.yml:3:5: custom.a: cannot resolve")
    )
    .is_ok());
    assert!(check(&case, &refused, &output(1, "", "✖ something failed")).is_err());
    let path = output(1, "Error:\nPath \"a.b\" not found\n", "");
    assert!(check(&case, &path, &output(1, "", "✖ Path \"a.b\" not found")).is_ok());
    assert!(check(&case, &path, &output(1, "", "✖ Path \"a\" not found")).is_err());
}
