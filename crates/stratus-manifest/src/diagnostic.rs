//! [`Diagnostic`]: one error, warning or note about a place in a configuration file,
//! displayed as `serverless.yml:12:5: functions.hello.timeout: …`. Every stage of
//! loading (variables, schema, lowering, print) reports with it; it depends on
//! nothing but positions.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::spanned::Span;

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The service is not loaded.
    Error,
    /// Loaded, but something is probably not what the author meant (an unknown
    /// key, an unsupported feature that is ignored, a deprecated form).
    Warning,
    /// For information: valid Serverless configuration that Stratus accepts and
    /// does not use, or handles its own way.
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// One finding about the configuration. Displays as
/// `serverless.yml:12:5: functions.hello.timeout: expected …, found "ten"`
/// (the severity is not part of the text; print it as the caller sees fit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Error, warning or note.
    pub severity: Severity,
    /// Where.
    pub span: Span,
    /// Dotted path of the key concerned (`functions.hello.events[0].http`);
    /// empty for the whole file.
    pub path: String,
    /// What is wrong, saying what was expected.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic.
    pub fn new(
        severity: Severity,
        span: Span,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            span,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.span, self.message)
        } else {
            write!(f, "{}: {}: {}", self.span, self.path, self.message)
        }
    }
}

/// Several errors, shown one per line in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
