//! Listing the files of a directory tree the way packaging sees them.
//!
//! Shared by [`crate::select`], [`crate::node_deps`] and [`crate::python_deps`]: every
//! regular file under a root, with `/`-separated names relative to the root. Symlinks are
//! followed only while they stay inside the root, so a package can never pick up files
//! from elsewhere on the machine (`~/.ssh`, `/etc`) through a link; links that leave the
//! root, dangling links and directory links that would loop are reported as warnings.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::selection::SelectWarning;

/// Errors from listing a directory tree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalkError {
    /// The root itself could not be resolved (missing, unreadable or not a directory).
    #[error("could not open directory {path}: {source}")]
    Root {
        /// The root that was asked for.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// A directory could not be listed.
    #[error("could not read directory {path}: {source}")]
    ReadDir {
        /// Directory being listed.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// File metadata could not be read.
    #[error("could not inspect {path}: {source}")]
    Metadata {
        /// File being inspected.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// A file name is not valid UTF-8, so it cannot become a zip entry name.
    #[error("file name {path} is not valid UTF-8; zip entry names must be UTF-8")]
    NonUtf8Name {
        /// The offending path.
        path: PathBuf,
    },
}

/// One regular file found by [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalkedFile {
    /// Path relative to the walk's root, `/`-separated.
    pub(crate) rel: String,
    /// Path on disk (through any symlinks, which reading follows).
    pub(crate) source: PathBuf,
    /// Whether the owner may execute the file (after following symlinks).
    pub(crate) executable: bool,
}

/// A directory waiting to be listed.
struct PendingDir {
    /// Path on disk, possibly through symlinks.
    path: PathBuf,
    /// Prefix of names inside it (`""` for the root, else `"a/b/"`).
    prefix: String,
    /// Canonical directories on the way here, this one last; a directory symlink to any of
    /// them would loop.
    chain: Vec<PathBuf>,
}

/// Lists every regular file under `root/start`, named relative to `root`.
///
/// `start` is a `/`-separated relative directory (`""` for the whole root). A missing
/// `start` gives an empty list. Symlinks (to files or directories) are followed when
/// their target is inside `root`; others are skipped and reported. Order is unspecified.
pub(crate) fn walk(
    root: &Path,
    start: &str,
) -> Result<(Vec<WalkedFile>, Vec<SelectWarning>), WalkError> {
    let canonical_root = root.canonicalize().map_err(|source| WalkError::Root {
        path: root.to_path_buf(),
        source,
    })?;
    if !canonical_root.is_dir() {
        return Err(WalkError::Root {
            path: root.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let mut files = Vec::new();
    let mut warnings = Vec::new();

    let start_path = if start.is_empty() {
        root.to_path_buf()
    } else {
        root.join(start)
    };
    let start_canonical = match start_path.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((files, warnings)),
        Err(source) => {
            return Err(WalkError::Metadata {
                path: start_path,
                source,
            })
        }
    };
    if !start_canonical.is_dir() {
        return Ok((files, warnings));
    }
    if !start_canonical.starts_with(&canonical_root) {
        warnings.push(SelectWarning::SymlinkOutsideService {
            path: start.to_owned(),
            target: start_canonical,
        });
        return Ok((files, warnings));
    }
    let prefix = if start.is_empty() {
        String::new()
    } else {
        format!("{start}/")
    };

    // Explicit stack instead of recursion: directory depth is user controlled.
    let mut pending = vec![PendingDir {
        path: start_path,
        prefix,
        chain: vec![start_canonical],
    }];
    while let Some(dir) = pending.pop() {
        let read_dir = fs::read_dir(&dir.path).map_err(|source| WalkError::ReadDir {
            path: dir.path.clone(),
            source,
        })?;
        for entry in read_dir {
            let entry = entry.map_err(|source| WalkError::ReadDir {
                path: dir.path.clone(),
                source,
            })?;
            let child = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(WalkError::NonUtf8Name { path: child });
            };
            let rel = format!("{}{name}", dir.prefix);
            let file_type = entry.file_type().map_err(|source| WalkError::Metadata {
                path: child.clone(),
                source,
            })?;
            if file_type.is_dir() {
                let mut chain = dir.chain.clone();
                let canonical = dir
                    .chain
                    .last()
                    .map_or_else(|| child.clone(), |p| p.join(&name));
                chain.push(canonical);
                pending.push(PendingDir {
                    path: child,
                    prefix: format!("{rel}/"),
                    chain,
                });
            } else if file_type.is_file() {
                let meta = entry.metadata().map_err(|source| WalkError::Metadata {
                    path: child.clone(),
                    source,
                })?;
                files.push(WalkedFile {
                    rel,
                    source: child,
                    executable: meta.permissions().mode() & 0o100 != 0,
                });
            } else if file_type.is_symlink() {
                follow_symlink(
                    &canonical_root,
                    &dir,
                    child,
                    rel,
                    &mut files,
                    &mut pending,
                    &mut warnings,
                )?;
            }
            // Sockets, FIFOs and devices cannot be packaged and are skipped silently, as
            // `zip_dir` does.
        }
    }
    Ok((files, warnings))
}

/// Handles one symlink found while walking: follows it when it stays inside the root.
fn follow_symlink(
    canonical_root: &Path,
    dir: &PendingDir,
    child: PathBuf,
    rel: String,
    files: &mut Vec<WalkedFile>,
    pending: &mut Vec<PendingDir>,
    warnings: &mut Vec<SelectWarning>,
) -> Result<(), WalkError> {
    let target = match child.canonicalize() {
        Ok(t) => t,
        Err(_) => {
            let link = fs::read_link(&child).unwrap_or_default();
            warnings.push(SelectWarning::BrokenSymlink { path: rel, link });
            return Ok(());
        }
    };
    if !target.starts_with(canonical_root) {
        warnings.push(SelectWarning::SymlinkOutsideService { path: rel, target });
        return Ok(());
    }
    let meta = fs::metadata(&child).map_err(|source| WalkError::Metadata {
        path: child.clone(),
        source,
    })?;
    if meta.is_dir() {
        if dir.chain.contains(&target) {
            warnings.push(SelectWarning::SymlinkLoop { path: rel, target });
            return Ok(());
        }
        let mut chain = dir.chain.clone();
        chain.push(target);
        pending.push(PendingDir {
            path: child,
            prefix: format!("{rel}/"),
            chain,
        });
    } else if meta.is_file() {
        files.push(WalkedFile {
            rel,
            source: child,
            executable: meta.permissions().mode() & 0o100 != 0,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(files: &[WalkedFile]) -> Vec<String> {
        let mut v: Vec<_> = files.iter().map(|f| f.rel.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn lists_files_and_follows_inside_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/c.txt"), "c").unwrap();
        fs::write(root.join("top"), "t").unwrap();
        fs::set_permissions(root.join("top"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("a/b", root.join("linkdir")).unwrap();
        symlink("top", root.join("linkfile")).unwrap();
        let (files, warnings) = walk(root, "").unwrap();
        assert_eq!(
            names(&files),
            vec!["a/b/c.txt", "linkdir/c.txt", "linkfile", "top"]
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let linkfile = files.iter().find(|f| f.rel == "linkfile").unwrap();
        assert!(linkfile.executable);
        let (sub, _) = walk(root, "a").unwrap();
        assert_eq!(names(&sub), vec!["a/b/c.txt"]);
        let (none, _) = walk(root, "missing").unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn loops_escapes_and_dangling_links_are_warnings() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("x")).unwrap();
        fs::create_dir_all(root.join("y")).unwrap();
        fs::write(root.join("y/f"), "f").unwrap();
        symlink("../y", root.join("x/to_y")).unwrap();
        symlink("../x", root.join("y/to_x")).unwrap();
        symlink(outside.path().join("secret"), root.join("secret")).unwrap();
        symlink(outside.path(), root.join("outdir")).unwrap();
        symlink("nowhere", root.join("dangling")).unwrap();
        let (files, warnings) = walk(root, "").unwrap();
        assert_eq!(names(&files), vec!["x/to_y/f", "y/f"], "{warnings:?}");
        let mut kinds: Vec<_> = warnings
            .iter()
            .map(|w| match w {
                SelectWarning::SymlinkOutsideService { path, .. } => format!("out:{path}"),
                SelectWarning::BrokenSymlink { path, .. } => format!("broken:{path}"),
                SelectWarning::SymlinkLoop { path, .. } => format!("loop:{path}"),
                other => format!("{other:?}"),
            })
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            vec![
                "broken:dangling",
                "loop:x/to_y/to_x",
                "loop:y/to_x/to_y",
                "out:outdir",
                "out:secret"
            ]
        );
    }
}
