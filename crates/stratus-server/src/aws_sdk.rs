//! The AWS SDKs inside the runtimes, as Lambda ships them: boto3/botocore for every
//! Python runtime, the AWS SDK for JavaScript v3 (`@aws-sdk/client-*`) for the
//! Node.js runtimes (all of them are 18 or later).
//!
//! Design:
//! - One directory per server (`--aws-sdk DIR`, default `{data-dir}/aws-sdk`) holds
//!   `node/node_modules/@aws-sdk/…` and `python/boto3/…`. It is filled once from the
//!   registries by `stratus server install-sdk` ([`install`]: `npm install` and
//!   `pip install --target` at the versions pinned here); the server never downloads
//!   anything, and [`AwsSdk::detect`] only looks at what is there at start.
//! - A function finds it through its runtime's module path, after its own code, as
//!   in Lambda: `NODE_PATH` (Node resolves `node_modules` from the requiring file
//!   upwards before `NODE_PATH`, so a bundled `@aws-sdk/client-lambda` wins) and
//!   `PYTHONPATH` (after the task root, which the bootstrap puts first, and before
//!   the interpreter's own site-packages, so the pinned boto3 wins over the host's).
//! - Under the `linux` sandbox the directory is bound read-only at
//!   [`SANDBOX_TARGET`]; the sandbox rewrites the two variables through its mounts.
//! - A missing half is a start-up warning (`stratus server`) and is shown in
//!   `GET /stratus/v1/health`, not an import error discovered in a function.
//!
//! The variables are computed when an environment's spec is built, never per invoke.

use std::path::{Path, PathBuf};

/// The pinned AWS SDK for JavaScript v3 version (every `@aws-sdk/*` package below).
pub const NODE_SDK_VERSION: &str = "3.1178.0";
/// The pinned boto3 (and botocore) version.
pub const BOTO3_VERSION: &str = "1.44.8";
/// The `@aws-sdk` packages installed: the clients functions most use (Lambda's
/// runtime carries all of them; these are the ones Stratus serves or that
/// functions commonly call).
pub const NODE_PACKAGES: [&str; 11] = [
    "client-lambda",
    "client-sqs",
    "client-s3",
    "client-dynamodb",
    "lib-dynamodb",
    "client-sts",
    "client-sns",
    "client-eventbridge",
    "client-ssm",
    "client-secrets-manager",
    "client-cloudwatch-logs",
];
/// Where an isolated environment sees the SDK directory (read-only).
pub const SANDBOX_TARGET: &str = "/var/lang/aws-sdk";

/// What an SDK directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSdk {
    dir: PathBuf,
    /// `@aws-sdk/client-lambda`'s version, when installed.
    node: Option<String>,
    /// boto3's version, when installed.
    python: Option<String>,
}

impl AwsSdk {
    /// Looks at `dir` (nothing is created or downloaded).
    pub fn detect(dir: &Path) -> Self {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let node = std::fs::read_to_string(
            node_modules(&dir)
                .join("@aws-sdk")
                .join("client-lambda")
                .join("package.json"),
        )
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v.get("version")?.as_str().map(str::to_string));
        let python = std::fs::read_to_string(python_dir(&dir).join("boto3").join("__init__.py"))
            .ok()
            .and_then(|s| boto3_version(&s));
        Self { dir, node, python }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The installed JavaScript SDK version.
    pub fn node_version(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// The installed boto3 version.
    pub fn python_version(&self) -> Option<&str> {
        self.python.as_deref()
    }

    /// The module-path variable for `runtime` (`NODE_PATH` / `PYTHONPATH`), when
    /// that half of the SDK is installed.
    pub fn env_for(&self, runtime: &str) -> Option<(&'static str, String)> {
        if runtime.starts_with("nodejs") && self.node.is_some() {
            return Some(("NODE_PATH", node_modules(&self.dir).display().to_string()));
        }
        if runtime.starts_with("python") && self.python.is_some() {
            return Some(("PYTHONPATH", python_dir(&self.dir).display().to_string()));
        }
        None
    }

    /// The read-only mount for the sandbox, when anything is installed.
    pub fn mount(&self) -> Option<stratus_scheduler::Mount> {
        (self.node.is_some() || self.python.is_some()).then(|| stratus_scheduler::Mount {
            host: self.dir.clone(),
            target: PathBuf::from(SANDBOX_TARGET),
            read_only: true,
        })
    }

    /// Start-up warnings: one per missing half, saying how to install it.
    pub fn warnings(&self) -> Vec<String> {
        let fix = format!(
            "run `stratus server install-sdk --aws-sdk {}` (needs npm and pip) and restart",
            self.dir.display()
        );
        let mut w = Vec::new();
        if self.node.is_none() {
            w.push(format!(
                "the AWS SDK for JavaScript is not installed in {}: nodejs* functions that \
                 require(\"@aws-sdk/…\") without bundling it will fail to load; {fix}",
                self.dir.display()
            ));
        }
        if self.python.is_none() {
            w.push(format!(
                "boto3 is not installed in {}: python* functions that import boto3 without \
                 bundling it get whatever the interpreter has, if anything; {fix}",
                self.dir.display()
            ));
        }
        w
    }

    /// For `GET /stratus/v1/health`.
    pub fn health(&self) -> serde_json::Value {
        serde_json::json!({
            "dir": self.dir.display().to_string(),
            "nodejs": self.node,
            "python": self.python,
        })
    }
}

fn node_modules(dir: &Path) -> PathBuf {
    dir.join("node").join("node_modules")
}

fn python_dir(dir: &Path) -> PathBuf {
    dir.join("python")
}

/// `__version__ = '1.44.8'` in boto3's `__init__.py`.
fn boto3_version(init: &str) -> Option<String> {
    init.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("__version__")?.trim_start();
        let v = rest.strip_prefix('=')?.trim().trim_matches(['\'', '"']);
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// Installs the pinned SDKs into `dir` with `npm` and `python -m pip`, printing
/// their output. Either tool missing is an error naming it.
pub fn install(dir: &Path, npm: &str, python: &str) -> Result<AwsSdk, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let node_dir = dir.join("node");
    let mut npm_cmd = std::process::Command::new(npm);
    npm_cmd
        .arg("install")
        .arg("--prefix")
        .arg(&node_dir)
        .args([
            "--no-audit",
            "--no-fund",
            "--no-package-lock",
            "--omit=dev",
            "--loglevel=error",
        ])
        .args(
            NODE_PACKAGES
                .iter()
                .map(|p| format!("@aws-sdk/{p}@{NODE_SDK_VERSION}")),
        );
    run(npm_cmd, npm)?;
    let mut pip = std::process::Command::new(python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--upgrade",
        "--no-warn-conflicts",
        "--disable-pip-version-check",
        "--target",
    ])
    .arg(python_dir(dir))
    .arg(format!("boto3=={BOTO3_VERSION}"))
    .arg(format!("botocore=={BOTO3_VERSION}"));
    run(pip, &format!("{python} -m pip"))?;
    Ok(AwsSdk::detect(dir))
}

fn run(mut cmd: std::process::Command, name: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {name}: {e} (is it installed and on PATH?)"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_boto3_version() {
        assert_eq!(
            boto3_version("import x\n__version__ = '1.44.8'\n").as_deref(),
            Some("1.44.8")
        );
        assert_eq!(boto3_version("__version__=\"2\"").as_deref(), Some("2"));
        assert_eq!(boto3_version("version = 1"), None);
    }

    #[test]
    fn empty_dir_has_nothing_and_warns_twice() {
        let d = tempfile::tempdir().unwrap();
        let sdk = AwsSdk::detect(d.path());
        assert_eq!(sdk.node_version(), None);
        assert_eq!(sdk.env_for("nodejs20.x"), None);
        assert_eq!(sdk.env_for("python3.12"), None);
        assert!(sdk.mount().is_none());
        assert_eq!(sdk.warnings().len(), 2);
    }

    #[test]
    fn detects_each_half() {
        let d = tempfile::tempdir().unwrap();
        let pkg = d.path().join("node/node_modules/@aws-sdk/client-lambda");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("package.json"), r#"{"version":"3.1.2"}"#).unwrap();
        let sdk = AwsSdk::detect(d.path());
        assert_eq!(sdk.node_version(), Some("3.1.2"));
        let (k, v) = sdk.env_for("nodejs22.x").unwrap();
        assert_eq!(k, "NODE_PATH");
        assert!(v.ends_with("node/node_modules"));
        assert_eq!(sdk.env_for("python3.11"), None);
        assert_eq!(sdk.warnings().len(), 1);
        assert!(sdk.mount().unwrap().read_only);
    }
}
