//! Packaging: turns a service into deterministic zips, one per service or one per
//! function (`individually`), and writes them to `.serverless/` (or the directory
//! `--package` names).
//!
//! - `package.artifact` (service or function): that zip is used as is.
//! - A `provided*` function in a service with a `Cargo.toml`: `cargo build --release
//!   --bin <handler>` (`STRATUS_CARGO_PROFILE` picks another profile), and the binary
//!   becomes `bootstrap`.
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

fn is_individual(p: &Project, f: &ResolvedFunction) -> bool {
    p.service.package.individually || f.package.individually || f.package.artifact.is_some()
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
    } else if let Some(f) = f.filter(|f| {
        f.runtime.family() == RuntimeFamily::Provided && p.dir.join("Cargo.toml").is_file()
    }) {
        cargo_bootstrap(p, f)?
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

fn tempfile_dir(p: &Project) -> anyhow::Result<PathBuf> {
    let dir = p.output_dir().join("build");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
