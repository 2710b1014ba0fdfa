//! `stratus server install-sdk`: fills a server's AWS SDK directory (boto3 for the
//! Python runtimes, the AWS SDK for JavaScript v3 for the Node.js ones) from the
//! registries with npm and pip, at the versions `stratus_server::aws_sdk` pins. The
//! server itself never downloads: it finds what this put there at start.

use std::path::PathBuf;

use clap::Args;
use stratus_server::aws_sdk;

/// `stratus server install-sdk`.
#[derive(Debug, Clone, Args)]
pub(crate) struct InstallSdkArgs {
    /// Data directory of the server (the SDKs go to `{data-dir}/aws-sdk`).
    #[arg(long, default_value = "./.stratus", env = "STRATUS_DATA_DIR")]
    data_dir: PathBuf,
    /// Install here instead (as `stratus server --aws-sdk DIR` reads it).
    #[arg(long, env = "STRATUS_AWS_SDK")]
    aws_sdk: Option<PathBuf>,
    /// The npm to run.
    #[arg(long, default_value = "npm")]
    npm: String,
    /// The Python whose pip installs boto3 (boto3 is pure Python: one copy serves
    /// every python* runtime).
    #[arg(long, default_value = "python3")]
    python: String,
}

/// Runs npm and pip into the directory and reports what is there.
pub(crate) fn install_sdk(args: InstallSdkArgs) -> anyhow::Result<()> {
    let dir = args
        .aws_sdk
        .unwrap_or_else(|| args.data_dir.join("aws-sdk"));
    println!(
        "installing @aws-sdk/* {} ({}) and boto3 {} into {}",
        aws_sdk::NODE_SDK_VERSION,
        aws_sdk::NODE_PACKAGES.join(", "),
        aws_sdk::BOTO3_VERSION,
        dir.display()
    );
    let sdk = aws_sdk::install(&dir, &args.npm, &args.python).map_err(anyhow::Error::msg)?;
    match (sdk.node_version(), sdk.python_version()) {
        (Some(n), Some(p)) => {
            println!(
                "installed: AWS SDK for JavaScript {n}, boto3 {p} in {}",
                sdk.dir().display()
            );
            Ok(())
        }
        _ => anyhow::bail!(
            "npm and pip ran but {} does not hold both SDKs: {}",
            sdk.dir().display(),
            sdk.warnings().join("; ")
        ),
    }
}
