//! Content-addressed blob storage: bytes stored under their SHA-256.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hash::{is_sha256_hex, sha256_hex};

/// Errors from [`BlobStore`] operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The store's directory (or a shard directory) could not be created.
    #[error("could not create blob store directory {path}: {source}")]
    CreateDir {
        /// Directory that could not be created.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// A hash given by the caller is not 64 lowercase hex characters.
    #[error("invalid blob hash '{hash}': expected 64 lowercase hex characters")]
    InvalidHash {
        /// The rejected hash string.
        hash: String,
    },
    /// No blob with this hash is stored.
    #[error("blob {hash} not found in the blob store")]
    NotFound {
        /// Hash that was looked up.
        hash: String,
    },
    /// A stored blob could not be read.
    #[error("could not read blob {path}: {source}")]
    Read {
        /// Path of the blob file.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// The temporary file for a new blob could not be created, written or synced.
    #[error("could not write temporary blob file {path}: {source}")]
    Write {
        /// Path of the temporary file.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// The fully written temporary file could not be renamed to its final path.
    #[error("could not move blob into place at {path}: {source}")]
    Rename {
        /// Final path of the blob.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
}

/// A directory of immutable blobs addressed by their SHA-256.
///
/// A blob with hash `h` lives at `root/sha256/<h[0..2]>/<h>`. Writes are atomic (temporary
/// file in the same directory, fsync, rename), so readers never see a partial blob, and
/// concurrent writers of the same content are harmless.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// Distinguishes temporary files created by concurrent `put` calls in one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl BlobStore {
    /// Opens (creating if needed) a blob store rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, BlobError> {
        let root = root.as_ref().to_path_buf();
        let objects = root.join("sha256");
        fs::create_dir_all(&objects).map_err(|source| BlobError::CreateDir {
            path: objects,
            source,
        })?;
        Ok(Self { root })
    }

    /// The directory this store was opened at.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores `bytes` and returns their SHA-256 as lowercase hex.
    ///
    /// If a blob with the same hash is already stored it is left untouched.
    pub fn put(&self, bytes: &[u8]) -> Result<String, BlobError> {
        let hash = sha256_hex(bytes);
        let path = self.path(&hash)?;
        if path.is_file() {
            return Ok(hash);
        }
        let shard = self.root.join("sha256").join(&hash[..2]);
        fs::create_dir_all(&shard).map_err(|source| BlobError::CreateDir {
            path: shard.clone(),
            source,
        })?;

        let (tmp_path, mut file) = create_temp_file(&shard, &hash)?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|source| BlobError::Write {
                path: tmp_path.clone(),
                source,
            });
        drop(file);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp_path);
            return Err(e);
        }
        if let Err(source) = fs::rename(&tmp_path, &path) {
            let _ = fs::remove_file(&tmp_path);
            return Err(BlobError::Rename { path, source });
        }
        // Make the rename itself durable. Failing to sync the directory does not make the
        // blob wrong, only possibly lost on power failure, so it is not an error.
        if let Ok(dir) = File::open(&shard) {
            let _ = dir.sync_all();
        }
        Ok(hash)
    }

    /// The path at which the blob with hash `hash` is (or would be) stored.
    ///
    /// Fails if `hash` is not 64 lowercase hex characters.
    pub fn path(&self, hash: &str) -> Result<PathBuf, BlobError> {
        if !is_sha256_hex(hash) {
            return Err(BlobError::InvalidHash {
                hash: hash.to_owned(),
            });
        }
        Ok(self.root.join("sha256").join(&hash[..2]).join(hash))
    }

    /// Returns true if a blob with hash `hash` is stored. An invalid hash is never stored.
    pub fn contains(&self, hash: &str) -> bool {
        self.path(hash).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Reads the blob with hash `hash`.
    ///
    /// The content is not re-hashed; blobs are only ever written under their own hash.
    pub fn get(&self, hash: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.path(hash)?;
        fs::read(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                BlobError::NotFound {
                    hash: hash.to_owned(),
                }
            } else {
                BlobError::Read { path, source }
            }
        })
    }
}

/// Creates a new, uniquely named temporary file in `dir`.
fn create_temp_file(dir: &Path, hash: &str) -> Result<(PathBuf, File), BlobError> {
    loop {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{hash}.tmp-{}-{n}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            // Left over by a crashed process that had the same pid; pick another name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(BlobError::Write { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_contains() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs")).unwrap();
        let hash = store.put(b"hello world").unwrap();
        assert_eq!(hash, sha256_hex(b"hello world"));
        assert!(store.contains(&hash));
        assert_eq!(store.get(&hash).unwrap(), b"hello world");
        let path = store.path(&hash).unwrap();
        assert_eq!(
            path,
            dir.path().join("blobs/sha256").join(&hash[..2]).join(&hash)
        );
        assert!(path.is_file());

        let missing = sha256_hex(b"missing");
        assert!(!store.contains(&missing));
        let err = store.get(&missing).unwrap_err();
        assert!(matches!(err, BlobError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains(&missing));
    }

    #[test]
    fn put_is_idempotent_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let h1 = store.put(b"same").unwrap();
        let path = store.path(&h1).unwrap();
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let h2 = store.put(b"same").unwrap();
        assert_eq!(h1, h2);
        // Not rewritten.
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(&h1)]);
    }

    #[test]
    fn empty_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let h = store.put(b"").unwrap();
        assert_eq!(store.get(&h).unwrap(), b"");
    }

    #[test]
    fn bad_hex_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let upper = sha256_hex(b"x").to_uppercase();
        for bad in [
            "",
            "abc",
            "../../../../etc/passwd",
            upper.as_str(),
            "../aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            let err = store.path(bad).unwrap_err();
            assert!(matches!(err, BlobError::InvalidHash { .. }), "{err}");
            assert!(err.to_string().contains("64 lowercase hex"), "{err}");
            assert!(!store.contains(bad));
            assert!(matches!(store.get(bad), Err(BlobError::InvalidHash { .. })));
        }
    }
}
