//! What `load` reports: [`ManifestError`] when the service cannot be loaded, and
//! [`Diagnostic`]s (warnings and notes in [`crate::Loaded`], errors inside
//! [`ManifestError::Invalid`]), each with the file, line and column it is about
//! and the dotted path of the key (`functions.hello.timeout`).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spanned::{ParseError, Span};
use crate::vars::VarError;

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

/// Why a service could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A directory was given and holds no configuration file.
    #[error("no serverless.yml, serverless.yaml or serverless.json in {}", dir.display())]
    NotFound {
        /// The directory searched.
        dir: PathBuf,
    },
    /// The configuration file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid YAML/JSON.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A variable could not be resolved.
    #[error(transparent)]
    Variables(#[from] VarError),
    /// The resolved configuration breaks the schema or a limit; every problem
    /// found is listed.
    #[error("{0}")]
    Invalid(Diagnostics),
}

impl ManifestError {
    /// The errors of an [`ManifestError::Invalid`], or none.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ManifestError::Invalid(d) => &d.0,
            _ => &[],
        }
    }
}
