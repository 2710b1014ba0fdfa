//! Loading the service: finds and resolves `serverless.yml` (through
//! `stratus-manifest`), prints its warnings, and knows where the service lives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use stratus_manifest::{ResolvedFunction, Service};

use crate::{ui, Global};

/// A loaded service.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    /// The service directory (where serverless.yml is).
    pub(crate) dir: PathBuf,
    /// The configuration file read.
    pub(crate) config_file: PathBuf,
    /// The resolved service.
    pub(crate) service: Service,
}

impl Project {
    /// The function with key `key` (the name under `functions:`).
    pub(crate) fn function(&self, key: &str) -> anyhow::Result<&ResolvedFunction> {
        self.service.functions.get(key).ok_or_else(|| {
            let known: Vec<_> = self.service.functions.keys().cloned().collect();
            anyhow!(
                "Function \"{key}\" doesn't exist in this Service (functions: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })
    }

    /// `/stratus/v1/services/{service}/{stage}`.
    pub(crate) fn api_path(&self) -> String {
        format!(
            "/stratus/v1/services/{}/{}",
            self.service.service, self.service.stage
        )
    }

    /// The `.serverless` output directory.
    pub(crate) fn output_dir(&self) -> PathBuf {
        self.dir.join(".serverless")
    }
}

/// Options given to `${opt:...}`.
fn cli_options(g: &Global) -> anyhow::Result<BTreeMap<String, String>> {
    let mut opts = BTreeMap::new();
    if let Some(s) = &g.stage {
        opts.insert("stage".into(), s.clone());
    }
    if let Some(r) = &g.region {
        opts.insert("region".into(), r.clone());
    }
    for p in &g.params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--param \"{p}\" is not key=value"))?;
        opts.insert(format!("param:{k}"), v.to_string());
    }
    Ok(opts)
}

/// What to load for `dir` (the configuration path or directory) and the
/// options resolving it: `--config`, `--stage`, `--region`, `--param`,
/// `--strict` and the process environment.
pub(crate) fn target_and_options(
    g: &Global,
    dir: &Path,
) -> anyhow::Result<(PathBuf, stratus_manifest::Options)> {
    let target = match &g.config {
        Some(c) if c.is_absolute() => c.clone(),
        Some(c) => dir.join(c),
        None => dir.to_path_buf(),
    };
    let cli = cli_options(g)?;
    let params = cli
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("param:").map(|k| (k.to_string(), v.clone())))
        .collect();
    let options = stratus_manifest::Options {
        stage: g.stage.clone(),
        region: g.region.clone(),
        cli_options: cli
            .into_iter()
            .filter(|(k, _)| !k.starts_with("param:"))
            .collect(),
        params,
        strict: g.strict,
        ..stratus_manifest::Options::default()
    }
    .with_process_env();
    Ok((target, options))
}

/// Loads the service in `dir` (or `--config`), printing warnings.
pub(crate) fn load_from(g: &Global, dir: &Path) -> anyhow::Result<Project> {
    let (target, options) = target_and_options(g, dir)?;
    let loaded = stratus_manifest::load(&target, &options).map_err(|e| anyhow!("{e}"))?;
    for w in &loaded.warnings {
        if w.severity == stratus_manifest::Severity::Warning {
            ui::warn(&w.to_string());
        } else if g.verbose {
            eprintln!("Note: {w}");
        }
    }
    Ok(Project {
        dir: loaded.service_dir,
        config_file: loaded.config_file,
        service: loaded.service,
    })
}

/// Loads the service of the current directory.
pub(crate) fn load(g: &Global) -> anyhow::Result<Project> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    load_from(g, &cwd)
}
