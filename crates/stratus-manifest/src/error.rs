//! What `load` reports: [`ManifestError`] when the service cannot be loaded, and
//! [`Diagnostic`]s (warnings and notes in [`crate::Loaded`], errors inside
//! [`ManifestError::Invalid`]), each with the file, line and column it is about
//! and the dotted path of the key (`functions.hello.timeout`).

use std::path::PathBuf;

pub use crate::diagnostic::{Diagnostic, Diagnostics, Severity};
use crate::spanned::ParseError;
use crate::vars::VarError;

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
