//! `stratus-package` owns everything Stratus does with function code packages:
//!
//! * **File selection and deterministic zips** ([`zip_dir`], [`zip_files`]): the same input
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
pub mod unzip;
pub mod zipwrite;

pub use blob::{BlobError, BlobStore};
pub use hash::{is_sha256_hex, sha256, sha256_hex};
pub use unzip::{remove_tree, safe_unzip, unpack_once, Limits, UnzipError, UnzipSummary};
pub use zipwrite::{zip_dir, zip_files, ZipWriteError};
