//! Installing a Python function's `requirements.txt` into its package, as the
//! serverless-python-requirements plugin does.
//!
//! [`install_python_requirements`] runs the real pip:
//!
//! ```text
//! <python> -m pip install -r <requirements> --target <dir> --disable-pip-version-check
//!     --no-input --no-compile [--platform manylinux2014_<arch> --only-binary=:all:
//!     --python-version X.Y --implementation cp] [pipCmdExtraArgs...]
//! ```
//!
//! The platform flags are added when [`PythonReqOptions::platform`] is set, so a Mac or an
//! x86_64 machine fetches the Linux wheels of the function's architecture; packages that
//! ship no such wheel then fail to install instead of installing a build for the wrong
//! machine.
//!
//! ## Cache
//!
//! Installs are cached under the caller's cache directory, keyed by the SHA-256 of the
//! effective requirements text (after `noDeploy` filtering), the Python version, the
//! platform and the extra pip arguments:
//!
//! ```text
//! <cache_dir>/<64 hex key>/            the installed tree (pip --target), complete
//! <cache_dir>/.tmp-<key>-<pid>-<n>/    an install in progress (renamed when done)
//! ```
//!
//! A key directory exists only once pip succeeded (the tree is built aside and renamed into
//! place), so an existing one is reused without running pip. Files referenced by the
//! requirements (`-r other.txt`, `-e ./lib`) are not part of the key, and neither are new
//! releases matching an unpinned requirement: delete the key directory to refresh it.
//!
//! ## Byte code
//!
//! pip's own byte-compilation is turned off because it embeds a random temporary path and
//! the source's modification time, which would make every install, and so every package,
//! different. Instead, when the local interpreter is the version being packaged for,
//! `compileall` writes hash-checked `.pyc` files named as if under `/var/task`: identical
//! for identical sources, and still valid when the zip normalizes file times. Lambda's
//! `/var/task` is read-only, so without them every cold start would compile every module.
//!
//! ## Options from `custom.pythonRequirements`
//!
//! `fileName`, `slim` (with `slimPatterns`, `slimPatternsAppendDefaults`), `noDeploy` and
//! `pipCmdExtraArgs` are honoured. `dockerizePip` and `zip` are not supported and produce
//! a [`PythonWarning`]; `dockerizePip`'s purpose (Linux wheels) is served by
//! [`PythonReqOptions::platform`]. Pipenv and Poetry files are not read: an error asks for
//! an exported `requirements.txt`.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::hash::sha256_hex;
use crate::native::{check_native, NativeWarning, Target};
use crate::selection::{SelectWarning, SelectedFile};
use crate::walk::{self, WalkError};

/// The plugin's default `slim` patterns plus test directories (see [`PythonReqOptions::slim`]).
pub const DEFAULT_SLIM_PATTERNS: &[&str] = &[
    "**/*.py[co]",
    "**/__pycache__/**",
    "**/*.dist-info/**",
    "**/tests/**",
];

/// `SOURCE_DATE_EPOCH` given to pip and compileall: 1980-01-01, the zip epoch.
const SOURCE_DATE_EPOCH: &str = "315532800";
/// Lines of pip's stderr kept in an error.
const STDERR_TAIL_LINES: usize = 25;
/// Distinguishes temporary directories created by concurrent installs in one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The `custom.pythonRequirements` options Stratus understands, plus where to install for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonReqOptions {
    /// The interpreter that runs pip (default `python3`). Prefer a real binary over a
    /// version manager's shim, which is several times slower to start.
    pub python: PathBuf,
    /// The runtime's Python version, `X.Y` (from `runtime: python3.12`). `None` uses the
    /// interpreter's own version.
    pub python_version: Option<String>,
    /// When set, fetch Linux wheels for this architecture whatever the local machine is
    /// (`--platform manylinux2014_<arch> --only-binary=:all:`), and check the result with
    /// [`check_native`].
    pub platform: Option<Target>,
    /// `fileName`: the requirements file, relative to the service directory, used when
    /// no explicit file is passed (default `requirements.txt`).
    pub file_name: String,
    /// `dockerizePip`: not supported; produces [`PythonWarning::DockerizePipNotSupported`].
    pub dockerize_pip: bool,
    /// `slim`: leave out files matching [`DEFAULT_SLIM_PATTERNS`] (`*.pyc`/`*.pyo`,
    /// `__pycache__`, `*.dist-info` and `tests` directories) and [`Self::slim_patterns`].
    /// Unlike the plugin, shared libraries are not stripped. Note that without
    /// `*.dist-info`, `importlib.metadata` cannot find the packages.
    pub slim: bool,
    /// `slimPatterns`: more globs (matched against package paths) to leave out when slim.
    pub slim_patterns: Vec<String>,
    /// `slimPatternsAppendDefaults` (default true): false replaces the defaults with
    /// [`Self::slim_patterns`].
    pub slim_patterns_append_defaults: bool,
    /// `noDeploy`: distributions to leave out (matched by normalized name: `Foo_Bar` and
    /// `foo-bar` are the same). Their lines are dropped from the requirements, and their
    /// files (from the distribution's `RECORD`) are left out if a dependency pulls them in.
    pub no_deploy: Vec<String>,
    /// `pipCmdExtraArgs`: appended to the `pip install` command line.
    pub pip_cmd_extra_args: Vec<String>,
    /// `zip`: not supported; produces [`PythonWarning::ZipNotSupported`].
    pub zip: bool,
}

impl Default for PythonReqOptions {
    fn default() -> Self {
        Self {
            python: PathBuf::from("python3"),
            python_version: None,
            platform: None,
            file_name: "requirements.txt".to_owned(),
            dockerize_pip: false,
            slim: false,
            slim_patterns: Vec::new(),
            slim_patterns_append_defaults: true,
            no_deploy: Vec::new(),
            pip_cmd_extra_args: Vec::new(),
            zip: false,
        }
    }
}

/// What happened to the requirements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallOutcome {
    /// pip ran and the result was added to the cache.
    Installed,
    /// The cache already held this exact install; pip did not run.
    Cached,
    /// There is no requirements file, or it lists nothing to install (after `noDeploy`).
    NoRequirements,
}

/// The result of [`install_python_requirements`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// The requirements file that was (or would have been) read.
    pub requirements_file: PathBuf,
    /// Installed, reused from cache, or nothing to do.
    pub outcome: InstallOutcome,
    /// The cache key (64 hex characters), unless there was nothing to install.
    pub cache_key: Option<String>,
    /// The installed tree in the cache, unless there was nothing to install.
    pub install_dir: Option<PathBuf>,
    /// The Python version installed for (`X.Y`), unless there was nothing to install.
    pub python_version: Option<String>,
    /// Files to add to the package, at the package root as Lambda expects (`six.py`,
    /// `requests/__init__.py`), sorted by zip path, after `noDeploy` and `slim`.
    pub files: Vec<SelectedFile>,
    /// Options that were ignored and files that were skipped.
    pub warnings: Vec<PythonWarning>,
    /// Native code that will not load on [`PythonReqOptions::platform`] (checked before
    /// `slim` removes the wheels' metadata). Empty when no platform was given.
    pub native_warnings: Vec<NativeWarning>,
}

/// Something the user should know that did not stop the install.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PythonWarning {
    /// `dockerizePip` was set; dependencies were installed with the local pip.
    DockerizePipNotSupported {
        /// The platform wheels were fetched for, if any.
        platform: Option<Target>,
    },
    /// `zip` was set; requirements are added to the package unzipped.
    ZipNotSupported,
    /// A file in the installed tree was skipped (a symlink leaving it, say).
    Skipped(SelectWarning),
}

impl fmt::Display for PythonWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DockerizePipNotSupported { platform: Some(t) } => write!(
                f,
                "pythonRequirements.dockerizePip is not supported; dependencies were \
                 installed with the local pip, fetching {t} wheels \
                 (--platform {} --only-binary=:all:)",
                t.manylinux_platform()
            ),
            Self::DockerizePipNotSupported { platform: None } => f.write_str(
                "pythonRequirements.dockerizePip is not supported; dependencies were \
                 installed with the local pip for this machine's platform",
            ),
            Self::ZipNotSupported => f.write_str(
                "pythonRequirements.zip is not supported; requirements are added to the \
                 package unzipped",
            ),
            Self::Skipped(w) => write!(f, "python requirements: {w}"),
        }
    }
}

/// Errors from [`install_python_requirements`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PythonDepsError {
    /// The requirements file exists but could not be read.
    #[error("could not read requirements file {path}: {source}")]
    ReadRequirements {
        /// The file.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// The requirements are in a Pipfile or Poetry `pyproject.toml`.
    #[error(
        "{} is a Pipenv/Poetry file, which Stratus does not read; export the dependencies \
         (`pipenv requirements > requirements.txt` or \
         `poetry export -f requirements.txt -o requirements.txt`) and point \
         pythonRequirements.fileName at the result",
        path.display()
    )]
    UnsupportedRequirementsFile {
        /// The Pipfile or pyproject.toml.
        path: PathBuf,
    },
    /// The Python interpreter could not be started.
    #[error(
        "could not run Python interpreter '{}': {source}; install Python 3 or set the \
         interpreter to use", python.display()
    )]
    PythonNotFound {
        /// The interpreter.
        python: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// The interpreter started but could not report its version.
    #[error("Python interpreter '{}' failed to report its version: {stderr}", python.display())]
    PythonFailed {
        /// The interpreter.
        python: PathBuf,
        /// The tail of its stderr.
        stderr: String,
    },
    /// `python -m pip` does not work.
    #[error(
        "pip is not available for '{}' ({stderr}); install it (`{} -m ensurepip --upgrade`, \
         or the python3-pip system package)",
        python.display(), python.display()
    )]
    PipMissing {
        /// The interpreter.
        python: PathBuf,
        /// The tail of its stderr.
        stderr: String,
    },
    /// pip failed to install the requirements.
    #[error(
        "pip could not install the requirements in {}{}; pip failed ({status}):\n{stderr_tail}",
        requirements_file.display(),
        requirement.as_ref().map(|r| format!(" (failing requirement: {r})")).unwrap_or_default()
    )]
    PipInstall {
        /// The requirements file.
        requirements_file: PathBuf,
        /// The failing requirement, as `line N: <line>` when found in the file, or as pip
        /// named it.
        requirement: Option<String>,
        /// How pip exited.
        status: String,
        /// The last lines of pip's stderr.
        stderr_tail: String,
    },
    /// The cache directory could not be created or written.
    #[error("could not write to the requirements cache at {path}: {source}")]
    Cache {
        /// The path being created or written.
        path: PathBuf,
        /// Underlying I/O error.
        source: io::Error,
    },
    /// A slim pattern is not a valid glob.
    #[error("invalid pythonRequirements.slimPatterns entry '{pattern}': {source}")]
    InvalidSlimPattern {
        /// The pattern.
        pattern: String,
        /// What the glob parser reported.
        source: globset::Error,
    },
    /// The installed tree could not be listed.
    #[error(transparent)]
    ListFiles(#[from] WalkError),
}

/// Installs the requirements of a Python service (or of one function's module) and
/// returns the files to add to its package.
///
/// `requirements_file` is absolute or relative to `service_dir`; `None` means
/// [`PythonReqOptions::file_name`]. A missing or empty file is not an error
/// ([`InstallOutcome::NoRequirements`], as in the plugin). `cache_dir` holds the installed
/// trees (see the module docs); the returned files point into it, so keep it until the
/// package is zipped.
pub fn install_python_requirements(
    service_dir: &Path,
    requirements_file: Option<&Path>,
    cache_dir: &Path,
    opts: &PythonReqOptions,
) -> Result<InstallReport, PythonDepsError> {
    let joined = service_dir.join(requirements_file.unwrap_or(Path::new(&opts.file_name)));
    let requirements_path = std::path::absolute(&joined).unwrap_or(joined);
    let mut warnings = Vec::new();
    if opts.dockerize_pip {
        warnings.push(PythonWarning::DockerizePipNotSupported {
            platform: opts.platform,
        });
    }
    if opts.zip {
        warnings.push(PythonWarning::ZipNotSupported);
    }
    let mut report = InstallReport {
        requirements_file: requirements_path.clone(),
        outcome: InstallOutcome::NoRequirements,
        cache_key: None,
        install_dir: None,
        python_version: None,
        files: Vec::new(),
        warnings,
        native_warnings: Vec::new(),
    };

    let Some(text) = read_requirements(&requirements_path)? else {
        return Ok(report);
    };
    let no_deploy: HashSet<String> = opts.no_deploy.iter().map(|n| normalize_name(n)).collect();
    let req_dir = requirements_path
        .parent()
        .map_or_else(|| service_dir.to_path_buf(), Path::to_path_buf);
    let filtered = filter_requirements(&text, &no_deploy, &req_dir);
    if !has_requirements(&filtered) {
        return Ok(report);
    }
    let slim = slim_matcher(opts)?;

    let python_version = match &opts.python_version {
        Some(v) => v.clone(),
        None => interpreter_version(&opts.python)?,
    };
    let key = cache_key(&filtered, &python_version, opts);
    fs::create_dir_all(cache_dir).map_err(|source| PythonDepsError::Cache {
        path: cache_dir.to_path_buf(),
        source,
    })?;
    // pip runs in the requirements file's directory, so every path it gets is absolute.
    let cache_dir = &cache_dir
        .canonicalize()
        .map_err(|source| PythonDepsError::Cache {
            path: cache_dir.to_path_buf(),
            source,
        })?;
    let install_dir = cache_dir.join(&key);
    report.outcome = if install_dir.is_dir() {
        InstallOutcome::Cached
    } else {
        let pip = PipRun {
            requirements_path: &requirements_path,
            requirements_text: &text,
            filtered: &filtered,
            changed: filtered != text,
            req_dir: &req_dir,
            python_version: &python_version,
            opts,
        };
        pip.install(cache_dir, &key, &install_dir)?;
        InstallOutcome::Installed
    };

    let (files, walk_warnings, native_warnings) =
        list_install(&install_dir, &no_deploy, slim.as_ref(), opts.platform)?;
    report.files = files;
    report.native_warnings = native_warnings;
    report
        .warnings
        .extend(walk_warnings.into_iter().map(PythonWarning::Skipped));
    report.cache_key = Some(key);
    report.install_dir = Some(install_dir);
    report.python_version = Some(python_version);
    Ok(report)
}

/// Reads the requirements file; `None` when it does not exist. Fails for Pipenv/Poetry
/// files, named directly or lying beside a missing requirements file.
fn read_requirements(path: &Path) -> Result<Option<String>, PythonDepsError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name == "Pipfile" || name == "Pipfile.lock" || name == "pyproject.toml" {
        return Err(PythonDepsError::UnsupportedRequirementsFile {
            path: path.to_path_buf(),
        });
    }
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = path.parent().unwrap_or(Path::new("."));
            let pipfile = dir.join("Pipfile");
            if pipfile.is_file() {
                return Err(PythonDepsError::UnsupportedRequirementsFile { path: pipfile });
            }
            let pyproject = dir.join("pyproject.toml");
            if fs::read_to_string(&pyproject).is_ok_and(|t| t.contains("[tool.poetry")) {
                return Err(PythonDepsError::UnsupportedRequirementsFile { path: pyproject });
            }
            Ok(None)
        }
        Err(source) => Err(PythonDepsError::ReadRequirements {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// PEP 503 name normalization: lowercase, runs of `-`, `_`, `.` become one `-`.
fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_sep = false;
        }
    }
    out
}

/// A requirements line without its comment, trimmed.
fn strip_comment(line: &str) -> &str {
    let trimmed = line.trim();
    if trimmed.starts_with('#') {
        return "";
    }
    // pip treats `#` as a comment only at line start or after whitespace (URLs keep
    // their fragments).
    match trimmed.find(" #").or_else(|| trimmed.find("\t#")) {
        Some(i) => trimmed[..i].trim_end(),
        None => trimmed,
    }
}

/// The distribution name a requirement line starts with (`requests[socks]>=2` →
/// `requests`), or `None` for option lines, URLs and paths.
fn requirement_name(line: &str) -> Option<&str> {
    let line = strip_comment(line);
    if line.is_empty() || line.starts_with('-') || line.starts_with('.') || line.starts_with('/') {
        return None;
    }
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    let name = &line[..end];
    // `git+https://...` and other URLs are not names.
    if name.is_empty() || line[end..].starts_with("://") || line[end..].starts_with('+') {
        return None;
    }
    Some(name)
}

/// Drops `noDeploy` requirement lines. When anything was dropped, the result is meant to
/// be written elsewhere, so relative `-r`/`-c` file references are made absolute.
fn filter_requirements(text: &str, no_deploy: &HashSet<String>, req_dir: &Path) -> String {
    let dropped = text
        .lines()
        .any(|l| requirement_name(l).is_some_and(|n| no_deploy.contains(&normalize_name(n))));
    if !dropped {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if requirement_name(line).is_some_and(|n| no_deploy.contains(&normalize_name(n))) {
            continue;
        }
        out.push_str(&absolutize_reference(line, req_dir));
        out.push('\n');
    }
    out
}

/// Rewrites `-r file`/`-c file` (and long forms) with a relative path to an absolute one.
fn absolutize_reference(line: &str, req_dir: &Path) -> String {
    let trimmed = strip_comment(line);
    for flag in ["--requirement", "--constraint", "-r", "-c"] {
        let Some(rest) = trimmed.strip_prefix(flag) else {
            continue;
        };
        let rest = rest.strip_prefix('=').unwrap_or(rest);
        let file = rest.trim();
        if file.is_empty() || Path::new(file).is_absolute() || file.contains("://") {
            return line.to_owned();
        }
        return format!("{flag} {}", req_dir.join(file).display());
    }
    line.to_owned()
}

/// Whether the requirements name anything to install (not just options and comments).
fn has_requirements(text: &str) -> bool {
    text.lines().map(strip_comment).any(|l| {
        !l.is_empty()
            && (!l.starts_with('-')
                || ["-r", "--requirement", "-e", "--editable"]
                    .iter()
                    .any(|f| l.starts_with(f)))
    })
}

/// The cache key: SHA-256 of everything that changes the installed tree.
fn cache_key(requirements: &str, python_version: &str, opts: &PythonReqOptions) -> String {
    let platform = opts
        .platform
        .map_or_else(|| "host".to_owned(), Target::manylinux_platform);
    let mut input = format!(
        "stratus-python-requirements-v1\npython={python_version}\nplatform={platform}\n\
         implementation=cp\nargs={}\nrequirements=\n",
        opts.pip_cmd_extra_args.join("\u{0}")
    );
    input.push_str(requirements);
    sha256_hex(input.as_bytes())
}

/// Asks the interpreter for its `X.Y` version.
fn interpreter_version(python: &Path) -> Result<String, PythonDepsError> {
    let out = run(
        Command::new(python).args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"]),
        python,
    )?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || version.is_empty() {
        return Err(PythonDepsError::PythonFailed {
            python: python.to_path_buf(),
            stderr: tail(&String::from_utf8_lossy(&out.stderr), 5),
        });
    }
    Ok(version)
}

/// Runs `cmd` to completion, capturing its output; a start failure is `PythonNotFound`.
fn run(cmd: &mut Command, python: &Path) -> Result<Output, PythonDepsError> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| PythonDepsError::PythonNotFound {
            python: python.to_path_buf(),
            source,
        })
}

/// The last `n` non-empty lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One pip install into the cache.
#[derive(Debug)]
struct PipRun<'a> {
    requirements_path: &'a Path,
    requirements_text: &'a str,
    filtered: &'a str,
    /// Whether `filtered` differs from the file (then it is written to the cache dir).
    changed: bool,
    req_dir: &'a Path,
    python_version: &'a str,
    opts: &'a PythonReqOptions,
}

impl PipRun<'_> {
    /// Runs pip into a temporary directory and renames it to `install_dir`.
    fn install(
        &self,
        cache_dir: &Path,
        key: &str,
        install_dir: &Path,
    ) -> Result<(), PythonDepsError> {
        let python = &self.opts.python;
        let check = run(
            Command::new(python).args(["-m", "pip", "--version"]),
            python,
        )?;
        if !check.status.success() {
            return Err(PythonDepsError::PipMissing {
                python: python.clone(),
                stderr: tail(&String::from_utf8_lossy(&check.stderr), 3),
            });
        }

        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = cache_dir.join(format!(".tmp-{key}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let result = self.install_into(&tmp);
        let result = result.and_then(|()| match fs::rename(&tmp, install_dir) {
            Ok(()) => Ok(()),
            // Another install of the same key finished first; its tree is identical.
            Err(_) if install_dir.is_dir() => Ok(()),
            Err(source) => Err(PythonDepsError::Cache {
                path: install_dir.to_path_buf(),
                source,
            }),
        });
        let _ = fs::remove_dir_all(&tmp);
        let _ = fs::remove_file(tmp.with_extension("requirements.txt"));
        result
    }

    /// Runs pip (and compileall) with `target` as the install directory.
    fn install_into(&self, target: &Path) -> Result<(), PythonDepsError> {
        let requirements = if self.changed {
            let copy = target.with_extension("requirements.txt");
            fs::write(&copy, self.filtered).map_err(|source| PythonDepsError::Cache {
                path: copy.clone(),
                source,
            })?;
            copy
        } else {
            self.requirements_path.to_path_buf()
        };
        let python = &self.opts.python;
        let out = run(
            Command::new(python)
                .args(pip_args(
                    &requirements,
                    target,
                    self.python_version,
                    self.opts,
                ))
                .current_dir(self.req_dir)
                .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
                .env("PIP_NO_INPUT", "1")
                .env("PIP_ROOT_USER_ACTION", "ignore"),
            python,
        )?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(PythonDepsError::PipInstall {
                requirements_file: self.requirements_path.to_path_buf(),
                requirement: failing_requirement(&stderr, self.requirements_text),
                status: out.status.to_string(),
                stderr_tail: tail(&stderr, STDERR_TAIL_LINES),
            });
        }
        self.compile(target);
        Ok(())
    }

    /// Writes deterministic, hash-checked byte code when the local interpreter is the
    /// version being packaged for. Failures only cost cold-start time, so they are ignored
    /// (pip ignores them too).
    fn compile(&self, target: &Path) {
        let python = &self.opts.python;
        let local = self
            .opts
            .python_version
            .as_ref()
            .map_or(Ok(self.python_version.to_owned()), |_| {
                interpreter_version(python)
            });
        if local.ok().as_deref() != Some(self.python_version) {
            return;
        }
        let Ok(abs) = target.canonicalize() else {
            return;
        };
        let _ = Command::new(python)
            .args(["-m", "compileall", "-q", "-q", "-j", "0"])
            .arg("-s")
            .arg(&abs)
            .args(["-p", "/var/task", "--invalidation-mode", "checked-hash"])
            .arg(&abs)
            .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The arguments after the interpreter for `pip install`.
fn pip_args(
    requirements: &Path,
    target: &Path,
    python_version: &str,
    opts: &PythonReqOptions,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-m", "pip", "install", "-r"]
        .iter()
        .map(OsString::from)
        .collect();
    args.push(requirements.as_os_str().to_owned());
    args.push("--target".into());
    args.push(target.as_os_str().to_owned());
    for a in ["--disable-pip-version-check", "--no-input", "--no-compile"] {
        args.push(a.into());
    }
    if let Some(platform) = opts.platform {
        args.push("--platform".into());
        args.push(platform.manylinux_platform().into());
        args.push("--only-binary=:all:".into());
        args.push("--python-version".into());
        args.push(python_version.into());
        args.push("--implementation".into());
        args.push("cp".into());
    }
    args.extend(opts.pip_cmd_extra_args.iter().map(OsString::from));
    args
}

/// Finds the requirement pip failed on, as `line N: <line>` of the requirements file when
/// it can be matched, else as pip named it.
fn failing_requirement(stderr: &str, requirements: &str) -> Option<String> {
    let markers: [(&str, &str); 6] = [
        ("No matching distribution found for ", ""),
        ("satisfies the requirement ", " ("),
        ("Invalid requirement: ", ""),
        ("Failed building wheel for ", ""),
        ("Failed to build ", ""),
        ("Could not build wheels for ", ","),
    ];
    let named = stderr.lines().rev().find_map(|line| {
        markers.iter().find_map(|(start, stop)| {
            let at = line.find(start)?;
            let rest = &line[at + start.len()..];
            let rest = if stop.is_empty() {
                rest
            } else {
                rest.split(stop).next().unwrap_or(rest)
            };
            let rest = rest.trim().trim_matches(|c| c == '\'' || c == '"');
            (!rest.is_empty()).then(|| rest.to_owned())
        })
    })?;
    let wanted = requirement_name(&named).map(normalize_name);
    let found = requirements.lines().enumerate().find(|(_, line)| {
        requirement_name(line)
            .map(normalize_name)
            .is_some_and(|n| Some(&n) == wanted.as_ref())
    });
    Some(match found {
        Some((i, line)) => format!("line {}: {}", i + 1, line.trim()),
        None => named,
    })
}

/// Compiles the slim patterns, if slim is on.
fn slim_matcher(opts: &PythonReqOptions) -> Result<Option<GlobSet>, PythonDepsError> {
    if !opts.slim {
        return Ok(None);
    }
    let defaults = if opts.slim_patterns_append_defaults {
        DEFAULT_SLIM_PATTERNS
    } else {
        &[]
    };
    let mut builder = GlobSetBuilder::new();
    for p in defaults
        .iter()
        .copied()
        .chain(opts.slim_patterns.iter().map(String::as_str))
    {
        let pattern = p.trim_start_matches("./");
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|source| PythonDepsError::InvalidSlimPattern {
                pattern: p.to_owned(),
                source,
            })?;
        builder.add(glob);
    }
    builder
        .build()
        .map(Some)
        .map_err(|source| PythonDepsError::InvalidSlimPattern {
            pattern: "(combined slimPatterns)".to_owned(),
            source,
        })
}

/// Files of an installed tree, skipped entries, and native-code warnings.
type Listed = (Vec<SelectedFile>, Vec<SelectWarning>, Vec<NativeWarning>);

/// Lists an installed tree as package files: without `noDeploy` distributions, checked
/// for native code (when a platform is given), then without slim matches.
fn list_install(
    install_dir: &Path,
    no_deploy: &HashSet<String>,
    slim: Option<&GlobSet>,
    platform: Option<Target>,
) -> Result<Listed, PythonDepsError> {
    let (walked, warnings) = walk::walk(install_dir, "")?;
    let removed = no_deploy_files(install_dir, &walked, no_deploy);
    let mut files: Vec<SelectedFile> = walked
        .into_iter()
        .filter(|f| !removed.contains(&f.rel))
        .map(|f| SelectedFile {
            zip_path: f.rel,
            source: f.source,
            executable: f.executable,
        })
        .collect();
    files.sort();
    let native = platform.map_or_else(Vec::new, |t| check_native(&files, t));
    if let Some(slim) = slim {
        files.retain(|f| !slim.is_match(&f.zip_path));
    }
    Ok((files, warnings, native))
}

/// Relative paths of every file belonging to a `noDeploy` distribution: its `RECORD`
/// entries, its `.dist-info` directory, the byte code of its modules, and (as the plugin
/// does) top-level entries named like it.
fn no_deploy_files(
    install_dir: &Path,
    walked: &[walk::WalkedFile],
    no_deploy: &HashSet<String>,
) -> HashSet<String> {
    let mut removed = HashSet::new();
    if no_deploy.is_empty() {
        return removed;
    }
    let Ok(entries) = fs::read_dir(install_dir) else {
        return removed;
    };
    let mut dirs: Vec<String> = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(stem) = name.strip_suffix(".dist-info") {
            let dist = stem.split('-').next().unwrap_or(stem);
            if no_deploy.contains(&normalize_name(dist)) {
                dirs.push(name.clone());
                let record = entry.path().join("RECORD");
                if let Ok(text) = fs::read_to_string(record) {
                    removed.extend(text.lines().filter_map(record_path));
                }
            }
            continue;
        }
        // The plugin's rule: the top-level name up to `-` or `.py`.
        let base = name
            .split('-')
            .next()
            .unwrap_or(&name)
            .trim_end_matches(".py");
        if no_deploy.contains(&normalize_name(base)) {
            dirs.push(name);
        }
    }
    for f in walked {
        let in_dir = dirs
            .iter()
            .any(|d| f.rel == *d || f.rel.starts_with(&format!("{d}/")));
        let compiled_of_removed = pyc_source(&f.rel).is_some_and(|src| removed.contains(&src));
        if in_dir || compiled_of_removed {
            removed.insert(f.rel.clone());
        }
    }
    removed
}

/// The path field of a `RECORD` line, normalized; `None` if it leaves the tree.
fn record_path(line: &str) -> Option<String> {
    let field = if let Some(rest) = line.strip_prefix('"') {
        // CSV quoting: `""` is a literal quote, `"` ends the field.
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    out.push('"');
                    chars.next();
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        line.split(',').next()?.to_owned()
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(&field).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// For `pkg/__pycache__/mod.cpython-311.pyc`, the source `pkg/mod.py`.
fn pyc_source(rel: &str) -> Option<String> {
    let (dir, file) = rel
        .rsplit_once("/__pycache__/")
        .or_else(|| rel.strip_prefix("__pycache__/").map(|f| ("", f)))?;
    let stem = file.strip_suffix(".pyc")?.split('.').next()?;
    Some(if dir.is_empty() {
        format!("{stem}.py")
    } else {
        format!("{dir}/{stem}.py")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn names(files: &[SelectedFile]) -> Vec<&str> {
        files.iter().map(|f| f.zip_path.as_str()).collect()
    }

    fn set(names: &[&str]) -> HashSet<String> {
        names.iter().map(|n| normalize_name(n)).collect()
    }

    /// Installs `six==1.16.0` for real from PyPI, then again from the cache.
    #[test]
    fn pip_installs_and_caches() {
        let service = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        write(
            service.path(),
            "requirements.txt",
            "# deps\nsix==1.16.0  # pinned\n",
        );
        let opts = PythonReqOptions {
            platform: Target::host(),
            ..PythonReqOptions::default()
        };
        let first = install_python_requirements(service.path(), None, cache.path(), &opts).unwrap();
        assert_eq!(first.outcome, InstallOutcome::Installed);
        let files = names(&first.files);
        assert!(files.contains(&"six.py"), "{files:?}");
        assert!(
            files.contains(&"six-1.16.0.dist-info/METADATA"),
            "{files:?}"
        );
        let key = first.cache_key.clone().unwrap();
        let install_dir = first.install_dir.clone().unwrap();
        assert_eq!(install_dir, cache.path().join(&key));
        assert!(
            first.native_warnings.is_empty(),
            "{:?}",
            first.native_warnings
        );
        // The local interpreter is the version installed for, so byte code was written:
        // hash-checked (flags word 3), with /var/task paths.
        let pyc = first
            .files
            .iter()
            .find(|f| f.zip_path.starts_with("__pycache__/six.") && f.zip_path.ends_with(".pyc"))
            .unwrap_or_else(|| panic!("no byte code in {files:?}"));
        let bytes = fs::read(&pyc.source).unwrap();
        assert_eq!(bytes[4..8], [3, 0, 0, 0], "checked-hash flags");
        assert!(bytes.windows(16).any(|w| w == b"/var/task/six.py"));
        // No leftovers next to the cache entry.
        let entries: Vec<_> = fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(entries, vec![key.clone()]);

        // Second call: cached, pip does not run (a marker placed in the tree survives).
        write(&install_dir, "marker.txt", "still here");
        let second =
            install_python_requirements(service.path(), None, cache.path(), &opts).unwrap();
        assert_eq!(second.outcome, InstallOutcome::Cached);
        assert_eq!(second.cache_key.as_deref(), Some(key.as_str()));
        assert!(names(&second.files).contains(&"marker.txt"));
        fs::remove_file(install_dir.join("marker.txt")).unwrap();

        // Slim from the same cache entry: no byte code, no dist-info.
        let slim = PythonReqOptions {
            slim: true,
            ..opts.clone()
        };
        let slimmed =
            install_python_requirements(service.path(), None, cache.path(), &slim).unwrap();
        assert_eq!(slimmed.outcome, InstallOutcome::Cached);
        assert_eq!(names(&slimmed.files), vec!["six.py"]);

        // An independent install (another cache) zips to the same bytes: the byte code
        // and metadata do not depend on when or where pip ran.
        let other_cache = tempfile::tempdir().unwrap();
        let again =
            install_python_requirements(service.path(), None, other_cache.path(), &opts).unwrap();
        assert_eq!(again.outcome, InstallOutcome::Installed);
        let zip = |files: &[SelectedFile]| {
            crate::zip_files(&crate::selection::zip_entries(files)).unwrap()
        };
        assert_eq!(zip(&first.files), zip(&again.files));
    }

    #[test]
    fn failing_requirement_is_named() {
        let service = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        write(
            service.path(),
            "reqs/prod.txt",
            "six==1.16.0\nsix-does-not-exist-stratus-test==0.0.404\n",
        );
        let err = install_python_requirements(
            service.path(),
            Some(Path::new("reqs/prod.txt")),
            cache.path(),
            &PythonReqOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, PythonDepsError::PipInstall { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("line 2: six-does-not-exist-stratus-test==0.0.404"),
            "{text}"
        );
        assert!(text.contains("reqs/prod.txt"), "{text}");
        // Nothing half-installed is left in the cache.
        assert_eq!(fs::read_dir(cache.path()).unwrap().count(), 0);
    }

    #[test]
    fn missing_python_and_missing_pip() {
        let service = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        write(service.path(), "requirements.txt", "six==1.16.0\n");
        let opts = PythonReqOptions {
            python: service.path().join("no-such-python"),
            ..PythonReqOptions::default()
        };
        let err =
            install_python_requirements(service.path(), None, cache.path(), &opts).unwrap_err();
        assert!(
            matches!(err, PythonDepsError::PythonNotFound { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("no-such-python"), "{err}");

        // An interpreter without pip (a stand-in script).
        let fake = service.path().join("fake-python");
        write(
            service.path(),
            "fake-python",
            "#!/bin/sh\nif [ \"$1\" = -c ]; then echo 3.11; exit 0; fi\n\
             echo \"/usr/bin/python3: No module named pip\" >&2\nexit 1\n",
        );
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let opts = PythonReqOptions {
            python: fake,
            ..PythonReqOptions::default()
        };
        let err =
            install_python_requirements(service.path(), None, cache.path(), &opts).unwrap_err();
        assert!(matches!(err, PythonDepsError::PipMissing { .. }), "{err}");
        assert!(err.to_string().contains("No module named pip"), "{err}");
    }

    #[test]
    fn nothing_to_install_and_unsupported_options() {
        let service = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        // Never runs: a missing interpreter would fail if it did.
        let opts = PythonReqOptions {
            python: PathBuf::from("/nonexistent/python"),
            dockerize_pip: true,
            zip: true,
            no_deploy: vec!["Boto3".to_owned()],
            platform: Some(Target::LinuxAarch64),
            ..PythonReqOptions::default()
        };
        let report =
            install_python_requirements(service.path(), None, cache.path(), &opts).unwrap();
        assert_eq!(report.outcome, InstallOutcome::NoRequirements);
        assert_eq!(
            report.warnings,
            vec![
                PythonWarning::DockerizePipNotSupported {
                    platform: Some(Target::LinuxAarch64)
                },
                PythonWarning::ZipNotSupported
            ]
        );
        assert!(report.warnings[0]
            .to_string()
            .contains("manylinux2014_aarch64"));
        write(
            service.path(),
            "requirements.txt",
            "# only boto\n--index-url https://pypi.org/simple\nboto3==1.0\n\n",
        );
        let report =
            install_python_requirements(service.path(), None, cache.path(), &opts).unwrap();
        assert_eq!(report.outcome, InstallOutcome::NoRequirements);
        assert!(report.files.is_empty());

        write(service.path(), "Pipfile", "[packages]\n");
        fs::remove_file(service.path().join("requirements.txt")).unwrap();
        let err =
            install_python_requirements(service.path(), None, cache.path(), &opts).unwrap_err();
        assert!(
            matches!(err, PythonDepsError::UnsupportedRequirementsFile { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("pipenv requirements"), "{err}");
    }

    #[test]
    fn requirement_parsing_and_filtering() {
        assert_eq!(normalize_name("Foo__Bar.baz"), "foo-bar-baz");
        assert_eq!(
            requirement_name("requests[socks]>=2 ; python_version>'3'"),
            Some("requests")
        );
        assert_eq!(requirement_name("  six==1.16.0 # c"), Some("six"));
        assert_eq!(requirement_name("-r other.txt"), None);
        assert_eq!(requirement_name("git+https://x/y.git"), None);
        assert_eq!(requirement_name("https://x/y.whl"), None);
        assert_eq!(requirement_name("./local"), None);
        assert_eq!(requirement_name("# comment"), None);

        let dir = Path::new("/svc");
        let text = "boto3==1\nsix\n-r base.txt\n--constraint=/abs/c.txt\npython_dateutil\n";
        let filtered = filter_requirements(text, &set(&["boto3", "python-dateutil"]), dir);
        assert_eq!(filtered, "six\n-r /svc/base.txt\n--constraint=/abs/c.txt\n");
        // Nothing dropped: the text is used as is.
        assert_eq!(filter_requirements(text, &set(&["numpy"]), dir), text);

        assert!(has_requirements("six\n"));
        assert!(has_requirements("-r base.txt\n"));
        assert!(!has_requirements("# x\n--index-url https://a\n\n"));
    }

    #[test]
    fn cache_key_and_pip_arguments() {
        let base = PythonReqOptions::default();
        let k = cache_key("six\n", "3.11", &base);
        assert_eq!(k.len(), 64);
        assert_eq!(k, cache_key("six\n", "3.11", &base));
        assert_ne!(k, cache_key("six\n", "3.12", &base));
        assert_ne!(k, cache_key("six==1\n", "3.11", &base));
        let arm = PythonReqOptions {
            platform: Some(Target::LinuxAarch64),
            ..base.clone()
        };
        assert_ne!(k, cache_key("six\n", "3.11", &arm));
        let extra = PythonReqOptions {
            pip_cmd_extra_args: vec!["--no-deps".to_owned()],
            ..base.clone()
        };
        assert_ne!(k, cache_key("six\n", "3.11", &extra));

        let args = |o: &PythonReqOptions| -> Vec<String> {
            pip_args(Path::new("r.txt"), Path::new("/c/t"), "3.12", o)
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        assert_eq!(
            args(&extra),
            vec![
                "-m",
                "pip",
                "install",
                "-r",
                "r.txt",
                "--target",
                "/c/t",
                "--disable-pip-version-check",
                "--no-input",
                "--no-compile",
                "--no-deps"
            ]
        );
        let a = args(&arm);
        assert!(a
            .join(" ")
            .contains("--platform manylinux2014_aarch64 --only-binary=:all: --python-version 3.12 --implementation cp"));
    }

    #[test]
    fn failing_requirement_from_pip_output() {
        let reqs = "six==1.16.0\nNope_Pkg==9.9\n";
        let stderr = "ERROR: Could not find a version that satisfies the requirement \
                      nope-pkg==9.9 (from versions: none)\n\
                      ERROR: No matching distribution found for nope-pkg==9.9\n";
        assert_eq!(
            failing_requirement(stderr, reqs).as_deref(),
            Some("line 2: Nope_Pkg==9.9")
        );
        let stderr = "  Building wheel for lxml (setup.py) ... error\n\
                      ERROR: Failed building wheel for lxml\nFailed to build lxml\n";
        assert_eq!(failing_requirement(stderr, reqs).as_deref(), Some("lxml"));
        assert_eq!(failing_requirement("ERROR: something else\n", reqs), None);
    }

    #[test]
    fn no_deploy_and_slim_on_installed_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "six.py", "");
        write(root, "__pycache__/six.cpython-311.pyc", "");
        write(root, "six-1.16.0.dist-info/RECORD", "six.py,sha256=x,1\n");
        write(root, "dateutil/__init__.py", "");
        write(root, "dateutil/tz/tz.py", "");
        write(root, "dateutil/tz/__pycache__/tz.cpython-311.pyc", "");
        write(root, "dateutil/tests/test_x.py", "");
        write(
            root,
            "python_dateutil-2.8.2.dist-info/RECORD",
            "dateutil/__init__.py,sha256=a,1\n\"dateutil/tz/tz.py\",sha256=b,2\n\
             python_dateutil-2.8.2.dist-info/RECORD,,\n../../escape,,\n",
        );
        write(
            root,
            "python_dateutil-2.8.2.dist-info/WHEEL",
            "Tag: py2.py3-none-any\n",
        );
        write(root, "requests/__init__.py", "");
        write(root, "requests-2.0.dist-info/WHEEL", "Tag: py3-none-any\n");

        let (files, _, native) = list_install(
            root,
            &set(&["python-dateutil"]),
            None,
            Some(Target::LinuxX86_64),
        )
        .unwrap();
        assert_eq!(
            names(&files),
            vec![
                "__pycache__/six.cpython-311.pyc",
                "dateutil/tests/test_x.py",
                "requests-2.0.dist-info/WHEEL",
                "requests/__init__.py",
                "six-1.16.0.dist-info/RECORD",
                "six.py",
            ]
        );
        assert!(native.is_empty());

        let opts = PythonReqOptions {
            slim: true,
            slim_patterns: vec!["requests/**".to_owned()],
            ..PythonReqOptions::default()
        };
        let slim = slim_matcher(&opts).unwrap();
        let (files, _, _) = list_install(root, &HashSet::new(), slim.as_ref(), None).unwrap();
        assert_eq!(
            names(&files),
            vec!["dateutil/__init__.py", "dateutil/tz/tz.py", "six.py"]
        );
        let only_custom = PythonReqOptions {
            slim_patterns_append_defaults: false,
            ..opts
        };
        let slim = slim_matcher(&only_custom).unwrap();
        let (files, _, _) = list_install(root, &HashSet::new(), slim.as_ref(), None).unwrap();
        assert!(names(&files).contains(&"__pycache__/six.cpython-311.pyc"));
        assert!(!names(&files).contains(&"requests/__init__.py"));

        let bad = PythonReqOptions {
            slim: true,
            slim_patterns: vec!["[oops".to_owned()],
            ..PythonReqOptions::default()
        };
        let err = slim_matcher(&bad).unwrap_err();
        assert!(err.to_string().contains("[oops"), "{err}");
        assert_eq!(record_path("a/b.py,sha256=x,1").as_deref(), Some("a/b.py"));
        assert_eq!(
            record_path("\"a,b.py\",sha256=x,1").as_deref(),
            Some("a,b.py")
        );
        assert_eq!(record_path("../../bin/x,,"), None);
        assert_eq!(
            pyc_source("a/__pycache__/m.cpython-311.pyc").as_deref(),
            Some("a/m.py")
        );
        assert_eq!(
            pyc_source("__pycache__/six.cpython-311.pyc").as_deref(),
            Some("six.py")
        );
    }
}
