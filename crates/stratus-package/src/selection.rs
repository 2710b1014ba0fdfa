//! What a file selection produces: the chosen files ([`SelectedFile`], [`Selection`]),
//! the warnings about what was skipped on the way ([`SelectWarning`]), and the helpers
//! that turn file lists into zip entries or combine two of them.
//!
//! Its own module, depending on no other, so that everything that lists files shares
//! these types without a module cycle: [`crate::walk`] depends only on this module,
//! [`crate::node_deps`] on `walk` and this, [`crate::select`] on all three. The types
//! stay reachable as `select::SelectedFile` and so on, as before.

use std::fmt;
use std::path::PathBuf;

/// One file chosen for a package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SelectedFile {
    /// Name inside the zip: relative, `/`-separated, no `.`/`..` components.
    pub zip_path: String,
    /// The file on disk (possibly a symlink to a file inside the service directory).
    pub source: PathBuf,
    /// Whether the owner may execute the file; [`crate::zip_files`] stores it as `0o755`.
    pub executable: bool,
}

/// The result of a selection: files sorted by [`SelectedFile::zip_path`], and what was
/// skipped along the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The chosen files, sorted by zip path, no duplicates.
    pub files: Vec<SelectedFile>,
    /// Things the user should hear about that did not stop the selection.
    pub warnings: Vec<SelectWarning>,
}

impl Selection {
    /// The files as `(zip name, source)` pairs, ready for [`crate::zip_files`].
    pub fn zip_entries(&self) -> Vec<(String, PathBuf)> {
        zip_entries(&self.files)
    }
}

/// Turns selected files into `(zip name, source)` pairs for [`crate::zip_files`].
pub fn zip_entries(files: &[SelectedFile]) -> Vec<(String, PathBuf)> {
    files
        .iter()
        .map(|f| (f.zip_path.clone(), f.source.clone()))
        .collect()
}

/// Combines two file lists into one package (service files and installed dependencies,
/// say). When both have an entry with the same zip path the one from `primary` is kept
/// and the path is listed in the second element of the result, so the caller can warn.
/// The result is sorted by zip path.
pub fn merge_files(
    primary: Vec<SelectedFile>,
    secondary: Vec<SelectedFile>,
) -> (Vec<SelectedFile>, Vec<String>) {
    let mut by_name = std::collections::BTreeMap::new();
    for f in primary {
        by_name.insert(f.zip_path.clone(), f);
    }
    let mut shadowed = Vec::new();
    for f in secondary {
        if by_name.contains_key(&f.zip_path) {
            shadowed.push(f.zip_path);
        } else {
            by_name.insert(f.zip_path.clone(), f);
        }
    }
    shadowed.sort();
    (by_name.into_values().collect(), shadowed)
}

/// Something skipped or ignored during selection; shown to the user, never fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SelectWarning {
    /// A symlink points outside the service directory; it was not followed.
    SymlinkOutsideService {
        /// The link, relative to the service directory.
        path: String,
        /// Where it resolves to.
        target: PathBuf,
    },
    /// A directory symlink points at one of its own ancestors; it was not followed.
    SymlinkLoop {
        /// The link, relative to the service directory.
        path: String,
        /// Where it resolves to.
        target: PathBuf,
    },
    /// A symlink whose target does not exist.
    BrokenSymlink {
        /// The link, relative to the service directory.
        path: String,
        /// The link's stored target.
        link: PathBuf,
    },
    /// A pattern names paths outside the service directory; it was ignored.
    PatternOutsideService {
        /// The pattern as given.
        pattern: String,
    },
    /// A production dependency from `package.json` is not installed in `node_modules`.
    MissingNodeDependency {
        /// The package name.
        name: String,
    },
    /// `package.json` lists dependencies but there is no `node_modules` directory.
    NodeModulesMissing {
        /// The first few dependency names.
        dependencies: Vec<String>,
    },
}

impl fmt::Display for SelectWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SymlinkOutsideService { path, target } => write!(
                f,
                "skipped symlink '{path}': it points outside the service directory (to {})",
                target.display()
            ),
            Self::SymlinkLoop { path, target } => write!(
                f,
                "skipped symlink '{path}': it points to its own parent directory {} (a loop)",
                target.display()
            ),
            Self::BrokenSymlink { path, link } => write!(
                f,
                "skipped symlink '{path}': its target '{}' does not exist",
                link.display()
            ),
            Self::PatternOutsideService { pattern } => write!(
                f,
                "ignored pattern '{pattern}': patterns can only select files inside the \
                 service directory"
            ),
            Self::NodeModulesMissing { dependencies } => write!(
                f,
                "package.json lists dependencies ({}) but there is no node_modules directory, \
                 so none are packaged; run `npm install` (or `npm ci`) first if the functions \
                 need them",
                dependencies.join(", ")
            ),
            Self::MissingNodeDependency { name } => write!(
                f,
                "dependency '{name}' from package.json is not installed in node_modules; \
                 run `npm install` (or `npm ci`)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_prefers_primary() {
        let f = |n: &str, s: &str| SelectedFile {
            zip_path: n.to_owned(),
            source: PathBuf::from(s),
            executable: false,
        };
        let (merged, shadowed) = merge_files(
            vec![f("b.py", "svc/b.py"), f("a.py", "svc/a.py")],
            vec![f("six.py", "deps/six.py"), f("a.py", "deps/a.py")],
        );
        assert_eq!(
            merged,
            vec![
                f("a.py", "svc/a.py"),
                f("b.py", "svc/b.py"),
                f("six.py", "deps/six.py")
            ]
        );
        assert_eq!(shadowed, vec!["a.py"]);
    }
}
