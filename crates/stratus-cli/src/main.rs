//! The `stratus` binary: `server` runs the daemon, `demo` runs it with a bundled
//! example function created, warmed and invoked, `bench` measures the invocation
//! path.

mod bench;
mod client;
mod demo;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use stratus_server::ServerConfig;

#[derive(Debug, Parser)]
#[command(
    name = "stratus",
    version,
    about = "Self-hosted serverless: AWS Lambda-compatible functions with provisioned concurrency"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Stratus server (Lambda management, Invoke and Runtime APIs).
    Server(ServerArgs),
    /// Start a server with the bundled example function, warm it and invoke it.
    Demo {
        #[command(flatten)]
        server: ServerArgs,
        /// Exit after the demo instead of serving until Ctrl-C.
        #[arg(long)]
        exit: bool,
    },
    /// Benchmark the invocation path against an embedded server.
    Bench(bench::BenchArgs),
}

/// Server settings (every Lambda default can be changed here).
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// Data directory: state, code and logs.
    #[arg(long, default_value = "./.stratus", env = "STRATUS_DATA_DIR")]
    data_dir: PathBuf,
    /// API listen address.
    #[arg(long, default_value = "127.0.0.1:9000", env = "STRATUS_LISTEN")]
    listen: SocketAddr,
    /// Node.js interpreter for nodejs* runtimes.
    #[arg(long, env = "STRATUS_NODE")]
    node: Option<String>,
    /// Python interpreter for python* runtimes.
    #[arg(long, env = "STRATUS_PYTHON")]
    python: Option<String>,
    /// Account concurrency limit.
    #[arg(long, default_value_t = 1000)]
    account_concurrency: u32,
    /// Concurrency reservations may not take from the account.
    #[arg(long, default_value_t = 100)]
    unreserved_minimum: u32,
    /// New on-demand environments per function per 10 seconds.
    #[arg(long, default_value_t = 1000)]
    scaling_rate: u32,
    /// Seconds an idle on-demand environment is kept warm.
    #[arg(long, default_value_t = 600)]
    idle_keep_alive: u64,
    /// Days log lines are kept.
    #[arg(long, default_value_t = 7)]
    log_retention_days: u64,
    /// Seconds in-flight invocations may finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Region used in ARNs and AWS_REGION.
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

impl ServerArgs {
    /// The server configuration these arguments describe.
    pub(crate) fn config(&self) -> ServerConfig {
        let mut cfg = ServerConfig::new(&self.data_dir, self.listen);
        cfg.node = self.node.clone();
        cfg.python = self.python.clone();
        cfg.settings.account_concurrency = self.account_concurrency;
        cfg.settings.unreserved_minimum = self.unreserved_minimum;
        cfg.settings.scaling_rate_per_10s = self.scaling_rate;
        cfg.settings.idle_keep_alive = Duration::from_secs(self.idle_keep_alive);
        cfg.log_retention = Duration::from_secs(self.log_retention_days * 24 * 3600);
        cfg.shutdown_grace = Duration::from_secs(self.shutdown_grace);
        cfg.region = self.region.clone();
        cfg
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATUS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Server(args) => serve(args).await,
            Command::Demo { server, exit } => demo::run(server, exit).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Waits for SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let server = stratus_server::start(args.config()).await?;
    tracing::info!(addr = %server.addr(), data_dir = %args.data_dir.display(), "stratus server listening");
    println!("stratus server listening on http://{}", server.addr());
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight invocations");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
