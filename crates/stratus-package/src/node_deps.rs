//! Which parts of `node_modules` a Node.js function needs in production.
//!
//! The Serverless Framework leaves packages that only devDependencies need out of the
//! package (`excludeDevDependencies`, on by default) by running `npm ls`. Stratus does not
//! run npm; it reads what npm wrote:
//!
//! 1. A lockfile, first found of `npm-shrinkwrap.json`, `package-lock.json`,
//!    `node_modules/.package-lock.json`. With `lockfileVersion` 2 or 3 its `packages` map
//!    says for every installed directory whether it is `dev: true` (needed only through
//!    devDependencies); version 1's nested `dependencies` carry the same flag. npm sets the
//!    flag to false for a package that a production dependency also needs, so such a
//!    package stays. `devOptional` packages (needed by an optional production dependency)
//!    stay too.
//! 2. Without a usable lockfile (yarn, pnpm, old npm), the installed tree itself: starting
//!    from `package.json`'s `dependencies`/`optionalDependencies` on one side and its
//!    `devDependencies` on the other, each package's own `package.json` dependencies
//!    (including `peerDependencies`) are resolved the way Node's `require` does (nearest
//!    `node_modules` upwards). A package reachable from devDependencies and not from the
//!    production roots is dev-only.
//!
//! Packages that nothing lists (extraneous ones) are kept, as Serverless keeps them.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::selection::{SelectWarning, SelectedFile, Selection};
use crate::walk::{self, WalkError};

/// Lockfiles tried in order, relative to the service directory.
const LOCKFILES: &[&str] = &[
    "npm-shrinkwrap.json",
    "package-lock.json",
    "node_modules/.package-lock.json",
];

/// Errors from [`node_dependencies`] and [`node_production_files`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeDepsError {
    /// `package.json` exists but could not be read.
    #[error("could not read {path}: {source}")]
    ReadPackageJson {
        /// Path of the file.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// `package.json` is not valid JSON of the expected shape.
    #[error("could not parse {path}: {source}")]
    ParsePackageJson {
        /// Path of the file.
        path: PathBuf,
        /// What the JSON parser reported (with line and column).
        source: serde_json::Error,
    },
    /// A lockfile exists but could not be read.
    #[error("could not read lockfile {path}: {source}")]
    ReadLockfile {
        /// Path of the lockfile.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// A lockfile is not valid JSON of the expected shape.
    #[error("could not parse lockfile {path}: {source}; fix or delete it and run `npm install`")]
    ParseLockfile {
        /// Path of the lockfile.
        path: PathBuf,
        /// What the JSON parser reported (with line and column).
        source: serde_json::Error,
    },
    /// `package.json` lists dependencies but they were never installed.
    #[error(
        "{} lists dependencies ({}) but {} has no node_modules directory; \
         run `npm install` (or `npm ci`) there before packaging",
        package_json.display(), dependencies.join(", "), service_dir.display()
    )]
    NodeModulesMissing {
        /// The service directory.
        service_dir: PathBuf,
        /// The `package.json` that lists them.
        package_json: PathBuf,
        /// The first few dependency names.
        dependencies: Vec<String>,
    },
    /// `node_modules` could not be listed.
    #[error(transparent)]
    ListFiles(#[from] WalkError),
}

/// Where the devDependency information came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencySource {
    /// There is no `package.json`: nothing is known to be dev-only.
    NoPackageJson,
    /// This lockfile's `dev` flags.
    Lockfile(PathBuf),
    /// The dependency graph of the installed `package.json` files.
    InstalledTree,
}

/// What [`node_dependencies`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDependencies {
    /// Where the information came from.
    pub source: DependencySource,
    /// Installed package directories needed only through devDependencies, relative to the
    /// service directory (`node_modules/jest`, `node_modules/a/node_modules/b`), sorted,
    /// none inside another.
    pub dev_only: Vec<String>,
    /// Production dependencies of `package.json` that are not installed.
    pub missing: Vec<String>,
}

/// The parts of a `package.json` that matter here.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PackageJson {
    #[serde(default)]
    dependencies: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    dev_dependencies: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    optional_dependencies: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    peer_dependencies: Option<BTreeMap<String, serde_json::Value>>,
}

impl PackageJson {
    fn names(map: &Option<BTreeMap<String, serde_json::Value>>) -> impl Iterator<Item = &str> {
        map.iter().flat_map(|m| m.keys().map(String::as_str))
    }
}

/// The parts of a lockfile that matter here.
#[derive(Debug, Deserialize)]
struct Lockfile {
    /// v2/v3: installed directory (`node_modules/a`) → entry. `""` is the root.
    #[serde(default)]
    packages: Option<BTreeMap<String, LockPackage>>,
    /// v1: nested by name.
    #[serde(default)]
    dependencies: Option<BTreeMap<String, LockDependencyV1>>,
}

/// One entry of a v2/v3 lockfile's `packages` map.
#[derive(Debug, Deserialize)]
struct LockPackage {
    #[serde(default)]
    dev: bool,
}

/// One entry of a v1 lockfile's `dependencies` map.
#[derive(Debug, Deserialize)]
struct LockDependencyV1 {
    #[serde(default)]
    dev: bool,
    #[serde(default)]
    dependencies: Option<BTreeMap<String, LockDependencyV1>>,
}

/// Works out which installed packages only devDependencies need.
///
/// Without a `package.json` nothing is dev-only. Fails when `package.json` has
/// `dependencies` but there is no `node_modules` (the user has not run `npm install`), or
/// when `package.json` or a lockfile cannot be read or parsed.
pub fn node_dependencies(service_dir: &Path) -> Result<NodeDependencies, NodeDepsError> {
    let package_json_path = service_dir.join("package.json");
    let Some(root) = read_package_json(&package_json_path)? else {
        return Ok(NodeDependencies {
            source: DependencySource::NoPackageJson,
            dev_only: Vec::new(),
            missing: Vec::new(),
        });
    };
    let prod_names: Vec<&str> = PackageJson::names(&root.dependencies).collect();
    if !service_dir.join("node_modules").is_dir() {
        if prod_names.is_empty() {
            return Ok(NodeDependencies {
                source: DependencySource::InstalledTree,
                dev_only: Vec::new(),
                missing: Vec::new(),
            });
        }
        return Err(NodeDepsError::NodeModulesMissing {
            service_dir: service_dir.to_path_buf(),
            package_json: package_json_path,
            dependencies: prod_names.iter().take(5).map(|s| (*s).to_owned()).collect(),
        });
    }
    let missing = prod_names
        .iter()
        .filter(|name| resolve(service_dir, "", name).is_none())
        .map(|s| (*s).to_owned())
        .collect();

    let (source, dev_only) = match dev_only_from_lockfile(service_dir)? {
        Some((path, dirs)) => (DependencySource::Lockfile(path), dirs),
        None => (
            DependencySource::InstalledTree,
            dev_only_from_tree(service_dir, &root),
        ),
    };
    Ok(NodeDependencies {
        source,
        dev_only: minimize(service_dir, dev_only),
        missing,
    })
}

/// The files of the service's `node_modules` that production needs: everything except
/// packages only devDependencies need and npm's `.bin` shims, sorted by zip path (which
/// starts with `node_modules/`). Symlinks are handled as in [`crate::select_files`].
///
/// Warns about production dependencies that are not installed; fails as
/// [`node_dependencies`] does.
pub fn node_production_files(service_dir: &Path) -> Result<Selection, NodeDepsError> {
    let deps = node_dependencies(service_dir)?;
    let dev_only: HashSet<&str> = deps.dev_only.iter().map(String::as_str).collect();
    let (walked, mut warnings) = walk::walk(service_dir, "node_modules")?;
    let mut files: Vec<SelectedFile> = walked
        .into_iter()
        .filter(|f| !is_bin_shim(&f.rel) && !under_any(&f.rel, |p| dev_only.contains(p)))
        .map(|f| SelectedFile {
            zip_path: f.rel,
            source: f.source,
            executable: f.executable,
        })
        .collect();
    files.sort();
    warnings.extend(
        deps.missing
            .into_iter()
            .map(|name| SelectWarning::MissingNodeDependency { name }),
    );
    Ok(Selection { files, warnings })
}

/// Reads and parses a `package.json`; `None` if it does not exist.
fn read_package_json(path: &Path) -> Result<Option<PackageJson>, NodeDepsError> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(NodeDepsError::ReadPackageJson {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|source| NodeDepsError::ParsePackageJson {
            path: path.to_path_buf(),
            source,
        })
}

/// Dev-only directories according to the first usable lockfile, with its path.
fn dev_only_from_lockfile(
    service_dir: &Path,
) -> Result<Option<(PathBuf, Vec<String>)>, NodeDepsError> {
    for name in LOCKFILES {
        let path = service_dir.join(name);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(NodeDepsError::ReadLockfile { path, source }),
        };
        let lock: Lockfile =
            serde_json::from_slice(&text).map_err(|source| NodeDepsError::ParseLockfile {
                path: path.clone(),
                source,
            })?;
        if let Some(packages) = lock.packages {
            let dirs = packages
                .into_iter()
                .filter(|(key, entry)| entry.dev && key.starts_with("node_modules/"))
                .map(|(key, _)| key)
                .collect();
            return Ok(Some((path, dirs)));
        }
        if let Some(deps) = lock.dependencies {
            let mut dirs = Vec::new();
            collect_v1(&deps, "", &mut dirs);
            return Ok(Some((path, dirs)));
        }
    }
    Ok(None)
}

/// Collects dev-flagged entries of a v1 lockfile, nested under `prefix`.
fn collect_v1(deps: &BTreeMap<String, LockDependencyV1>, prefix: &str, out: &mut Vec<String>) {
    for (name, dep) in deps {
        let dir = format!("{prefix}node_modules/{name}");
        if dep.dev {
            out.push(dir.clone());
        }
        if let Some(nested) = &dep.dependencies {
            collect_v1(nested, &format!("{dir}/"), out);
        }
    }
}

/// Dev-only directories from the graph of installed `package.json` files.
fn dev_only_from_tree(service_dir: &Path, root: &PackageJson) -> Vec<String> {
    let prod_roots = PackageJson::names(&root.dependencies)
        .chain(PackageJson::names(&root.optional_dependencies));
    let prod = reachable(service_dir, prod_roots);
    let dev = reachable(service_dir, PackageJson::names(&root.dev_dependencies));
    dev.difference(&prod).cloned().collect()
}

/// Installed package directories reachable from the root's dependencies `names`.
fn reachable<'a>(service_dir: &Path, names: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::new();
    for name in names {
        if let Some(dir) = resolve(service_dir, "", name) {
            if seen.insert(dir.clone()) {
                queue.push_back(dir);
            }
        }
    }
    while let Some(dir) = queue.pop_front() {
        // A package whose package.json cannot be read just has no known dependencies.
        let Ok(Some(manifest)) = read_package_json(&service_dir.join(&dir).join("package.json"))
        else {
            continue;
        };
        let deps = PackageJson::names(&manifest.dependencies)
            .chain(PackageJson::names(&manifest.optional_dependencies))
            .chain(PackageJson::names(&manifest.peer_dependencies));
        for name in deps {
            if let Some(found) = resolve(service_dir, &dir, name) {
                if seen.insert(found.clone()) {
                    queue.push_back(found);
                }
            }
        }
    }
    seen
}

/// Finds package `name` as Node's `require` would from package directory `from` (`""` for
/// the service root): `from/node_modules/name`, then each ancestor's `node_modules`.
fn resolve(service_dir: &Path, from: &str, name: &str) -> Option<String> {
    // Names come from user files; never let one walk out of node_modules.
    if name.is_empty()
        || name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return None;
    }
    let mut dir = from;
    loop {
        let last = dir.rsplit('/').next().unwrap_or(dir);
        if last != "node_modules" {
            let candidate = if dir.is_empty() {
                format!("node_modules/{name}")
            } else {
                format!("{dir}/node_modules/{name}")
            };
            if service_dir.join(&candidate).is_dir() {
                return Some(candidate);
            }
        }
        if dir.is_empty() {
            return None;
        }
        dir = dir.rsplit_once('/').map_or("", |(head, _)| head);
    }
}

/// Sorts, keeps only directories that exist, and drops entries inside another entry.
fn minimize(service_dir: &Path, mut dirs: Vec<String>) -> Vec<String> {
    dirs.sort();
    dirs.dedup();
    let mut kept: Vec<String> = Vec::new();
    let mut kept_set: HashSet<String> = HashSet::new();
    for d in dirs {
        if under_any(&d, |p| kept_set.contains(p)) {
            continue;
        }
        if fs::symlink_metadata(service_dir.join(&d)).is_err() {
            continue;
        }
        kept_set.insert(d.clone());
        kept.push(d);
    }
    kept
}

/// Whether `rel` is, or is inside, a directory for which `contains` is true.
fn under_any(rel: &str, contains: impl Fn(&str) -> bool) -> bool {
    contains(rel) || rel.match_indices('/').any(|(i, _)| contains(&rel[..i]))
}

/// Whether `rel` is inside a `node_modules/.bin` directory.
fn is_bin_shim(rel: &str) -> bool {
    rel.starts_with("node_modules/.bin/") || rel.contains("/node_modules/.bin/")
}

/// Node service fixtures shared with [`crate::select`]'s tests of devDependency
/// exclusion.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::fs;
    use std::path::Path;

    pub(crate) fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    /// A package in node_modules with its package.json and an index.js.
    pub(crate) fn pkg(root: &Path, dir: &str, deps: &[&str]) {
        let deps: serde_json::Map<String, serde_json::Value> = deps
            .iter()
            .map(|d| ((*d).to_owned(), serde_json::Value::from("*")))
            .collect();
        let name = dir.rsplit("node_modules/").next().unwrap();
        write(
            root,
            &format!("{dir}/package.json"),
            &serde_json::json!({ "name": name, "dependencies": deps }).to_string(),
        );
        write(root, &format!("{dir}/index.js"), "module.exports = 1;");
    }

    /// express (prod) → shared; jest (dev) → shared, jest-only, nested dev helper;
    /// @types/node (dev, scoped); optional prod `fsevents` not installed.
    pub(crate) fn fabricate(root: &Path) {
        write(
            root,
            "package.json",
            r#"{"name":"svc","dependencies":{"express":"^4","left-pad":"1"},
                "optionalDependencies":{"fsevents":"2"},
                "devDependencies":{"jest":"29","@types/node":"20"}}"#,
        );
        pkg(root, "node_modules/express", &["shared"]);
        pkg(root, "node_modules/left-pad", &[]);
        pkg(root, "node_modules/shared", &[]);
        pkg(
            root,
            "node_modules/jest",
            &["shared", "jest-only", "helper"],
        );
        pkg(root, "node_modules/jest-only", &[]);
        pkg(root, "node_modules/jest/node_modules/helper", &[]);
        pkg(root, "node_modules/@types/node", &[]);
        write(root, "node_modules/.bin/jest", "#!/usr/bin/env node");
        write(root, "handler.js", "exports.handler = async () => 1;");
    }

    pub(crate) const PROD_FILES: &[&str] = &[
        "node_modules/express/index.js",
        "node_modules/express/package.json",
        "node_modules/left-pad/index.js",
        "node_modules/left-pad/package.json",
        "node_modules/shared/index.js",
        "node_modules/shared/package.json",
    ];
}

#[cfg(test)]
mod tests {
    use super::fixtures::{fabricate, pkg, write, PROD_FILES};
    use super::*;

    fn lockfile_v3() -> String {
        serde_json::json!({
            "name": "svc", "lockfileVersion": 3, "requires": true,
            "packages": {
                "": { "name": "svc", "dependencies": {"express": "^4"} },
                "node_modules/express": { "version": "4.0.0" },
                "node_modules/left-pad": { "version": "1.0.0" },
                "node_modules/shared": { "version": "1.0.0" },
                "node_modules/jest": { "version": "29.0.0", "dev": true },
                "node_modules/jest-only": { "version": "1.0.0", "dev": true },
                "node_modules/jest/node_modules/helper": { "version": "1.0.0", "dev": true },
                "node_modules/@types/node": { "version": "20.0.0", "dev": true },
                "node_modules/opt-dev": { "version": "1.0.0", "devOptional": true },
                "node_modules/not-installed": { "version": "1.0.0", "dev": true },
                "packages/workspace-a": { "version": "1.0.0", "dev": true }
            }
        })
        .to_string()
    }

    fn zip_paths(sel: &Selection) -> Vec<&str> {
        sel.files.iter().map(|f| f.zip_path.as_str()).collect()
    }

    #[test]
    fn lockfile_dev_flags() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fabricate(root);
        pkg(root, "node_modules/opt-dev", &[]);
        write(root, "package-lock.json", &lockfile_v3());
        let deps = node_dependencies(root).unwrap();
        assert_eq!(
            deps.source,
            DependencySource::Lockfile(root.join("package-lock.json"))
        );
        // Nested helper is inside jest; not-installed and workspace entries are dropped.
        assert_eq!(
            deps.dev_only,
            vec![
                "node_modules/@types/node",
                "node_modules/jest",
                "node_modules/jest-only"
            ]
        );
        assert!(deps.missing.is_empty(), "{:?}", deps.missing);

        let sel = node_production_files(root).unwrap();
        let mut expected = PROD_FILES.to_vec();
        expected.extend([
            "node_modules/opt-dev/index.js",
            "node_modules/opt-dev/package.json",
        ]);
        expected.sort();
        assert_eq!(zip_paths(&sel), expected);
        assert!(sel.warnings.is_empty());
    }

    #[test]
    fn lockfile_v1_nested_flags() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fabricate(root);
        write(
            root,
            "package-lock.json",
            &serde_json::json!({
                "lockfileVersion": 1,
                "dependencies": {
                    "express": { "version": "4.0.0" },
                    "shared": { "version": "1.0.0" },
                    "left-pad": { "version": "1.0.0" },
                    "jest": { "version": "29.0.0", "dev": true,
                              "dependencies": { "helper": { "version": "1.0.0", "dev": true } } },
                    "jest-only": { "version": "1.0.0", "dev": true },
                    "@types/node": { "version": "20.0.0", "dev": true }
                }
            })
            .to_string(),
        );
        let sel = node_production_files(root).unwrap();
        assert_eq!(zip_paths(&sel), PROD_FILES);
    }

    #[test]
    fn installed_tree_without_lockfile() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fabricate(root);
        let deps = node_dependencies(root).unwrap();
        assert_eq!(deps.source, DependencySource::InstalledTree);
        // `shared` is needed by jest too but stays because express needs it.
        assert_eq!(
            deps.dev_only,
            vec![
                "node_modules/@types/node",
                "node_modules/jest",
                "node_modules/jest-only"
            ]
        );
        let sel = node_production_files(root).unwrap();
        assert_eq!(zip_paths(&sel), PROD_FILES);
    }

    #[test]
    fn missing_node_modules_and_missing_dependency() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "package.json",
            r#"{"dependencies":{"express":"^4"},"devDependencies":{"jest":"29"}}"#,
        );
        let err = node_production_files(root).unwrap_err();
        assert!(
            matches!(err, NodeDepsError::NodeModulesMissing { .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("npm install") && text.contains("express"),
            "{text}"
        );
        // node_modules exists but express is not in it: a warning, not an error.
        pkg(root, "node_modules/other", &[]);
        let sel = node_production_files(root).unwrap();
        assert_eq!(
            sel.warnings,
            vec![SelectWarning::MissingNodeDependency {
                name: "express".to_owned()
            }]
        );

        // Only devDependencies and no node_modules (a Python service with plugins): fine.
        let py = tempfile::tempdir().unwrap();
        write(
            py.path(),
            "package.json",
            r#"{"devDependencies":{"serverless":"3"}}"#,
        );
        assert!(node_production_files(py.path()).unwrap().files.is_empty());
        // No package.json at all: nothing is dev-only.
        let none = tempfile::tempdir().unwrap();
        assert_eq!(
            node_dependencies(none.path()).unwrap().source,
            DependencySource::NoPackageJson
        );
    }

    #[test]
    fn bad_json_is_reported_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fabricate(root);
        write(root, "package-lock.json", "{ not json");
        let err = node_dependencies(root).unwrap_err();
        assert!(matches!(err, NodeDepsError::ParseLockfile { .. }), "{err}");
        assert!(err.to_string().contains("package-lock.json"), "{err}");
        write(root, "package.json", "[1,");
        let err = node_dependencies(root).unwrap_err();
        assert!(
            matches!(err, NodeDepsError::ParsePackageJson { .. }),
            "{err}"
        );
    }

    #[test]
    fn resolution_walks_up_and_rejects_traversal() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        pkg(root, "node_modules/a", &[]);
        pkg(root, "node_modules/b/node_modules/a", &[]);
        pkg(root, "node_modules/@s/c", &[]);
        assert_eq!(resolve(root, "", "a").as_deref(), Some("node_modules/a"));
        assert_eq!(
            resolve(root, "node_modules/b", "a").as_deref(),
            Some("node_modules/b/node_modules/a")
        );
        assert_eq!(
            resolve(root, "node_modules/@s/c", "a").as_deref(),
            Some("node_modules/a")
        );
        assert_eq!(
            resolve(root, "", "@s/c").as_deref(),
            Some("node_modules/@s/c")
        );
        assert_eq!(resolve(root, "", "../etc"), None);
        assert_eq!(resolve(root, "", "missing"), None);
    }
}
