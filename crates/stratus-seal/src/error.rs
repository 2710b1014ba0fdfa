//! The errors of sealing: [`SealError`] for start-up, key handling and sealing,
//! [`OpenError`] for a sealed value that cannot be opened.

use std::path::PathBuf;

/// A sealed value that cannot be opened. None of these is ever answered with
/// garbage: AES-GCM authenticates every byte and the place the value belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than the header and tag of any sealed value.
    #[error("sealed value is truncated ({len} bytes)")]
    Truncated {
        /// Its length.
        len: usize,
    },
    /// A format version this build does not know.
    #[error("sealed value has unknown format version {0}")]
    Version(u8),
    /// Sealed under a data key this data dir does not have.
    #[error("sealed value names data key {0}, which this data dir does not have")]
    UnknownKey(u32),
    /// The authentication tag does not match: the value was altered, moved from
    /// the place it was sealed for, or sealed under another key.
    #[error("sealed value failed authentication (altered, moved from its place, or sealed under another key)")]
    Forged,
}

/// Failures of keys and of sealing.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The master key file could not be read, created or replaced.
    #[error("master key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The master key file may be read or written by group or others.
    #[error("master key file {path} has mode {mode:04o}: it must be readable by its owner only; run `chmod 600 {path}`")]
    KeyFileMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The master key (file or environment variable) is not 32 bytes in base64.
    #[error("master key from {source_name} is invalid: {reason}")]
    BadKey {
        /// Where it came from.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The master key does not open the data keys of this data dir.
    #[error("the master key from {source_name} does not match this data dir (data key {key_id} cannot be unwrapped): it is not the key this data dir was sealed with")]
    WrongMasterKey {
        /// Where the key came from.
        source_name: String,
        /// The first data key it failed on.
        key_id: u32,
    },
    /// The master key does not open a data key shared by a cluster.
    #[error("the master key from {source_name} does not open shared data key {key_id} stored in {store}: every node of a cluster must be given the same STRATUS_MASTER_KEY")]
    WrongSharedKey {
        /// Where the key came from.
        source_name: String,
        /// Where the shared keys are stored.
        store: String,
        /// The first data key it failed on.
        key_id: u32,
    },
    /// No shared data key is stored.
    #[error("no shared data key is stored in {store}")]
    NoSharedKeys {
        /// Where the shared keys are stored.
        store: String,
    },
    /// The data dir has sealed data keys but no master key.
    #[error("{path} is missing but this data dir holds data keys sealed by a master key: restore the key file or set STRATUS_MASTER_KEY")]
    MissingMasterKey {
        /// The expected key file.
        path: PathBuf,
    },
    /// The key table could not be read or written.
    #[error("key table in {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A stored data key is unreadable.
    #[error("data key {key_id} is stored in an unknown form")]
    CorruptKey {
        /// Its id.
        key_id: u32,
    },
    /// The OS random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
    /// Encryption failed (only for values far beyond any size Stratus stores).
    #[error("cannot seal a value of {len} bytes")]
    Seal {
        /// Its length.
        len: usize,
    },
    /// Another process (a running server) holds the data dir.
    #[error("{path} is in use by a running Stratus server (pid {pid}); stop it first")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The pid written in the lock file, as far as known.
        pid: String,
    },
    /// The lock file could not be opened.
    #[error("lock file {path}: {source}")]
    LockFile {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
}
