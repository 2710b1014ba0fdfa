//! Deterministic zip writing: the same input files always give byte-identical archives.
//!
//! Entries are sorted by name, every entry gets the timestamp 1980-01-01 00:00:00, unix
//! permissions are normalized to `0o644` (or `0o755` when the owner may execute the source
//! file), compression is deflate at a fixed level, and no extra fields (such as extended
//! timestamps) are written. Only regular files are stored; directories are implied by the
//! entry names.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Cursor};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipWriter};

/// Deflate level used for every entry (fixed so output does not depend on crate defaults).
const DEFLATE_LEVEL: i64 = 6;

/// Errors from [`zip_dir`] and [`zip_files`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZipWriteError {
    /// The directory tree given to [`zip_dir`] could not be listed.
    #[error(transparent)]
    Walk(#[from] crate::walk::WalkError),
    /// An entry name given to [`zip_files`] is not a clean relative path.
    #[error("invalid zip entry name '{name}': {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two entries given to [`zip_files`] have the same name.
    #[error("duplicate zip entry name '{name}'")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// The source of an entry given to [`zip_files`] is not a regular file.
    #[error("source {path} of zip entry '{name}' is not a regular file")]
    NotAFile {
        /// Entry name.
        name: String,
        /// Source path.
        path: PathBuf,
    },
    /// A source file could not be opened or read.
    #[error("could not read {path} for zip entry '{name}': {source}")]
    ReadFile {
        /// Entry name.
        name: String,
        /// Source path.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// The zip writer refused to start an entry.
    #[error("could not add zip entry '{name}': {source}")]
    AddEntry {
        /// Entry name.
        name: String,
        /// Underlying zip error.
        source: zip::result::ZipError,
    },
    /// The archive's central directory could not be written.
    #[error("could not finish zip archive: {source}")]
    Finish {
        /// Underlying zip error.
        source: zip::result::ZipError,
    },
}

/// Zips every regular file under `dir`, recursively, with names relative to `dir`.
///
/// Symlinks are followed while their target stays inside `dir` (a linked file's content
/// is stored; a linked directory is walked unless it loops); links leading outside,
/// dangling links, sockets, FIFOs and device files are skipped. Empty directories are not stored. File names must be UTF-8.
pub fn zip_dir(dir: &Path) -> Result<Vec<u8>, ZipWriteError> {
    // The same walker file selection uses: symlinks are followed while they stay
    // inside `dir`, loops and dangling links are skipped.
    let (files, _skipped) = crate::walk::walk(dir, "")?;
    let entries: Vec<(String, PathBuf)> = files.into_iter().map(|f| (f.rel, f.source)).collect();
    zip_files(&entries)
}

/// Zips the given files deterministically.
///
/// Each entry is `(name, source)`: `name` is the path inside the archive with `/`
/// separators (relative, no `.`/`..`/empty components, no backslashes), `source` is a
/// regular file (symlinks are followed). Order of `entries` does not matter: entries are
/// sorted by name.
pub fn zip_files(entries: &[(String, PathBuf)]) -> Result<Vec<u8>, ZipWriteError> {
    let mut sorted: BTreeMap<&str, &Path> = BTreeMap::new();
    for (name, source) in entries {
        validate_name(name)?;
        if sorted.insert(name.as_str(), source.as_path()).is_some() {
            return Err(ZipWriteError::DuplicateName { name: name.clone() });
        }
    }

    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, source) in sorted {
        let read_err = |source_err: io::Error| ZipWriteError::ReadFile {
            name: name.to_owned(),
            path: source.to_path_buf(),
            source: source_err,
        };
        let mut file = File::open(source).map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Err(ZipWriteError::NotAFile {
                name: name.to_owned(),
                path: source.to_path_buf(),
            });
        }
        let permissions = if meta.permissions().mode() & 0o100 != 0 {
            0o755
        } else {
            0o644
        };
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(DEFLATE_LEVEL))
            .last_modified_time(DateTime::DEFAULT)
            .system(System::Unix)
            .unix_permissions(permissions)
            .large_file(meta.len() >= u64::from(u32::MAX));
        writer
            .start_file(name, options)
            .map_err(|source| ZipWriteError::AddEntry {
                name: name.to_owned(),
                source,
            })?;
        io::copy(&mut file, &mut writer).map_err(read_err)?;
    }
    let cursor = writer
        .finish()
        .map_err(|source| ZipWriteError::Finish { source })?;
    Ok(cursor.into_inner())
}

/// Checks that `name` is a clean relative path with `/` separators.
fn validate_name(name: &str) -> Result<(), ZipWriteError> {
    let reason = if name.is_empty() {
        Some("name is empty")
    } else if name.contains('\0') {
        Some("name contains a NUL byte")
    } else if name.contains('\\') {
        Some("name contains a backslash; use '/' as separator")
    } else if name.starts_with('/') {
        Some("name is an absolute path")
    } else if name.ends_with('/') {
        Some("name ends with '/'; only files are stored")
    } else if name.split('/').any(str::is_empty) {
        Some("name contains an empty path component")
    } else if name.split('/').any(|c| c == "." || c == "..") {
        Some("name contains a '.' or '..' component")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ZipWriteError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256_hex;
    use std::fs;
    use std::io::Read;
    use std::time::{Duration, SystemTime};

    fn write(path: &Path, content: &[u8], mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn sample_tree(root: &Path) {
        write(&root.join("bootstrap"), b"#!/bin/sh\necho hi\n", 0o700);
        write(&root.join("lib/a.txt"), b"aaaa", 0o600);
        write(&root.join("lib/deep/b.bin"), &[7u8; 10_000], 0o644);
        write(&root.join("z.txt"), b"zzz", 0o664);
        fs::create_dir_all(root.join("empty")).unwrap();
    }

    fn names_and_modes(zip: &[u8]) -> Vec<(String, u32, bool)> {
        let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        (0..archive.len())
            .map(|i| {
                let f = archive.by_index(i).unwrap();
                let dt = f.last_modified().unwrap();
                let epoch = (dt.year(), dt.month(), dt.day(), dt.hour(), dt.minute());
                (
                    f.name().unwrap().to_string(),
                    f.unix_mode().unwrap(),
                    epoch == (1980, 1, 1, 0, 0) && f.extra_data().is_none_or(|e| e.is_empty()),
                )
            })
            .collect()
    }

    #[test]
    fn zip_dir_sorted_normalized() {
        let dir = tempfile::tempdir().unwrap();
        sample_tree(dir.path());
        let zip = zip_dir(dir.path()).unwrap();
        let entries = names_and_modes(&zip);
        assert_eq!(
            entries,
            vec![
                ("bootstrap".to_owned(), 0o100755, true),
                ("lib/a.txt".to_owned(), 0o100644, true),
                ("lib/deep/b.bin".to_owned(), 0o100644, true),
                ("z.txt".to_owned(), 0o100644, true),
            ]
        );
        let mut archive = zip::ZipArchive::new(Cursor::new(&zip)).unwrap();
        let mut content = Vec::new();
        archive
            .by_name("lib/deep/b.bin")
            .unwrap()
            .read_to_end(&mut content)
            .unwrap();
        assert_eq!(content, vec![7u8; 10_000]);
        assert_eq!(
            archive.by_name("lib/deep/b.bin").unwrap().compression(),
            CompressionMethod::Deflated
        );
    }

    #[test]
    fn deterministic_regardless_of_mtime_and_dir_location() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        sample_tree(a.path());
        let first = zip_dir(a.path()).unwrap();
        let again = zip_dir(a.path()).unwrap();
        assert_eq!(first, again);

        // Same content elsewhere, written later, with different mtimes and group/other bits.
        std::thread::sleep(Duration::from_millis(20));
        sample_tree(b.path());
        fs::set_permissions(
            b.path().join("lib/a.txt"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        File::options()
            .write(true)
            .open(b.path().join("z.txt"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let second = zip_dir(b.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(sha256_hex(&first), sha256_hex(&second));
    }

    #[test]
    fn zip_files_order_independent_and_validated() {
        let dir = tempfile::tempdir().unwrap();
        sample_tree(dir.path());
        let p = |s: &str| dir.path().join(s);
        let forward = vec![
            ("a/x".to_owned(), p("z.txt")),
            ("b".to_owned(), p("lib/a.txt")),
        ];
        let backward: Vec<_> = forward.iter().rev().cloned().collect();
        assert_eq!(zip_files(&forward).unwrap(), zip_files(&backward).unwrap());

        for bad in ["", "/abs", "a/../b", "a\\b", "dir/", "a//b", "./a", "nul\0"] {
            let err = zip_files(&[(bad.to_owned(), p("z.txt"))]).unwrap_err();
            assert!(
                matches!(err, ZipWriteError::InvalidName { .. }),
                "{bad:?}: {err}"
            );
        }
        let err =
            zip_files(&[("x".to_owned(), p("z.txt")), ("x".to_owned(), p("z.txt"))]).unwrap_err();
        assert!(matches!(err, ZipWriteError::DuplicateName { .. }), "{err}");
        let err = zip_files(&[("x".to_owned(), p("lib"))]).unwrap_err();
        assert!(matches!(err, ZipWriteError::NotAFile { .. }), "{err}");
        let err = zip_files(&[("x".to_owned(), p("missing"))]).unwrap_err();
        assert!(err.to_string().contains("'x'"), "{err}");
    }

    #[test]
    fn symlinks_followed_to_files_only() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("real.txt"), b"real", 0o644);
        std::os::unix::fs::symlink("real.txt", dir.path().join("link.txt")).unwrap();
        std::os::unix::fs::symlink(".", dir.path().join("loop")).unwrap();
        std::os::unix::fs::symlink("nowhere", dir.path().join("dangling")).unwrap();
        let zip = zip_dir(dir.path()).unwrap();
        let names: Vec<_> = names_and_modes(&zip).into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec!["link.txt", "real.txt"]);
    }

    #[test]
    fn empty_dir_gives_valid_empty_zip() {
        let dir = tempfile::tempdir().unwrap();
        let zip = zip_dir(dir.path()).unwrap();
        assert_eq!(zip::ZipArchive::new(Cursor::new(&zip)).unwrap().len(), 0);
        let err = zip_dir(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, ZipWriteError::Walk(_)), "{err}");
        assert!(
            err.to_string().contains("missing"),
            "the error names the directory: {err}"
        );
    }
}
