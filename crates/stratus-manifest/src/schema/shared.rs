//! What the sections share: [`Located`] values, and the readers of the settings
//! that both `provider:` and `functions.<name>:` accept (`runtime`,
//! `memorySize`, `timeout`, `ephemeralStorageSize`, `architecture`,
//! `logRetentionInDays`, `environment`, `layers`). The fields holding their
//! results, with the syntax each accepts, are in `provider` and `function`.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::spanned::{Node, Span, Value};
use crate::types::{Architecture, Runtime};

use super::reader::{is_intrinsic, text, whole, Checker, Range};

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

/// Valid `logRetentionInDays` values (CloudWatch Logs).
const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// `runtime: nodejs20.x` — one of [`Runtime::ALL`], by its Lambda id.
pub(super) fn runtime(c: &mut Checker, node: &Node, path: &str) -> Option<Runtime> {
    match node.as_str().and_then(Runtime::from_id) {
        Some(r) => Some(r),
        None => {
            let deprecated = node
                .as_str()
                .filter(|id| stratus_rules::legacy_runtime(id).is_some())
                .map(|id| format!(" ({id} is no longer supported by AWS Lambda)"))
                .unwrap_or_default();
            c.expected(
                node,
                path,
                &format!(
                    "a runtime supported by Stratus ({}){deprecated}",
                    Runtime::supported_list()
                ),
            );
            None
        }
    }
}

/// `memorySize: 512` — MB, 128–10240.
pub(super) fn memory(c: &mut Checker, node: &Node, path: &str) -> Option<u32> {
    whole(
        c,
        node,
        path,
        "a whole number of megabytes",
        Range::between(128, 10_240),
    )
}

/// `timeout: 10` — seconds, 1–900.
pub(super) fn timeout(c: &mut Checker, node: &Node, path: &str) -> Option<u32> {
    whole(
        c,
        node,
        path,
        "a whole number of seconds",
        Range::between(1, 900),
    )
}

/// `ephemeralStorageSize: 1024` — MB of `/tmp`, 512–10240.
pub(super) fn ephemeral(c: &mut Checker, node: &Node, path: &str) -> Option<u32> {
    whole(
        c,
        node,
        path,
        "a whole number of megabytes",
        Range::between(512, 10_240),
    )
}

/// `architecture: x86_64 | arm64`.
pub(super) fn architecture(c: &mut Checker, node: &Node, path: &str) -> Option<Architecture> {
    match node.as_str() {
        Some("x86_64") => Some(Architecture::X86_64),
        Some("arm64") => Some(Architecture::Arm64),
        _ => {
            c.expected(node, path, "`x86_64` or `arm64`");
            None
        }
    }
}

/// `logRetentionInDays: 14` — one of [`LOG_RETENTION_DAYS`], as a number or text.
pub(super) fn log_retention(c: &mut Checker, node: &Node, path: &str) -> Option<u32> {
    let list = LOG_RETENTION_DAYS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let what = format!("a CloudWatch retention period in days ({list})");
    let n = match &node.value {
        Value::Int(i) => u32::try_from(*i).ok(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if LOG_RETENTION_DAYS.contains(&n) => Some(n),
        _ => {
            c.expected(node, path, &what);
            None
        }
    }
}

/// `environment: {NAME: value}` — names start with a letter and hold letters,
/// digits and `_`, and are not reserved by Lambda; values become text;
/// CloudFormation functions are left out with a warning.
pub(super) fn environment(
    c: &mut Checker,
    node: &Node,
    path: &str,
) -> Option<Located<BTreeMap<String, String>>> {
    let Value::Map(entries) = &node.value else {
        c.expected(node, path, "a map of environment variables");
        return None;
    };
    let mut vars = BTreeMap::new();
    for e in entries {
        let p = format!("{path}.{}", e.key);
        if stratus_rules::is_reserved_env_var(&e.key) {
            c.error(
                &e.key_span,
                &p,
                format!("`{}` is reserved by Lambda and cannot be set", e.key),
            );
            continue;
        }
        if !stratus_rules::is_env_name(&e.key) {
            c.error(
                &e.key_span,
                &p,
                format!("invalid environment variable name `{}`: names start with a letter and contain only letters, digits and `_`", e.key),
            );
            continue;
        }
        if is_intrinsic(&e.value) {
            c.warn(
                &e.value.span,
                &p,
                "CloudFormation functions are not evaluated by Stratus; the variable is left out",
            );
            continue;
        }
        if let Some(v) = text(c, &e.value, &p) {
            vars.insert(e.key.clone(), v);
        }
    }
    Some(Located {
        value: vars,
        span: node.span.clone(),
    })
}

/// `layers: [arn, …]` — layer ARNs or CloudFormation references.
pub(super) fn layers(c: &mut Checker, node: &Node, path: &str) -> Option<Vec<Json>> {
    let Value::Seq(items) = &node.value else {
        c.expected(node, path, "a list of layer ARNs");
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match &item.value {
            Value::String(s) if s.starts_with("arn:") => out.push(item.to_json()),
            _ if is_intrinsic(item) => out.push(item.to_json()),
            _ => c.expected(item, &format!("{path}[{i}]"), "a layer ARN (arn:aws:lambda:<region>:<account>:layer:<name>:<version>) or a CloudFormation reference"),
        }
    }
    Some(out)
}
