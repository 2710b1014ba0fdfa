//! [`DataDirLock`]: how a running server marks its data dir. An exclusive
//! advisory lock (`flock`) on `{data-dir}/server.lock`, holding the owner's pid for
//! the error message. The kernel drops it when the process ends, however it ends,
//! so a crashed server leaves no stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::SealError;

/// The lock file's name in the data dir.
pub const LOCK_FILE: &str = "server.lock";

/// Held while a server (or a key rotation) uses a data dir; released on drop.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the data dir's lock, or says which process holds it.
    // `File::try_lock` is newer than the workspace's declared rust-version; the
    // toolchain that builds Stratus has it, and it spares us `unsafe` flock calls.
    #[allow(clippy::incompatible_msrv)]
    pub fn acquire(dir: &Path) -> Result<Self, SealError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| SealError::LockFile {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(SealError::Locked {
                    path,
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.into()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        let pid = std::process::id().to_string();
        assert!(
            matches!(&err, SealError::Locked { pid: p, .. } if *p == pid),
            "{err}"
        );
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
