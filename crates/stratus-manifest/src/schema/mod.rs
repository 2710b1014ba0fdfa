//! The typed schema of `serverless.yml` (Serverless Framework v3, AWS provider),
//! read from the resolved tree with every field checked. Each field documents
//! the syntax it accepts. Problems are collected (all of them, with positions)
//! rather than stopping at the first.
//!
//! Keys the schema does not know are warnings, as with the Framework's
//! `configValidationMode: warn`; errors with `configValidationMode: error` or
//! [`crate::Options::strict`]; silent with `configValidationMode: off`. Valid
//! Serverless settings that Stratus does not use (`provider.tracing`,
//! `functions.*.tracing`, …) are notes.
//!
//! One module per section: `provider` (with `http_api` for `provider.httpApi`),
//! `function` (with `events` for `functions.<name>.events`), `package`, and
//! `cors` for the `cors:` settings of an HTTP API and of a function URL;
//! `shared` holds [`Located`] and the settings both `provider:` and a function
//! accept, `reader` the typed readers and the `Checker`.
//! This module reads the top level: `service`, `frameworkVersion`,
//! `configValidationMode`, `custom` (with `custom.stratus`, in `egress`), `resources`, `plugins` and `params`.

mod autoscaling;
mod cors;
mod egress;
mod events;
mod function;
mod http_api;
mod package;
mod provider;
pub(crate) mod reader;
mod shared;

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::spanned::{Node, Value};

use reader::{string, text, Checker, Fields, UnknownKeys};

pub use autoscaling::{ConcurrencyAutoscaling, ScheduledScaling};
pub use cors::CorsSettings;
pub use egress::EgressConfig;
pub use function::FunctionConfig;
pub use http_api::HttpApiConfig;
pub use package::PackageConfig;
pub use provider::ProviderConfig;
pub use shared::Located;

use function::functions;
use package::package;
use provider::provider;

/// `configValidationMode:` — what unknown keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidationMode {
    /// `warn` (default): warnings.
    #[default]
    Warn,
    /// `error`: errors.
    Error,
    /// `off`: not reported.
    Off,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `service: my-service` — a letter, then letters, digits and hyphens. Required.
    pub service: Located<String>,
    /// `frameworkVersion: '3'` — kept as written.
    pub framework_version: Option<String>,
    /// `configValidationMode: warn | error | off`.
    pub validation_mode: ValidationMode,
    /// `provider:` — required, with `name: aws`.
    pub provider: ProviderConfig,
    /// `functions:` — a map from function key to its settings, in file order.
    pub functions: Vec<FunctionConfig>,
    /// `package:` — service-wide packaging.
    pub package: PackageConfig,
    /// `custom:` — anything; carried as JSON.
    pub custom: Option<Json>,
    /// `custom.stratus.egress` — the functions that may reach the outside.
    pub egress: EgressConfig,
    /// `resources:` — CloudFormation; carried as JSON, not deployed.
    pub resources: Option<Json>,
    /// `plugins: [name, …]` or `plugins: {localPath, modules: [name, …]}`.
    pub plugins: Vec<Located<String>>,
    /// `params: {default: {key: value}, <stage>: {key: value}}` — groups of
    /// stages other than the one loaded hold their values as written
    /// (unresolved).
    pub params: BTreeMap<String, BTreeMap<String, Json>>,
}

/// Plugins whose job Stratus does itself: a note instead of a warning.
const NATIVE_PLUGINS: &[(&str, &str)] = &[
    (
        "serverless-python-requirements",
        "honoured natively by Stratus: Python requirements are handled when packaging",
    ),
    (
        "serverless-provisioned-concurrency-autoscaling",
        "honoured natively by Stratus: `concurrencyAutoscaling` is built in",
    ),
    (
        "serverless-offline",
        "not needed: `stratus dev` serves the service locally",
    ),
];

/// Top-level settings of the Serverless Framework that Stratus accepts and
/// does not use (a note each).
const TOP_LEVEL_IGNORED: &[&str] = &[
    "app",
    "console",
    "dashboard",
    "deprecationNotificationMode",
    "disabledDeprecations",
    "layers",
    "org",
    "outputs",
    "projectDir",
    "unresolvedVariablesNotificationMode",
    "useDotenv",
    "variablesResolutionMode",
];

/// Reads the resolved tree; `strict` makes unknown keys errors whatever
/// `configValidationMode` says.
pub(crate) fn read(root: &Node, strict: bool) -> (Option<Config>, Checker) {
    let mode = validation_mode(root);
    let unknown = match (strict, mode) {
        (true, _) | (false, Some(ValidationMode::Error)) => UnknownKeys::Error,
        (false, Some(ValidationMode::Off)) => UnknownKeys::Off,
        _ => UnknownKeys::Warn,
    };
    let mut c = Checker::new(unknown);
    let config = read_config(&mut c, root, mode.unwrap_or_default());
    (config, c)
}

fn validation_mode(root: &Node) -> Option<ValidationMode> {
    match root.get("configValidationMode")?.as_str()? {
        "warn" => Some(ValidationMode::Warn),
        "error" => Some(ValidationMode::Error),
        "off" => Some(ValidationMode::Off),
        _ => None,
    }
}

fn read_config(c: &mut Checker, root: &Node, validation_mode: ValidationMode) -> Option<Config> {
    let mut f = Fields::new(
        c,
        root,
        "",
        "a map of top-level keys such as `service`, `provider` and `functions`",
    )?;

    if let Some(n) = f.get("configValidationMode") {
        let ok = matches!(n.as_str(), Some("warn" | "error" | "off"));
        if !ok {
            c.expected(n, "configValidationMode", "`warn`, `error` or `off`");
        }
    }

    let service = match f.get("service") {
        Some(n) => service_name(c, n),
        None => {
            c.error(
                &root.span,
                "service",
                "missing `service` (e.g. `service: my-service`)",
            );
            None
        }
    };
    let framework_version = f
        .get("frameworkVersion")
        .and_then(|n| text(c, n, "frameworkVersion"));
    let provider = match f.get("provider") {
        Some(n) => provider(c, n),
        None => {
            c.error(
                &root.span,
                "provider",
                "missing `provider` (e.g. `provider: {name: aws, runtime: nodejs20.x}`)",
            );
            None
        }
    };
    let functions = f
        .get("functions")
        .map(|n| functions(c, n))
        .unwrap_or_default();
    let package = f
        .get("package")
        .map(|n| package(c, n, "package", true))
        .unwrap_or_default();
    let custom_node = f.get("custom");
    let custom = custom_node.map(Node::to_json);
    let egress = custom_node
        .map(|n| egress::egress(c, n))
        .unwrap_or_default();
    let resources = f.get("resources").map(Node::to_json);
    let plugins = f.get("plugins").map(|n| plugins(c, n)).unwrap_or_default();
    let params = f.get("params").map(|n| params(c, n)).unwrap_or_default();
    f.finish(c, TOP_LEVEL_IGNORED);

    Some(Config {
        service: service?,
        framework_version,
        validation_mode,
        provider: provider?,
        functions,
        package,
        custom,
        egress,
        resources,
        plugins,
        params,
    })
}

fn service_name(c: &mut Checker, node: &Node) -> Option<Located<String>> {
    let ok = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|ch| ch.is_ascii_alphabetic())
            && s.len() >= 2
            && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
    };
    match node.as_str() {
        Some(s) if ok(s) => Some(Located {
            value: s.to_string(),
            span: node.span.clone(),
        }),
        _ => {
            c.expected(
                node,
                "service",
                "a service name: a letter, then letters, digits and hyphens",
            );
            None
        }
    }
}

fn plugins(c: &mut Checker, node: &Node) -> Vec<Located<String>> {
    let list = match &node.value {
        Value::Seq(_) => Some((node, "plugins".to_string())),
        Value::Map(_) => {
            let mut f = match Fields::new(c, node, "plugins", "a list of plugin names") {
                Some(f) => f,
                None => return Vec::new(),
            };
            let modules = f.get("modules").map(|n| (n, "plugins.modules".to_string()));
            f.get("localPath");
            f.finish(c, &[]);
            modules
        }
        _ => {
            c.expected(node, "plugins", "a list of plugin names");
            None
        }
    };
    let Some((list, path)) = list else {
        return Vec::new();
    };
    let Value::Seq(items) = &list.value else {
        c.expected(list, &path, "a list of plugin names");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(name) = string(c, item, &p) else {
            continue;
        };
        match NATIVE_PLUGINS.iter().find(|(n, _)| *n == name) {
            Some((_, why)) => c.note(&item.span, &p, format!("plugin `{name}` is not run; {why}")),
            None => c.warn(
                &item.span,
                &p,
                format!("plugin `{name}` is not run by Stratus; settings and behaviour it adds are ignored"),
            ),
        }
        out.push(Located {
            value: name,
            span: item.span.clone(),
        });
    }
    out
}

fn params(c: &mut Checker, node: &Node) -> BTreeMap<String, BTreeMap<String, Json>> {
    let mut out = BTreeMap::new();
    let Value::Map(groups) = &node.value else {
        c.expected(
            node,
            "params",
            "a map from stage (or `default`) to parameters",
        );
        return out;
    };
    for g in groups {
        let p = format!("params.{}", g.key);
        match &g.value.value {
            Value::Null => {}
            Value::Map(entries) => {
                let values = entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect();
                out.insert(g.key.clone(), values);
            }
            _ => c.expected(&g.value, &p, "a map of parameters"),
        }
    }
    out
}
