//! Which interpreter runs each Node.js, Python, Ruby and Java runtime ID: that exact
//! version, or — only when the server allows it — the nearest one installed, never a
//! silent substitute.
//!
//! Design:
//! - Candidates, each asked its version once at start (the only cost, at start):
//!   `--runtime ID=PATH` (repeatable; its version must be the ID's, else the server
//!   refuses to start), `--node`/`--python` (default `node` and `python3` on PATH),
//!   `python3.9` … `python3.13` on PATH (pyenv shims skipped: they are scripts that
//!   fail outside their version), and pyenv's installations
//!   (`$PYENV_ROOT/versions/X.Y.Z/bin/python3`, version from the directory name);
//!   `ruby` and `ruby3.2` … `ruby3.4` on PATH. Java: `java` on PATH,
//!   `$JAVA_HOME/bin/java` and the JDKs/JREs under `/usr/lib/jvm`, each resolved to
//!   its real binary and versioned from its installation's `release` file
//!   (`JAVA_VERSION="21.0.8"`), else `java -version`.
//! - `nodejsNN.x` wants Node major NN; `pythonX.Y` wants Python X.Y; `rubyX.Y` wants
//!   Ruby X.Y (Debian 12's Ruby 3.1 runs none of them exactly); `javaNN` wants Java
//!   major NN. An ID with no
//!   exact match is not runnable unless [`Fallback::Nearest`] (`--runtime-fallback
//!   nearest`): then the closest installed version of the family runs it, and
//!   [`Interpreters::substitute_warning`] says so at deploy, in health and in `info`.
//! - Lambda's deprecated IDs (`nodejs12.x`…`16.x`, `python3.7`/`3.8`, `ruby2.7`,
//!   `java8`, `java11`, `dotnet6`) are refused with Lambda's own message, or with
//!   `--legacy-runtimes nearest` run as the nearest supported ID of their language
//!   (Node.js → `nodejs18.x`, Python → `python3.9`, Ruby → `ruby3.2`, Java → `java17`),
//!   with the same warnings.
//! - `go1.x` (retired too) is an alias, not a substitute: its Go binary runs
//!   unchanged as `provided.al2` (`stratus_rules::RUNTIME_ALIASES`), so it is accepted
//!   whatever `--legacy-runtimes` says, with a warning at deploy, in health and in
//!   `info`.
//! - CreateFunction, UpdateFunctionConfiguration and deploy refuse an ID that is not
//!   runnable with [`Interpreters::check`]: what is installed and how to add it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What happens to a runtime ID whose exact version is not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Refused at CreateFunction/deploy (the default).
    #[default]
    Refuse,
    /// Run on the nearest installed version of the language, with a warning.
    Nearest,
}

/// Node.js, Python, Ruby or Java.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// Node.js: versions compared by major.
    Node,
    /// Python: versions compared by major.minor.
    Python,
    /// Ruby: versions compared by major.minor.
    Ruby,
    /// Java: versions compared by major.
    Java,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Node => "Node.js",
            Family::Python => "Python",
            Family::Ruby => "Ruby",
            Family::Java => "Java",
        }
    }
}

/// One interpreter found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// Node.js, Python or Java.
    pub family: Family,
    /// The real binary.
    pub path: PathBuf,
    /// Its full version (`20.20.2`, `3.11.7`).
    pub version: String,
}

impl Interpreter {
    /// `(major, minor)` of the version.
    fn key(&self) -> (u32, u32) {
        version_key(&self.version)
    }
}

/// What runs one runtime ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The interpreter.
    pub interpreter: Interpreter,
    /// Whether its version is the ID's.
    pub exact: bool,
}

/// Runtime ID → interpreter, resolved once at start.
#[derive(Debug, Clone, Default)]
pub struct Interpreters {
    by_id: BTreeMap<String, Choice>,
    installed: Vec<Interpreter>,
    fallback: Fallback,
    legacy: Fallback,
    /// Deprecated ID → the supported ID that runs it (`--legacy-runtimes nearest`).
    legacy_map: BTreeMap<String, String>,
    /// Why an interpreter named by `--node`/`--python` is not usable.
    problems: Vec<String>,
}

/// The family and wanted `(major, minor)` of a Node.js, Python or Java runtime ID
/// (`nodejs20.x` → Node 20; `python3.12` → Python 3.12; `java21` → Java 21).
pub fn wanted(id: &str) -> Option<(Family, (u32, u32))> {
    if let Some(n) = id.strip_prefix("nodejs").and_then(|r| r.strip_suffix(".x")) {
        return Some((Family::Node, (n.parse().ok()?, 0)));
    }
    if let Some((maj, min)) = id.strip_prefix("ruby").and_then(|v| v.split_once('.')) {
        return Some((Family::Ruby, (maj.parse().ok()?, min.parse().ok()?)));
    }
    if let Some(n) = id.strip_prefix("java") {
        return Some((Family::Java, (n.parse().ok()?, 0)));
    }
    let v = id.strip_prefix("python")?;
    let (maj, min) = v.split_once('.')?;
    Some((Family::Python, (maj.parse().ok()?, min.parse().ok()?)))
}

fn version_key(v: &str) -> (u32, u32) {
    let mut parts = v.trim_start_matches('v').split('.');
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

fn matches(family: Family, want: (u32, u32), i: &Interpreter) -> bool {
    i.family == family
        && match family {
            Family::Node | Family::Java => i.key().0 == want.0,
            Family::Python | Family::Ruby => i.key() == want,
        }
}

/// Asks an interpreter its real path and version (one process start; none for a
/// Java installation with a `release` file).
pub fn probe(family: Family, program: &Path) -> Result<Interpreter, String> {
    let mut cmd = std::process::Command::new(program);
    match family {
        Family::Node => cmd.args(["-p", "process.execPath + '\\n' + process.versions.node"]),
        Family::Java => return probe_java(program),
        Family::Python => cmd.args([
            "-c",
            "import sys; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3])",
        ]),
        Family::Ruby => cmd.args([
            "--disable-gems",
            "-e",
            "require 'rbconfig'; puts RbConfig.ruby, RUBY_VERSION",
        ]),
    };
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    match (out.status.success(), lines.next(), lines.next()) {
        (true, Some(path), Some(version)) if !path.is_empty() && !version.is_empty() => {
            Ok(Interpreter {
                family,
                path: PathBuf::from(path),
                version: version.trim().to_string(),
            })
        }
        _ => Err(format!(
            "{} is not a working {} interpreter ({})",
            program.display(),
            family.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Where interpreters come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--node` (default `node` on PATH).
    pub node: Option<String>,
    /// `--python` (default `python3` on PATH).
    pub python: Option<String>,
    /// `--runtime ID=PATH`, in order.
    pub explicit: Vec<(String, String)>,
    /// `--runtime-fallback`.
    pub fallback: Fallback,
    /// `--legacy-runtimes`: Lambda's deprecated IDs ([`stratus_rules::LEGACY_RUNTIMES`])
    /// refused with Lambda's message, or run on the nearest supported ID.
    pub legacy: Fallback,
}

impl Interpreters {
    /// Finds the interpreters and maps every Node.js and Python ID in `ids`.
    /// An explicit `--runtime` that is unusable or of another version is an error.
    pub fn discover(sources: &Sources, ids: &[&str]) -> Result<Self, String> {
        let mut explicit: BTreeMap<String, Interpreter> = BTreeMap::new();
        for (id, path) in &sources.explicit {
            let Some((family, want)) = wanted(id) else {
                return Err(format!(
                    "--runtime {id}={path}: {id} is not a Node.js, Python, Ruby or Java runtime ID (one of {})",
                    ids.iter()
                        .filter(|i| wanted(i).is_some())
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            let program = stratus_sandbox::which(path)
                .ok_or_else(|| format!("--runtime {id}={path}: {path} was not found"))?;
            let found =
                probe(family, &program).map_err(|e| format!("--runtime {id}={path}: {e}"))?;
            if !matches(family, want, &found) {
                return Err(format!(
                    "--runtime {id}={path}: that is {} {}, not the version {id} runs",
                    family.name(),
                    found.version
                ));
            }
            explicit.insert(id.clone(), found);
        }
        let mut installed: Vec<Interpreter> = explicit.values().cloned().collect();
        let add = |i: Interpreter, installed: &mut Vec<Interpreter>| {
            if !installed
                .iter()
                .any(|x| x.path == i.path || (x.family == i.family && x.version == i.version))
            {
                installed.push(i);
            }
        };
        let mut problems = Vec::new();
        let node = sources.node.as_deref().unwrap_or("node");
        match stratus_sandbox::which(node).map(|p| probe(Family::Node, &p)) {
            Some(Ok(i)) => add(i, &mut installed),
            Some(Err(e)) if sources.node.is_some() => problems.push(format!("--node: {e}")),
            None if sources.node.is_some() => {
                problems.push(format!("--node {node}: not found"));
            }
            _ => {}
        }
        if let Some(py) = sources.python.as_deref() {
            if stratus_sandbox::which(py).is_none() {
                problems.push(format!("--python {py}: not found"));
            }
        }
        let python = sources.python.as_deref().unwrap_or("python3");
        let mut pythons: Vec<String> = vec![python.to_string()];
        // The versioned names only when the interpreter was not chosen explicitly.
        if sources.python.is_none() {
            pythons.extend((9..=13).map(|m| format!("python3.{m}")));
        }
        for name in pythons {
            let Some(p) = stratus_sandbox::which(&name) else {
                continue;
            };
            if p.components().any(|c| c.as_os_str() == "shims") {
                continue;
            }
            if let Ok(i) = probe(Family::Python, &p) {
                add(i, &mut installed);
            }
        }
        if sources.python.is_none() {
            for i in pyenv_versions() {
                add(i, &mut installed);
            }
        }
        // Ruby: `ruby`, then the versioned names some distributions install.
        for name in std::iter::once("ruby".to_string()).chain((2..=4).map(|m| format!("ruby3.{m}")))
        {
            let Some(p) = stratus_sandbox::which(&name) else {
                continue;
            };
            if p.components().any(|c| c.as_os_str() == "shims") {
                continue;
            }
            if let Ok(i) = probe(Family::Ruby, &p) {
                add(i, &mut installed);
            }
        }
        for p in java_candidates() {
            if let Ok(i) = probe_java(&p) {
                add(i, &mut installed);
            }
        }
        installed.sort_by_key(|a| (a.family, a.key()));
        let mut by_id = BTreeMap::new();
        for id in ids {
            let Some((family, want)) = wanted(id) else {
                continue;
            };
            let choice = if let Some(i) = explicit.get(*id) {
                Some(Choice {
                    interpreter: i.clone(),
                    exact: true,
                })
            } else if let Some(i) = installed.iter().rev().find(|i| matches(family, want, i)) {
                Some(Choice {
                    interpreter: i.clone(),
                    exact: true,
                })
            } else if sources.fallback == Fallback::Nearest {
                nearest(&installed, family, want).map(|i| Choice {
                    interpreter: i.clone(),
                    exact: false,
                })
            } else {
                None
            };
            if let Some(c) = choice {
                by_id.insert(id.to_string(), c);
            }
        }
        let mut legacy_map = BTreeMap::new();
        if sources.legacy == Fallback::Nearest {
            for (id, to) in stratus_rules::LEGACY_RUNTIMES {
                if let Some(choice) = to.and_then(|t| by_id.get(t)).cloned() {
                    by_id.insert(
                        id.to_string(),
                        Choice {
                            exact: false,
                            ..choice
                        },
                    );
                    legacy_map.insert(id.to_string(), to.unwrap_or_default().to_string());
                }
            }
        }
        Ok(Self {
            by_id,
            installed,
            fallback: sources.fallback,
            legacy: sources.legacy,
            legacy_map,
            problems,
        })
    }

    /// What runs `id`, if anything.
    pub fn get(&self, id: &str) -> Option<&Choice> {
        self.by_id.get(id)
    }

    /// Every runnable Node.js/Python ID with its interpreter, in the order of
    /// `stratus_rules::RUNTIMES`.
    pub fn runnable(&self) -> impl Iterator<Item = (&str, &Choice)> {
        stratus_rules::RUNTIMES
            .iter()
            .filter_map(|id| self.by_id.get(*id).map(|c| (*id, c)))
    }

    /// `Ok` when `id` can run here (or is not a Node.js/Python ID); else the error
    /// CreateFunction and deploy give: what is installed and how to add it.
    pub fn check(&self, id: &str) -> Result<(), String> {
        if stratus_rules::runtime_alias(id).is_some() {
            return Ok(());
        }
        if let Some(to) = stratus_rules::legacy_runtime(id) {
            if self.by_id.contains_key(id) {
                return Ok(());
            }
            let deprecated = stratus_rules::deprecated_runtime_message(id);
            return Err(match (self.legacy, to) {
                (Fallback::Refuse, _) => deprecated,
                (Fallback::Nearest, None) => format!(
                    "{deprecated} Stratus has no runtime of that language to run it on, even with --legacy-runtimes nearest."
                ),
                (Fallback::Nearest, Some(to)) => format!(
                    "{deprecated} With --legacy-runtimes nearest it would run on {to}, but: {}",
                    self.check(to).err().unwrap_or_default()
                ),
            });
        }
        let Some((family, want)) = wanted(id) else {
            return Ok(());
        };
        if self.by_id.contains_key(id) {
            return Ok(());
        }
        let have: Vec<String> = self
            .installed
            .iter()
            .filter(|i| i.family == family)
            .map(|i| format!("{} at {}", i.version, i.path.display()))
            .collect();
        let wanted_text = match family {
            Family::Node => format!("Node.js {}", want.0),
            Family::Python => format!("Python {}.{}", want.0, want.1),
            Family::Ruby => format!("Ruby {}.{}", want.0, want.1),
            Family::Java => format!("Java {}", want.0),
        };
        let bin = match family {
            Family::Node => "node".to_string(),
            Family::Java => "java".to_string(),
            Family::Python => format!("python{}.{}", want.0, want.1),
            Family::Ruby => "ruby".to_string(),
        };
        let problems = if self.problems.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.problems.join("; "))
        };
        Err(format!(
            "the runtime {id} needs {wanted_text}, which this server does not have{problems} ({} installed: {}). \
             Add it with `stratus server --runtime {id}=/path/to/{bin}` (or put {bin} on PATH), \
             or let the server run it on the nearest installed version with `--runtime-fallback nearest`",
            family.name(),
            if have.is_empty() { "none".to_string() } else { have.join(", ") }
        ))
    }

    /// The warning for a function of `id` when it runs on another version.
    pub fn substitute_warning(&self, id: &str) -> Option<String> {
        if let Some(to) = stratus_rules::runtime_alias(id) {
            return Some(format!(
                "{id} is no longer supported by AWS Lambda; Stratus runs it as {to} (the Go binary, built as `bootstrap`, speaks the Runtime API); change the runtime to {to}"
            ));
        }
        let c = self.by_id.get(id).filter(|c| !c.exact)?;
        if let Some(to) = self.legacy_map.get(id) {
            return Some(format!(
                "{id} is no longer supported by AWS Lambda; it runs as {to} on {} {} ({}) because --legacy-runtimes is nearest",
                c.interpreter.family.name(),
                c.interpreter.version,
                c.interpreter.path.display()
            ));
        }
        Some(format!(
            "{id} runs on {} {} ({}): the exact version is not installed and --runtime-fallback is nearest",
            c.interpreter.family.name(),
            c.interpreter.version,
            c.interpreter.path.display()
        ))
    }

    /// The `--runtime-fallback` setting.
    pub fn fallback(&self) -> Fallback {
        self.fallback
    }

    /// The `--legacy-runtimes` setting.
    pub fn legacy(&self) -> Fallback {
        self.legacy
    }

    /// For `GET /stratus/v1/health` and `stratus server`'s notice: each runnable ID
    /// with its interpreter.
    pub fn health(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (id, c) in &self.by_id {
            m.insert(
                id.clone(),
                serde_json::json!({
                    "version": c.interpreter.version,
                    "path": c.interpreter.path.display().to_string(),
                    "exact": c.exact,
                    "runsAs": self.legacy_map.get(id),
                }),
            );
        }
        for (id, to) in stratus_rules::RUNTIME_ALIASES {
            m.insert(
                id.to_string(),
                serde_json::json!({ "version": null, "path": null, "exact": false, "runsAs": to }),
            );
        }
        serde_json::Value::Object(m)
    }
}

/// The installed interpreter of `family` closest to `want` (ties: the newer).
fn nearest(installed: &[Interpreter], family: Family, want: (u32, u32)) -> Option<&Interpreter> {
    let distance = |i: &Interpreter| -> u64 {
        let (a, b) = i.key();
        match family {
            Family::Node | Family::Java => u64::from(a.abs_diff(want.0)),
            Family::Python | Family::Ruby => {
                u64::from(a.abs_diff(want.0)) * 1000 + u64::from(b.abs_diff(want.1))
            }
        }
    };
    installed
        .iter()
        .filter(|i| i.family == family)
        .min_by(|x, y| distance(x).cmp(&distance(y)).then(y.key().cmp(&x.key())))
}

/// Where Java installations are looked for: `java` on PATH, `$JAVA_HOME/bin/java`,
/// `/usr/lib/jvm/*/bin/java` (Debian's JDK and JRE packages).
fn java_candidates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = stratus_sandbox::which("java").into_iter().collect();
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        out.push(PathBuf::from(home).join("bin").join("java"));
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/jvm") {
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        out.extend(dirs.into_iter().map(|d| d.join("bin").join("java")));
    }
    out.retain(|p| p.is_file());
    out
}

/// A Java launcher's real binary and version: the `release` file of its
/// installation (`<home>/bin/java` → `<home>/release`), else `java -version`.
pub fn probe_java(program: &Path) -> Result<Interpreter, String> {
    let real = program
        .canonicalize()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let release = real
        .parent()
        .and_then(Path::parent)
        .map(|home| home.join("release"));
    if let Some(text) = release.and_then(|r| std::fs::read_to_string(r).ok()) {
        if let Some(v) = java_release_version(&text) {
            return Ok(Interpreter {
                family: Family::Java,
                path: real,
                version: v,
            });
        }
    }
    let out = std::process::Command::new(&real)
        .arg("-version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", real.display()))?;
    let text = String::from_utf8_lossy(&out.stderr);
    match java_version_output(&text) {
        Some(v) if out.status.success() => Ok(Interpreter {
            family: Family::Java,
            path: real,
            version: v,
        }),
        _ => Err(format!(
            "{} is not a working Java runtime ({})",
            program.display(),
            text.trim()
        )),
    }
}

/// `JAVA_VERSION="21.0.8"` of a `release` file.
fn java_release_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("JAVA_VERSION="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The version of `java -version`'s first line (`openjdk version "17.0.15" 2025-04-15`).
fn java_version_output(text: &str) -> Option<String> {
    let line = text.lines().next()?;
    let start = line.find('"')? + 1;
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_string()).filter(|v| !v.is_empty())
}

/// pyenv's installed CPythons (`$PYENV_ROOT/versions/3.12.1/bin/python3`), read from
/// the directory names without starting them.
fn pyenv_versions() -> Vec<Interpreter> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    let Some(root) = root else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(root.join("versions")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let numeric = name.split('.').count() == 3
            && name.split('.').all(|p| p.parse::<u32>().is_ok())
            && name.starts_with("3.");
        let bin = e.path().join("bin").join("python3");
        if numeric && bin.is_file() {
            out.push(Interpreter {
                family: Family::Python,
                path: bin.canonicalize().unwrap_or(bin),
                version: name,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(family: Family, v: &str) -> Interpreter {
        Interpreter {
            family,
            path: PathBuf::from(format!("/x/{v}")),
            version: v.into(),
        }
    }

    #[test]
    fn wanted_versions() {
        assert_eq!(wanted("nodejs18.x"), Some((Family::Node, (18, 0))));
        assert_eq!(wanted("python3.12"), Some((Family::Python, (3, 12))));
        assert_eq!(wanted("ruby3.3"), Some((Family::Ruby, (3, 3))));
        assert_eq!(wanted("ruby3.x"), None);
        assert_eq!(wanted("provided.al2"), None);
        assert_eq!(wanted("java21"), Some((Family::Java, (21, 0))));
        assert_eq!(wanted("java8.al2"), None);
    }

    #[test]
    fn java_versions_from_release_file_and_version_output() {
        assert_eq!(
            java_release_version(
                "IMPLEMENTOR=\"Eclipse\"\nJAVA_VERSION=\"21.0.8\"\nMODULES=\"java.base\"\n"
            ),
            Some("21.0.8".into())
        );
        assert_eq!(java_release_version("JAVA_RUNTIME_VERSION=\"x\"\n"), None);
        assert_eq!(
            java_version_output("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime"),
            Some("17.0.15".into())
        );
        let all = [i(Family::Java, "17.0.15"), i(Family::Java, "21.0.8")];
        assert!(matches(Family::Java, (21, 0), &all[1]));
        assert!(!matches(Family::Java, (25, 0), &all[1]));
        assert_eq!(
            nearest(&all, Family::Java, (25, 0)).unwrap().version,
            "21.0.8"
        );
        let mut it = Interpreters::default();
        it.installed.extend(all);
        let e = it.check("java25").unwrap_err();
        assert!(e.contains("needs Java 25"), "{e}");
        assert!(e.contains("--runtime java25=/path/to/java"), "{e}");
    }

    #[test]
    fn nearest_prefers_closest_then_newer() {
        let all = [
            i(Family::Node, "20.1.0"),
            i(Family::Python, "3.11.7"),
            i(Family::Python, "3.13.0"),
        ];
        assert_eq!(
            nearest(&all, Family::Node, (18, 0)).unwrap().version,
            "20.1.0"
        );
        assert_eq!(
            nearest(&all, Family::Python, (3, 12)).unwrap().version,
            "3.13.0"
        );
        assert_eq!(
            nearest(&all, Family::Python, (3, 10)).unwrap().version,
            "3.11.7"
        );
        assert!(matches(Family::Node, (20, 0), &all[0]));
        assert!(!matches(Family::Python, (3, 12), &all[1]));
    }

    #[test]
    fn ruby_ids_want_their_minor_version() {
        let mut it = Interpreters::default();
        it.installed.push(i(Family::Ruby, "3.1.2"));
        assert!(!matches(Family::Ruby, (3, 3), &it.installed[0]));
        assert!(matches(Family::Ruby, (3, 1), &it.installed[0]));
        let e = it.check("ruby3.3").unwrap_err();
        assert!(e.contains("the runtime ruby3.3 needs Ruby 3.3"), "{e}");
        assert!(e.contains("Ruby installed: 3.1.2 at /x/3.1.2"), "{e}");
        assert!(e.contains("--runtime ruby3.3=/path/to/ruby"), "{e}");
        assert_eq!(
            nearest(&it.installed, Family::Ruby, (3, 4))
                .unwrap()
                .version,
            "3.1.2"
        );
    }

    #[test]
    fn legacy_ids_are_refused_with_lambdas_message() {
        let it = Interpreters::default();
        assert_eq!(
            it.check("nodejs14.x").unwrap_err(),
            "The runtime parameter of nodejs14.x is no longer supported for creating or updating AWS Lambda functions. We recommend you use a supported runtime while creating or updating functions."
        );
        let near = Interpreters {
            legacy: Fallback::Nearest,
            ..Default::default()
        };
        assert!(near
            .check("dotnet6")
            .unwrap_err()
            .ends_with("Stratus has no runtime of that language to run it on, even with --legacy-runtimes nearest."));
        assert!(near
            .check("python3.8")
            .unwrap_err()
            .contains("it would run on python3.9, but: the runtime python3.9 needs Python 3.9"));
    }

    #[test]
    fn refused_id_names_what_is_installed_and_how_to_add() {
        let mut it = Interpreters::default();
        it.installed.push(i(Family::Node, "20.1.0"));
        let e = it.check("nodejs18.x").unwrap_err();
        assert!(e.contains("needs Node.js 18"), "{e}");
        assert!(e.contains("20.1.0 at /x/20.1.0"), "{e}");
        assert!(e.contains("--runtime nodejs18.x=/path/to/node"), "{e}");
        assert!(e.contains("--runtime-fallback nearest"), "{e}");
        assert!(it.check("provided.al2").is_ok());
    }

    #[test]
    fn go1x_is_an_alias_accepted_with_a_warning() {
        let it = Interpreters::default();
        assert!(it.check("go1.x").is_ok());
        let w = it.substitute_warning("go1.x").unwrap();
        assert!(w.contains("runs it as provided.al2"), "{w}");
        assert_eq!(it.health()["go1.x"]["runsAs"], "provided.al2");
        assert!(it.substitute_warning("provided.al2").is_none());
    }
}
