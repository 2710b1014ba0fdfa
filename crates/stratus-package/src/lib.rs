//! `stratus-package` owns everything Stratus does with function code packages:
//!
//! * **File selection** ([`select_files`], [`select_function_files`]): Serverless Framework v3
//!   `package.patterns` semantics with its default excludes, symlinks followed only inside
//!   the service directory, sorted output.
//! * **Dependencies**: a Node service's production `node_modules` without devDependencies,
//!   read from npm's lockfile or the installed tree ([`node_production_files`]); a Python
//!   service's `requirements.txt` installed with the real pip into a content-keyed cache,
//!   like serverless-python-requirements ([`install_python_requirements`]).
//! * **Native code checks** ([`check_native`]): binaries and wheels built for another OS or
//!   architecture than the function's, reported as warnings.
//! * **Deterministic zips** ([`zip_dir`], [`zip_files`]): the same input
//!   files always produce byte-identical archives (sorted entries, fixed timestamps,
//!   normalized permissions, fixed compression level), so content hashes are stable.
//! * **Content hashes** ([`sha256`], [`sha256_hex`]): the SHA-256 identity of a package.
//! * **Content-addressed blob storage** ([`BlobStore`]): packages stored by their SHA-256
//!   under `root/sha256/<first two hex chars>/<hex>`, written atomically.
//! * **Safe unzip** ([`safe_unzip`], [`unpack_once`]): extraction of untrusted user archives
//!   that rejects path traversal, escaping symlinks, zip bombs and malformed input with
//!   messages that name the offending entry, and produces a read-only tree the way AWS
//!   Lambda presents `/var/task`. [`remove_tree`] deletes such read-only trees.
//!
//! Error messages are meant to be shown to users (the server returns them in
//! `InvalidParameterValueException`), so they say what is wrong and with which entry.

pub mod blob;
pub mod hash;
pub mod native;
pub mod node_deps;
pub mod python_deps;
pub mod select;
mod selection;
pub mod unzip;
mod walk;
pub mod zipwrite;

pub use blob::{BlobError, BlobStore};
pub use hash::{is_sha256_hex, sha256, sha256_hex};
pub use native::{check_native, BinaryFormat, NativeIssue, NativeWarning, Target};
pub use node_deps::{
    node_dependencies, node_production_files, DependencySource, NodeDependencies, NodeDepsError,
};
pub use python_deps::{
    install_python_requirements, InstallOutcome, InstallReport, PythonDepsError, PythonReqOptions,
    PythonWarning, DEFAULT_SLIM_PATTERNS,
};
pub use select::{
    select_files, select_function_files, SelectError, SelectOptions, CONFIG_FILE_NAMES,
    DEFAULT_EXCLUDES,
};
pub use selection::{merge_files, zip_entries, SelectWarning, SelectedFile, Selection};
pub use unzip::{remove_tree, safe_unzip, unpack_once, Limits, UnzipError, UnzipSummary};
pub use walk::WalkError;
pub use zipwrite::{zip_dir, zip_files, ZipWriteError};
