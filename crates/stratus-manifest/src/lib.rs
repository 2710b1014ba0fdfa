//! `stratus-manifest` owns `serverless.yml`: it reads a service's configuration
//! (Serverless Framework v3 format, AWS provider), resolves its variables,
//! validates it, and lowers it into one resolved, serializable [`Service`] that
//! the server and the CLI consume. It knows nothing about HTTP or processes.
//!
//! ```text
//! serverless.yml ──spanned──► Node tree ──vars──► resolved tree ──schema──► Config ──model──► Service
//!  (.yaml, .json)   (positions)            (${…} replaced)        (typed, checked)   (defaults applied)
//! ```
//!
//! Modules, one idea each:
//! - [`spanned`]: YAML/JSON text → a tree of values that remember file, line and
//!   column (YAML events from `saphyr-parser`, CloudFormation short-form tags,
//!   anchors and merge keys). Errors: [`ParseError`].
//! - [`vars`]: variable resolution (`${self:…}`, `${opt:…}`, `${env:…}`,
//!   `${file(…):…}`, `${sls:…}`, `${param:…}`, `${strToBool(…)}`, defaults,
//!   nesting, cycles). Errors: [`VarError`].
//! - [`schema`]: the typed schema, each field documented with the syntax it
//!   accepts, and its validation; problems are collected with positions. One
//!   file per section: `provider`, `function`, `package`, `events`, `http_api`,
//!   with `cors`, `shared` (settings both provider and functions take) and the
//!   `reader` they all use.
//! - `types`: the values both the schema and the model hold (runtimes,
//!   architectures, events, CORS); re-exported from [`model`].
//! - [`model`]: the resolved [`Service`] and the lowering into it.
//! - [`printed`]: the configuration as `serverless print` shows it (the
//!   resolved tree with v3's normalizations; no schema, no model).
//! - [`diagnostic`]: [`Diagnostic`] (errors, warnings, notes), displayed as
//!   `serverless.yml:12:5: functions.hello.timeout: …`.
//! - [`error`]: [`ManifestError`], why a service could not be loaded.
//!
//! The module graph has no cycles: `spanned`, `types`, `diagnostic` at the
//! bottom; `vars` and `schema` on them; `model` and `printed` on those; `error`
//! gathers the errors of all.
//!
//! The entry points are [`load`] and, for `print`, [`load_printed`].

pub mod diagnostic;
pub mod error;
pub mod model;
pub mod printed;
pub mod schema;
pub mod spanned;
mod types;
pub mod vars;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{Diagnostic, Diagnostics, ManifestError, Severity};
pub use model::{Architecture, Event, ResolvedFunction, Runtime, RuntimeFamily, Service};
pub use printed::{load_printed, Printed};
pub use spanned::{ParseError, Span};
pub use vars::VarError;

/// Configuration file names looked for in a service directory, in order.
pub const CONFIG_FILE_NAMES: [&str; 3] = ["serverless.yml", "serverless.yaml", "serverless.json"];

/// How to load a service.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--stage`; also what `${opt:stage}` returns. Overrides `provider.stage`.
    pub stage: Option<String>,
    /// `--region`; also what `${opt:region}` returns. Overrides `provider.region`.
    pub region: Option<String>,
    /// Other CLI options, for `${opt:name}` (`stage`/`region` here are honoured
    /// too when the fields above are unset).
    pub cli_options: BTreeMap<String, String>,
    /// `--param name=value` pairs, for `${param:name}` (before `params:`).
    pub params: BTreeMap<String, String>,
    /// The environment seen by `${env:NAME}`. Tests pass their own; the CLI
    /// passes the process environment ([`Options::with_process_env`]).
    pub env: BTreeMap<String, String>,
    /// Unknown keys are errors (as with `configValidationMode: error`).
    pub strict: bool,
    /// The value of `${sls:instanceId}`; random per load when unset.
    pub instance_id: Option<String>,
}

impl Options {
    /// These options with [`Options::env`] set to the process environment
    /// (variables whose name or value is not UTF-8 are left out).
    pub fn with_process_env(mut self) -> Self {
        self.env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        self
    }
}

/// A loaded service.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The resolved service.
    pub service: Service,
    /// Warnings and notes, in file order (never errors).
    pub warnings: Vec<Diagnostic>,
    /// The configuration file read.
    pub config_file: PathBuf,
    /// The service directory: `file(…)` paths and packaging are relative to it.
    pub service_dir: PathBuf,
}

/// Loads the service whose configuration is `path_or_dir`: a file, or a
/// directory holding `serverless.yml`, `serverless.yaml` or `serverless.json`.
/// The service directory is the directory holding the file.
pub fn load(path_or_dir: &Path, opts: &Options) -> Result<Loaded, ManifestError> {
    let source = read_config(path_or_dir)?;
    let service = load_str(
        &source.text,
        source.display,
        source.is_json,
        &source.service_dir,
        opts,
    )?;
    Ok(Loaded {
        service: service.0,
        warnings: service.1,
        config_file: source.config_file,
        service_dir: source.service_dir,
    })
}

/// A configuration file read from disk.
struct Source {
    config_file: PathBuf,
    service_dir: PathBuf,
    text: String,
    /// The file name used in positions.
    display: Arc<str>,
    is_json: bool,
}

/// Finds and reads the configuration file for `path_or_dir`.
fn read_config(path_or_dir: &Path) -> Result<Source, ManifestError> {
    let config_file = find_config(path_or_dir)?;
    let service_dir = config_file
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let text = std::fs::read_to_string(&config_file).map_err(|source| ManifestError::Read {
        path: config_file.clone(),
        source,
    })?;
    let display: Arc<str> = config_file
        .file_name()
        .map_or_else(|| config_file.to_string_lossy(), |n| n.to_string_lossy())
        .into();
    let is_json = config_file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    Ok(Source {
        config_file,
        service_dir,
        text,
        display,
        is_json,
    })
}

/// Loads a service from configuration text. `file` is the name used in
/// positions; `service_dir` is where `file(…)` paths start.
pub fn load_str(
    text: &str,
    file: Arc<str>,
    is_json: bool,
    service_dir: &Path,
    opts: &Options,
) -> Result<(Service, Vec<Diagnostic>), ManifestError> {
    let root = if is_json {
        spanned::parse_json(text, file)?
    } else {
        spanned::parse_yaml(text, file)?
    };
    let resolved = vars::resolve(root, service_dir, opts)?;
    let (config, mut checker) = schema::read(&resolved.root, opts.strict);
    let service = match config {
        Some(config) if !checker.has_errors() => {
            Some(model::lower(config, &resolved.stage, opts, &mut checker))
        }
        _ => None,
    };
    let mut diagnostics = resolved.warnings;
    diagnostics.append(&mut checker.diagnostics);
    // File order; stable, so equal positions keep the order found.
    diagnostics.sort_by(|a, b| a.span.cmp(&b.span));
    let (errors, warnings): (Vec<_>, Vec<_>) = diagnostics
        .into_iter()
        .partition(|d| d.severity == Severity::Error);
    match service {
        Some(service) if errors.is_empty() => Ok((service, warnings)),
        _ => Err(ManifestError::Invalid(Diagnostics(errors))),
    }
}

/// The configuration file for `path_or_dir`.
pub fn find_config(path_or_dir: &Path) -> Result<PathBuf, ManifestError> {
    if path_or_dir.is_dir() {
        CONFIG_FILE_NAMES
            .iter()
            .map(|name| path_or_dir.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| ManifestError::NotFound {
                dir: path_or_dir.to_path_buf(),
            })
    } else {
        Ok(path_or_dir.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const MINIMAL: &str = "service: svc\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  f:\n    handler: h.f\n";

    fn opts() -> Options {
        Options {
            instance_id: Some("id".into()),
            ..Options::default()
        }
    }

    #[test]
    fn directory_lookup_prefers_yml_then_yaml_then_json() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("serverless.json"), "{}").unwrap();
        assert_eq!(
            find_config(dir.path()).unwrap(),
            dir.path().join("serverless.json")
        );
        fs::write(dir.path().join("serverless.yaml"), MINIMAL).unwrap();
        assert_eq!(
            find_config(dir.path()).unwrap(),
            dir.path().join("serverless.yaml")
        );
        fs::write(dir.path().join("serverless.yml"), MINIMAL).unwrap();
        let loaded = load(dir.path(), &opts()).unwrap();
        assert_eq!(loaded.config_file, dir.path().join("serverless.yml"));
        assert_eq!(loaded.service_dir, dir.path());
        assert_eq!(loaded.service.functions["f"].name, "svc-dev-f");
    }

    #[test]
    fn empty_directory_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(dir.path(), &opts()).unwrap_err();
        assert!(matches!(e, ManifestError::NotFound { .. }));
        assert!(e
            .to_string()
            .starts_with("no serverless.yml, serverless.yaml or serverless.json in "));
    }

    #[test]
    fn explicit_file_names_its_own_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("conf")).unwrap();
        fs::write(
            dir.path().join("conf/other.yml"),
            MINIMAL.replace("svc", "svc-${file(./suffix.txt)}"),
        )
        .unwrap();
        fs::write(dir.path().join("conf/suffix.txt"), "abc").unwrap();
        let loaded = load(&dir.path().join("conf/other.yml"), &opts()).unwrap();
        assert_eq!(loaded.service.service, "svc-abc");
        assert_eq!(loaded.service_dir, dir.path().join("conf"));
    }

    #[test]
    fn unreadable_file_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(&dir.path().join("missing.yml"), &opts()).unwrap_err();
        assert!(matches!(e, ManifestError::Read { .. }), "{e}");
    }

    #[test]
    fn cycles_through_included_files_name_each_step() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("serverless.yml"),
            format!("{MINIMAL}custom: ${{file(./a.yml)}}\n"),
        )
        .unwrap();
        fs::write(dir.path().join("a.yml"), "x: ${self:custom.x}\n").unwrap();
        let e = load(dir.path(), &opts()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "serverless.yml:8:9: custom: variable cycle: self:custom -> file(a.yml):x -> self:custom"
        );
    }

    #[test]
    fn included_files_resolve_self_against_the_service() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("serverless.yml"),
            format!("{MINIMAL}custom:\n  name: ${{self:service}}\n  inc: ${{file(./a.yml):greeting}}\n  whole: ${{file(./a.yml)}}\n"),
        )
        .unwrap();
        fs::write(
            dir.path().join("a.yml"),
            "greeting: hi-${self:custom.name}\nn: 1\n",
        )
        .unwrap();
        let loaded = load(dir.path(), &opts()).unwrap();
        assert_eq!(loaded.service.custom["inc"], "hi-svc");
        assert_eq!(loaded.service.custom["whole"]["n"], 1);
    }

    #[test]
    fn javascript_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("serverless.yml"),
            format!("{MINIMAL}custom: ${{file(./config.js):value}}\n"),
        )
        .unwrap();
        fs::write(dir.path().join("config.js"), "module.exports = {}").unwrap();
        let e = load(dir.path(), &opts()).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "config.js: JavaScript files are not supported by Stratus; use a YAML or JSON file"
            ),
            "{e}"
        );
    }

    #[test]
    fn warnings_are_sorted_and_errors_listed_together() {
        let (service, warnings) = load_str(
            "service: svc\nzzz: 1\nprovider:\n  name: aws\n  aaa: 2\n",
            "serverless.yml".into(),
            false,
            Path::new("."),
            &opts(),
        )
        .unwrap();
        assert!(service.functions.is_empty());
        let lines: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "serverless.yml:2:1: zzz: unknown key `zzz`",
                "serverless.yml:5:3: provider.aaa: unknown key `aaa`",
            ]
        );
        let e = load_str(
            "service: svc\nprovider:\n  name: aws\n  timeout: 0\n  memorySize: 1\n",
            "serverless.yml".into(),
            false,
            Path::new("."),
            &Options {
                strict: true,
                ..opts()
            },
        )
        .unwrap_err();
        assert_eq!(e.diagnostics().len(), 2);
    }

    #[test]
    fn process_environment_is_read_on_request() {
        let o = Options::default().with_process_env();
        assert!(o.env.contains_key("PATH") || std::env::var_os("PATH").is_none());
    }
}
