//! `package:` — at the service level and in `functions.<name>.package`:
//! `patterns`, the older `include`/`exclude`, `individually`, `artifact`, and
//! (service only) `excludeDevDependencies`.

use crate::spanned::Node;

use super::reader::{boolean, non_empty_string, string_list, Checker, Fields};

/// `package:` (service or function).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageConfig {
    /// `patterns: ['src/**', '!**/*.test.js']`, after the older
    /// `exclude` (each negated) and `include` entries.
    pub patterns: Vec<String>,
    /// `individually: true`.
    pub individually: Option<bool>,
    /// `artifact: dist/app.zip`.
    pub artifact: Option<String>,
    /// `excludeDevDependencies: false` (service only).
    pub exclude_dev_dependencies: Option<bool>,
}

pub(super) fn package(
    c: &mut Checker,
    node: &Node,
    path: &str,
    service_level: bool,
) -> PackageConfig {
    let mut out = PackageConfig::default();
    let Some(mut f) = Fields::new(
        c,
        node,
        path,
        "a map with `patterns`, `individually` or `artifact`",
    ) else {
        return out;
    };
    let key_span = |k: &str| {
        node.as_map()
            .and_then(|es| es.iter().find(|e| e.key == k))
            .map(|e| e.key_span.clone())
    };
    if let Some(n) = f.get("exclude") {
        let p = f.path_of("exclude");
        if let Some(span) = key_span("exclude") {
            c.warn(
                &span,
                &p,
                "deprecated: use `patterns` with `!pattern` entries; read as such",
            );
        }
        if let Some(list) = string_list(c, n, &p) {
            out.patterns
                .extend(list.into_iter().map(|s| format!("!{s}")));
        }
    }
    if let Some(n) = f.get("include") {
        let p = f.path_of("include");
        if let Some(span) = key_span("include") {
            c.warn(&span, &p, "deprecated: use `patterns`; read as such");
        }
        if let Some(list) = string_list(c, n, &p) {
            out.patterns.extend(list);
        }
    }
    if let Some(n) = f.get("patterns") {
        if let Some(list) = string_list(c, n, &f.path_of("patterns")) {
            out.patterns.extend(list);
        }
    }
    out.individually = f
        .get("individually")
        .and_then(|n| boolean(c, n, &f.path_of("individually")));
    out.artifact = f
        .get("artifact")
        .and_then(|n| non_empty_string(c, n, &f.path_of("artifact")));
    if service_level {
        out.exclude_dev_dependencies = f
            .get("excludeDevDependencies")
            .and_then(|n| boolean(c, n, &f.path_of("excludeDevDependencies")));
    }
    f.finish(c, &[]);
    out
}
