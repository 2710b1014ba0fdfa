//! The master key: where it comes from (`STRATUS_MASTER_KEY` or
//! `{data-dir}/master.key`), its owner-only file, and replacing that file
//! atomically (write a new file, fsync, rename, fsync the directory).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::error::SealError;

/// The environment variable that carries the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "STRATUS_MASTER_KEY";

/// The key file's name in the data dir.
pub const MASTER_KEY_FILE: &str = "master.key";

/// A 256-bit master key. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct MasterKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A new random key from the OS RNG.
    pub fn generate() -> Result<Self, SealError> {
        let mut k = [0u8; 32];
        random(&mut k)?;
        Ok(Self(k))
    }

    /// Parses the base64 form (`source_name` says where it came from, for errors).
    pub fn from_base64(text: &str, source_name: &str) -> Result<Self, SealError> {
        let bad = |reason: String| SealError::BadKey {
            source_name: source_name.to_string(),
            reason,
        };
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| bad(format!("not base64: {e}")))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| bad(format!("{} bytes, a key is 32", b.len())))?;
        Ok(Self(key))
    }

    /// The base64 form (what the key file and `STRATUS_MASTER_KEY` hold).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }
}

/// Fills `buf` from the OS RNG.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), SealError> {
    OsRng
        .try_fill_bytes(buf)
        .map_err(|e| SealError::Random(e.to_string()))
}

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `{data-dir}/master.key` (created at first start).
    File(PathBuf),
    /// The value of `STRATUS_MASTER_KEY` (base64).
    Env(String),
}

impl KeySource {
    /// The environment variable when set (and not empty), else the data dir's file.
    pub fn for_data_dir(dir: &Path, env_value: Option<String>) -> Self {
        match env_value.filter(|v| !v.trim().is_empty()) {
            Some(v) => Self::Env(v),
            None => Self::File(dir.join(MASTER_KEY_FILE)),
        }
    }

    /// How errors name it.
    pub fn name(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Env(_) => MASTER_KEY_ENV.to_string(),
        }
    }

    /// Reads the key; `None` when the file does not exist.
    pub(crate) fn read(&self) -> Result<Option<MasterKey>, SealError> {
        match self {
            Self::Env(v) => MasterKey::from_base64(v, MASTER_KEY_ENV).map(Some),
            Self::File(path) => read_key_file(path),
        }
    }
}

/// Reads a key file, refusing one that group or others may read or write.
pub(crate) fn read_key_file(path: &Path) -> Result<Option<MasterKey>, SealError> {
    let io = |source| SealError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SealError::KeyFileMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(io)?;
    MasterKey::from_base64(&text, &path.display().to_string()).map(Some)
}

/// Writes `key` to `path` atomically: a new file (mode 0600) beside it, fsync'd,
/// renamed over `path`, and the directory fsync'd so the rename survives a crash.
pub(crate) fn write_key_file(path: &Path, key: &MasterKey) -> Result<(), SealError> {
    let tmp = pending_path(path);
    write_new(&tmp, key)?;
    fs::rename(&tmp, path).map_err(|source| SealError::KeyFile {
        path: path.to_path_buf(),
        source,
    })?;
    sync_dir(path);
    Ok(())
}

/// Where a key being installed waits until it is renamed into place.
pub(crate) fn pending_path(path: &Path) -> PathBuf {
    path.with_extension("key.new")
}

/// Creates `path` (mode 0600, replacing a leftover) holding `key`, fsync'd.
pub(crate) fn write_new(path: &Path, key: &MasterKey) -> Result<(), SealError> {
    let io = |source| SealError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    // The umask cannot widen 0600, but a file system may ignore the mode: check.
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    f.write_all(format!("{}\n", key.to_base64()).as_bytes())
        .map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

/// fsyncs the directory holding `path` (best effort: some file systems refuse).
pub(crate) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_owner_only_and_refused_when_others_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        assert!(read_key_file(&path).unwrap().is_none());
        let key = MasterKey::generate().unwrap();
        write_key_file(&path, &key).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key_file(&path).unwrap().unwrap().0, key.0);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_key_file(&path).unwrap_err();
        assert!(matches!(err, SealError::KeyFileMode { mode: 0o640, .. }));
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn bad_keys_say_what_is_wrong() {
        let short = MasterKey::from_base64("AAAA", MASTER_KEY_ENV).unwrap_err();
        assert!(matches!(short, SealError::BadKey { .. }));
        assert!(
            short.to_string().contains("3 bytes, a key is 32"),
            "{short}"
        );
        let junk = MasterKey::from_base64("not base64!", MASTER_KEY_ENV).unwrap_err();
        assert!(junk.to_string().contains("STRATUS_MASTER_KEY"), "{junk}");
        let k = MasterKey::generate().unwrap();
        let back = MasterKey::from_base64(&k.to_base64(), "x").unwrap();
        assert_eq!(back.0, k.0);
        assert_eq!(format!("{k:?}"), "MasterKey(..)");
    }
}
