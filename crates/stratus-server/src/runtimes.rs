//! Lambda runtime identifiers → how to start an environment for them.
//!
//! `provided*` (and `go1.x`, its alias) execs `bootstrap` from the code root. Node.js, Python and Ruby run our own
//! bootstraps (under `runtimes/` in the repository, embedded in the binary and
//! written to the data dir at start) with an interpreter resolved once to its real
//! binary (a pyenv shim script costs more than Python's own start). Java runs our
//! runtime client (`runtimes/java/`), compiled on first use ([`crate::java_runtime`]),
//! on the `java` found for the ID with Lambda's JVM flags.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

const NODE_BOOTSTRAP: &str = include_str!("../../../runtimes/node/bootstrap.js");
const PYTHON_BOOTSTRAP: &str = include_str!("../../../runtimes/python/bootstrap.py");
const RUBY_BOOTSTRAP: &str = include_str!("../../../runtimes/ruby/bootstrap.rb");

/// Interpreters and bootstrap files.
#[derive(Debug, Clone)]
pub struct Runtimes {
    interpreters: crate::interpreters::Interpreters,
    node_bootstrap: PathBuf,
    python_bootstrap: PathBuf,
    ruby_bootstrap: PathBuf,
    runtime_dir: PathBuf,
    aws_sdk: Option<crate::aws_sdk::AwsSdk>,
    /// The compiled Java runtime client, once a Java function needed it.
    java_classes: std::sync::Arc<std::sync::OnceLock<Result<PathBuf, String>>>,
}

impl Runtimes {
    /// Resolves interpreters (`node`/`python3` on PATH unless given, and the other
    /// versions [`crate::interpreters`] finds) and writes the bootstraps under `dir`.
    pub fn prepare(dir: &Path, node: Option<&str>, python: Option<&str>) -> std::io::Result<Self> {
        Self::prepare_with(
            dir,
            &crate::interpreters::Sources {
                node: node.map(str::to_string),
                python: python.map(str::to_string),
                ..Default::default()
            },
        )
    }

    /// [`Runtimes::prepare`] with every interpreter setting (`--runtime ID=PATH`,
    /// `--runtime-fallback`).
    pub fn prepare_with(
        dir: &Path,
        sources: &crate::interpreters::Sources,
    ) -> std::io::Result<Self> {
        let node_bootstrap = dir.join("node").join("bootstrap.js");
        let python_bootstrap = dir.join("python").join("bootstrap.py");
        write_if_changed(&node_bootstrap, NODE_BOOTSTRAP)?;
        write_if_changed(&python_bootstrap, PYTHON_BOOTSTRAP)?;
        let ruby_bootstrap = dir.join("ruby").join("bootstrap.rb");
        write_if_changed(&ruby_bootstrap, RUBY_BOOTSTRAP)?;
        let interpreters =
            crate::interpreters::Interpreters::discover(sources, stratus_rules::RUNTIMES)
                .map_err(std::io::Error::other)?;
        Ok(Self {
            interpreters,
            node_bootstrap,
            python_bootstrap,
            ruby_bootstrap,
            runtime_dir: dir.to_path_buf(),
            aws_sdk: None,
            java_classes: Default::default(),
        })
    }

    /// Which interpreter runs each runtime ID.
    pub fn interpreters(&self) -> &crate::interpreters::Interpreters {
        &self.interpreters
    }

    fn interpreter(&self, runtime: &str) -> Result<PathBuf, String> {
        match self.interpreters.get(runtime) {
            Some(c) => Ok(c.interpreter.path.clone()),
            None => Err(self
                .interpreters
                .check(runtime)
                .err()
                .unwrap_or_else(|| format!("unsupported runtime {runtime}"))),
        }
    }

    /// Program and arguments for `runtime` with code at `code_dir`, for a function of
    /// `memory_mb` (Java's heap is sized from it, as Lambda does).
    pub fn launch(
        &self,
        runtime: &str,
        code_dir: &Path,
        memory_mb: u32,
    ) -> Result<(PathBuf, Vec<OsString>), String> {
        if runtime.starts_with("provided") || runtime == "go1.x" {
            return Ok((code_dir.join("bootstrap"), Vec::new()));
        }
        if runtime.starts_with("nodejs") {
            let node = self.interpreter(runtime)?;
            return Ok((node, vec![self.node_bootstrap.clone().into_os_string()]));
        }
        if runtime.starts_with("python") {
            let python = self.interpreter(runtime)?;
            return Ok((
                python,
                vec!["-u".into(), self.python_bootstrap.clone().into_os_string()],
            ));
        }
        if runtime.starts_with("ruby") {
            let ruby = self.interpreter(runtime)?;
            return Ok((ruby, vec![self.ruby_bootstrap.clone().into_os_string()]));
        }
        if runtime.starts_with("java") {
            let java = self.interpreter(runtime)?;
            let classes = self.java_classes()?;
            return Ok((java, crate::java_runtime::jvm_args(&classes, memory_mb)));
        }
        Err(format!("unsupported runtime {runtime}"))
    }

    /// The Java runtime client's classes, compiled the first time they are needed
    /// (once per server and source version; see [`crate::java_runtime`]).
    pub fn java_classes(&self) -> Result<PathBuf, String> {
        self.java_classes
            .get_or_init(|| {
                let javas: Vec<PathBuf> = self
                    .interpreters
                    .runnable()
                    .filter(|(id, _)| id.starts_with("java"))
                    .map(|(_, c)| c.interpreter.path.clone())
                    .collect();
                crate::java_runtime::compile(&self.runtime_dir, &javas)
            })
            .clone()
    }

    /// The AWS SDKs functions find on their module path ([`crate::aws_sdk`]).
    pub fn with_aws_sdk(mut self, sdk: crate::aws_sdk::AwsSdk) -> Self {
        self.aws_sdk = Some(sdk);
        self
    }

    /// The AWS SDKs, when set.
    pub fn aws_sdk(&self) -> Option<&crate::aws_sdk::AwsSdk> {
        self.aws_sdk.as_ref()
    }

    /// What an isolated environment sees of the runtimes, read-only: the bootstraps
    /// at `/var/runtime` (`LAMBDA_RUNTIME_DIR`), and the installations of the
    /// interpreters (for any runtime: a `provided` bootstrap may exec them) where they
    /// are outside the system directories every environment gets — e.g. a pyenv
    /// Python under `/root/.pyenv/versions/3.11.7` appears at that path and nothing
    /// else of `/root` does.
    pub fn mounts(&self) -> Vec<stratus_scheduler::Mount> {
        let mut mounts = vec![stratus_scheduler::Mount {
            host: self.runtime_dir.clone(),
            target: PathBuf::from("/var/runtime"),
            read_only: true,
        }];
        mounts.extend(self.aws_sdk.as_ref().and_then(|s| s.mount()));
        for bin in self
            .interpreters
            .runnable()
            .map(|(_, c)| &c.interpreter.path)
        {
            // `<prefix>/bin/<interpreter>`.
            let Some(prefix) = bin.parent().and_then(Path::parent) else {
                continue;
            };
            let system = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc"]
                .iter()
                .any(|d| prefix.starts_with(d));
            if system || prefix == Path::new("/") || mounts.iter().any(|m| m.host == prefix) {
                continue;
            }
            mounts.push(stratus_scheduler::Mount {
                host: prefix.to_path_buf(),
                target: prefix.to_path_buf(),
                read_only: true,
            });
        }
        mounts
    }

    /// `LAMBDA_RUNTIME_DIR`.
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    /// Directory holding the interpreter, for the environment's PATH.
    pub fn interpreter_dir(&self, runtime: &str) -> Option<PathBuf> {
        self.interpreters
            .get(runtime)
            .and_then(|c| c.interpreter.path.parent().map(Path::to_path_buf))
    }
}

fn write_if_changed(path: &Path, content: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(content) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(tmp, path)
}

/// Finds the real Python binary behind `name` (pyenv and other shims are scripts).
pub fn resolve_python(name: &str) -> Result<PathBuf, String> {
    let found = stratus_sandbox::which(name).ok_or_else(|| {
        format!("the Python interpreter '{name}' was not found on PATH (set --python)")
    })?;
    let out = std::process::Command::new(&found)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", found.display()))?;
    let real = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !real.is_empty() {
        Ok(PathBuf::from(real))
    } else {
        Ok(found)
    }
}
