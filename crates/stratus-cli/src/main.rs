//! The `stratus` binary. Two families of commands:
//!
//! - the daemon and its tools: `server`, `demo` (the embedded default), `bench`;
//! - the Serverless Framework's commands, run from a service directory with a
//!   `serverless.yml`: `create`, `package`, `deploy` (`deploy function`, `deploy
//!   list`), `rollback`, `remove`, `invoke` (`invoke local`), `logs`, `info`,
//!   `print`, `metrics`, `dev`.
//!
//! Modules: `project` (load and resolve serverless.yml), `pack` (build, select and zip
//! code; deterministic), `commands/*` (one file per command), `client` (HTTP client
//! for the server's APIs), `ui` (progress and output).

mod bench;
mod commands;
mod demo;
mod pack;
mod project;
mod server_listen;
mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use stratus_cli::client;
use stratus_cli::transport::Transport;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use stratus_server::ServerConfig;

#[derive(Debug, Parser)]
#[command(
    name = "stratus",
    version,
    propagate_version = true,
    disable_version_flag = true,
    about = "Self-hosted serverless: AWS Lambda-compatible functions with provisioned concurrency"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

/// Options every service command understands (as the Serverless Framework's).
#[derive(Debug, Clone, Args)]
pub(crate) struct Global {
    /// The Stratus server to talk to.
    #[arg(
        long,
        global = true,
        env = "STRATUS_ENDPOINT",
        default_value = "http://127.0.0.1:9000"
    )]
    pub(crate) endpoint: String,
    /// Path to serverless.yml (default: serverless.yml/.yaml/.json in the current directory).
    #[arg(long, short = 'c', global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Stage (default: provider.stage, else dev).
    #[arg(long, short = 's', global = true)]
    pub(crate) stage: Option<String>,
    /// Region (default: provider.region, else us-east-1).
    #[arg(long, short = 'r', global = true)]
    pub(crate) region: Option<String>,
    /// Parameters for `${param:...}`, as `--param="key=value"`.
    #[arg(long = "param", global = true)]
    pub(crate) params: Vec<String>,
    /// List every step.
    #[arg(long, global = true)]
    pub(crate) verbose: bool,
    /// Unknown keys in serverless.yml are errors instead of warnings.
    #[arg(long, global = true)]
    pub(crate) strict: bool,
    /// Debug logs (all of Stratus's with `*`, the default; or one module, e.g.
    /// `stratus_server`). STRATUS_LOG, when set, wins.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "*", value_name = "NAMESPACE")]
    pub(crate) debug: Option<String>,
    /// The profile of the shared credentials file to sign requests with (as
    /// AWS_PROFILE).
    #[arg(long = "aws-profile", global = true, value_name = "PROFILE")]
    pub(crate) aws_profile: Option<String>,
    /// Verify the server's TLS certificate against this PEM CA bundle instead of
    /// the system's roots (as the AWS CLI's --ca-bundle; AWS_CA_BUNDLE too).
    #[arg(long, global = true, env = "AWS_CA_BUNDLE", value_name = "FILE")]
    pub(crate) ca_bundle: Option<PathBuf>,
    /// Allow plain http:// to a server that is not on loopback (unencrypted).
    #[arg(long, global = true)]
    pub(crate) insecure: bool,
    /// No effect on Stratus (Serverless Dashboard app).
    #[arg(long, global = true)]
    pub(crate) app: Option<String>,
    /// No effect on Stratus (Serverless Dashboard org).
    #[arg(long, global = true)]
    pub(crate) org: Option<String>,
    /// No effect on Stratus (no AWS credentials are used).
    #[arg(long = "use-local-credentials", global = true)]
    pub(crate) use_local_credentials: bool,
}

impl Global {
    /// Notes for the options that are accepted for compatibility but mean nothing here.
    fn note_no_ops(&self) {
        if self.use_local_credentials {
            ui::no_effect(
                "use-local-credentials",
                "it signs with the credentials it finds as the AWS SDKs do",
            );
        }
        if self.app.is_some() {
            ui::no_effect("app", "there is no Serverless Dashboard");
        }
        if self.org.is_some() {
            ui::no_effect("org", "there is no Serverless Dashboard");
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Stratus server (Lambda management, Invoke and Runtime APIs).
    Server(ServerCommand),
    /// Start a server with the bundled example function, warm it and invoke it.
    Demo {
        #[command(flatten)]
        server: ServerArgs,
        /// Exit after the demo instead of serving until Ctrl-C.
        #[arg(long)]
        exit: bool,
    },
    /// Benchmark the invocation path against a server process.
    Bench(bench::BenchArgs),
    /// Create a new service from a template.
    Create(commands::create::CreateArgs),
    /// Package the service into deterministic zips under .serverless/.
    Package(commands::deploy::PackageArgs),
    /// Deploy the service (or one function, or list deployments).
    Deploy(commands::deploy::DeployArgs),
    /// Roll the service back to an earlier deployment.
    Rollback(commands::deploy::RollbackArgs),
    /// Remove the service's stage and everything it owns.
    Remove,
    /// Invoke a deployed function (or run it locally with `invoke local`).
    Invoke(commands::invoke::InvokeArgs),
    /// Show a function's logs.
    Logs(commands::logs::LogsArgs),
    /// Show the deployed service.
    Info(commands::info::InfoArgs),
    /// Print serverless.yml as `serverless print` does (variables resolved), or the resolved model (`--model`).
    Print(commands::info::PrintArgs),
    /// Invocation counts per function.
    Metrics(commands::info::MetricsArgs),
    /// The server's access keys: create, list, delete, attach-policy, detach-policy.
    Keys(commands::keys::KeysArgs),
    /// The built-in queues: list, send, receive, purge.
    Queue(commands::queue::QueueArgs),
    /// Run a local server, deploy the service, and redeploy on every change.
    Dev(commands::dev::DevArgs),
    /// The cluster's nodes: `stratus cluster status`.
    Cluster(commands::cluster::ClusterArgs),
}

/// `stratus server`: serve, or a tool for a stopped server's data dir.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct ServerCommand {
    #[command(subcommand)]
    action: Option<ServerAction>,
    #[command(flatten)]
    args: ServerArgs,
}

#[derive(Debug, Subcommand)]
enum ServerAction {
    /// Replace the master key (re-wrapping every data key) of a stopped server's
    /// data dir; `--new-data-key` also starts a new data key for new writes.
    RotateKey(commands::rotate_key::RotateKeyArgs),
    /// Install the AWS SDKs the runtimes provide (boto3, @aws-sdk/client-*) with
    /// npm and pip into `{data-dir}/aws-sdk` (or `--aws-sdk DIR`).
    InstallSdk(commands::install_sdk::InstallSdkArgs),
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
    /// Directory of the AWS SDKs functions get without bundling them (default
    /// `{data-dir}/aws-sdk`; fill it with `stratus server install-sdk`).
    #[arg(long, env = "STRATUS_AWS_SDK")]
    aws_sdk: Option<PathBuf>,
    /// The interpreter of one runtime ID, e.g. `--runtime python3.12=/opt/py312/bin/python3`
    /// (repeatable; its version must be the ID's). Others are found on PATH and in pyenv.
    #[arg(long = "runtime", value_name = "ID=PATH", value_parser = parse_runtime_flag)]
    runtimes: Vec<(String, String)>,
    /// A runtime ID whose exact interpreter version is not installed: `refuse` it at
    /// CreateFunction/deploy, or run it on the `nearest` installed version (with a
    /// warning at deploy, in health and in `stratus info`).
    #[arg(long, default_value = "refuse", value_parser = ["refuse", "nearest"], env = "STRATUS_RUNTIME_FALLBACK")]
    runtime_fallback: String,
    /// Runtime IDs AWS Lambda has deprecated (nodejs12.x–16.x, python3.7/3.8, ruby2.7,
    /// java8, java11, dotnet6): `refuse` them with Lambda's message, or run Node.js and
    /// Python ones on the `nearest` supported runtime (nodejs18.x, python3.9) with a
    /// warning at deploy, in health and in `stratus info`.
    #[arg(long, default_value = "refuse", value_parser = ["refuse", "nearest"], env = "STRATUS_LEGACY_RUNTIMES")]
    legacy_runtimes: String,
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
    /// Most MB of log lines kept in logs.db; past it the oldest lines are deleted.
    #[arg(long, default_value_t = 2048)]
    log_max_mb: u64,
    /// Seconds in-flight invocations may finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Seconds before the first retry of a failed asynchronous event (the second
    /// retry waits twice as long; Lambda waits about a minute, then two).
    #[arg(long, default_value_t = 60.0)]
    async_retry_delay: f64,
    /// NATS server with JetStream (`nats://host:4222`) that keeps accepted
    /// asynchronous events, shared by every node using it (instead of events.db).
    #[arg(long, env = "STRATUS_NATS", value_parser = parse_nats_url)]
    nats: Option<String>,
    /// Serve the HTTP gateway (`http`/`httpApi` events, function URLs) on this
    /// address; `--gateway` alone uses 127.0.0.1:3000.
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:3000")]
    gateway: Option<SocketAddr>,
    /// Region used in ARNs and AWS_REGION (and the region requests are signed for).
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[command(flatten)]
    transport: server_listen::ListenArgs,
    /// Accept unsigned requests on the API (local development only: refused unless
    /// the API listens on a loopback address).
    #[arg(long)]
    no_auth: bool,
    /// Sandbox driver: `linux` (namespaces, cgroups, seccomp; needs root), `process`
    /// (no isolation) or `auto` (linux where the kernel allows it).
    #[arg(long, default_value = "auto", value_parser = ["auto", "linux", "process"], env = "STRATUS_SANDBOX")]
    sandbox: String,
    /// The linux driver's seccomp filter: on or off.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    seccomp: String,
    /// How functions with egress (`custom.stratus.egress`) reach the outside under
    /// the linux driver: `routed` (their own network namespace, a veth pair, NAT;
    /// the host and other environments firewalled off) or `host` (the host's
    /// network namespace, its loopback ports included).
    #[arg(long, default_value = "routed", value_parser = ["routed", "host"], env = "STRATUS_EGRESS_MODE")]
    egress_mode: String,
    /// The private IPv4 range routed egress takes addresses from, a /30 per running
    /// environment with egress (the default, carrier-grade NAT space, holds 16,384).
    #[arg(long, default_value = "100.96.0.0/16", value_parser = parse_egress_pool)]
    egress_pool: stratus_server::Ipv4Cidr,
    /// How long per-minute metrics are kept: a number with `d`, `h` or `m`
    /// (CloudWatch keeps one-minute data 15 days).
    #[arg(long, default_value = "15d", value_parser = parse_retention)]
    metrics_retention: Duration,
    /// Answer `GET /metrics` (Prometheus) without a signature; every other route
    /// stays signed.
    #[arg(long)]
    metrics_open: bool,
    /// Record no metrics (benchmark baseline).
    #[arg(long, hide = true)]
    no_metrics_recording: bool,
    /// Server log lines on stderr: `text`, or `json` (one object per line, with
    /// the invocation's `request_id` in `span`/`spans` on lines about it).
    #[arg(long, default_value = "text", value_parser = ["text", "json"], env = "STRATUS_LOG_FORMAT")]
    log_format: String,
    /// Simulated seconds per real second of the autoscaler's clock (tests and
    /// benchmarks: 60 makes a real second a minute of alarms and schedules).
    #[arg(long, default_value_t = 1.0, hide = true)]
    autoscale_clock_speed: f64,
    /// Schedule time per real second, counted from each schedule's deployment (tests:
    /// 30 fires `rate(1 minute)` every 2 s; every node of a cluster must agree).
    #[arg(long, default_value_t = 1.0, hide = true, value_parser = parse_clock_speed)]
    schedule_clock_speed: f64,
    /// Cluster mode: keep shared state in this PostgreSQL database
    /// (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE); needs --blobs.
    #[arg(long, env = "STRATUS_CLUSTER", value_name = "POSTGRES_URL")]
    cluster: Option<String>,
    /// Where code packages are kept: file:///dir (a directory every node of the
    /// cluster mounts). Default: the data dir.
    #[arg(long, env = "STRATUS_BLOBS", value_name = "URL")]
    blobs: Option<String>,
    /// Where the other nodes of the cluster reach this node's API (default: the
    /// listen address, which must then not be 0.0.0.0).
    #[arg(long, env = "STRATUS_ADVERTISE", value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// This node's stable name in the cluster (default: one generated at the first
    /// start, kept in {data-dir}/node-id).
    #[arg(long, env = "STRATUS_NODE_ID", value_name = "ID")]
    node_id: Option<String>,
    /// In a cluster, the leader deletes the row of a node without a heartbeat
    /// (stopped or dead) for this long: a number with d, h or m.
    #[arg(long, default_value = "24h", value_parser = parse_retention)]
    forget_nodes_after: Duration,
}

/// `--nats`: `nats://host:port` or `tls://host:port` (`host:port` means `nats://`).
fn parse_nats_url(raw: &str) -> Result<String, String> {
    let rest = match raw.split_once("://") {
        None => raw,
        Some(("nats" | "tls", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "{raw:?}: a NATS URL starts with nats:// or tls://, not {scheme}://"
            ))
        }
    };
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(format!(
            "{raw:?}: expected a NATS URL such as nats://127.0.0.1:4222"
        ));
    }
    Ok(raw.to_string())
}

/// `14d`, `36h`, `90m`.
/// `--schedule-clock-speed`: a number from 1 to 3600.
fn parse_clock_speed(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if (1.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{raw:?}: expected a number from 1 (the real clock) to 3600"
        )),
    }
}

fn parse_egress_pool(raw: &str) -> Result<stratus_server::Ipv4Cidr, String> {
    raw.parse()
}

fn parse_retention(raw: &str) -> Result<Duration, String> {
    let (n, unit) = raw.split_at(raw.len().saturating_sub(1));
    let secs = match unit {
        "d" => 86400,
        "h" => 3600,
        "m" => 60,
        _ => {
            return Err(format!(
                "{raw:?}: expected a number with d, h or m, such as 14d"
            ))
        }
    };
    match n.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n * secs)),
        _ => Err(format!(
            "{raw:?}: expected a positive number with d, h or m, such as 14d"
        )),
    }
}

impl ServerArgs {
    /// The server configuration these arguments describe.
    pub(crate) fn config(&self) -> ServerConfig {
        let mut cfg = ServerConfig::new(&self.data_dir, self.listen);
        cfg.node = self.node.clone();
        cfg.python = self.python.clone();
        cfg.aws_sdk = self.aws_sdk.clone();
        cfg.runtimes = self.runtimes.clone();
        cfg.runtime_fallback = if self.runtime_fallback == "nearest" {
            stratus_server::interpreters::Fallback::Nearest
        } else {
            stratus_server::interpreters::Fallback::Refuse
        };
        cfg.legacy_runtimes = if self.legacy_runtimes == "nearest" {
            stratus_server::interpreters::Fallback::Nearest
        } else {
            stratus_server::interpreters::Fallback::Refuse
        };
        cfg.settings.account_concurrency = self.account_concurrency;
        cfg.settings.unreserved_minimum = self.unreserved_minimum;
        cfg.settings.scaling_rate_per_10s = self.scaling_rate;
        cfg.settings.idle_keep_alive = Duration::from_secs(self.idle_keep_alive);
        cfg.log_limits = stratus_server::logs::LogLimits {
            max_age: Duration::from_secs(self.log_retention_days * 24 * 3600),
            max_bytes: self.log_max_mb.saturating_mul(1 << 20),
        };
        cfg.shutdown_grace = Duration::from_secs(self.shutdown_grace);
        cfg.region = self.region.clone();
        cfg.gateway = self.gateway;
        cfg.no_auth = self.no_auth;
        cfg.async_settings.retry_base = Duration::from_secs_f64(self.async_retry_delay.max(0.0));
        cfg.nats = self.nats.clone();
        // From the environment only: a key on the command line would show in `ps`.
        cfg.master_key = std::env::var(stratus_seal::MASTER_KEY_ENV).ok();
        self.transport.apply(&mut cfg);
        cfg.sandbox = match self.sandbox.as_str() {
            "linux" => stratus_server::SandboxMode::Linux,
            "process" => stratus_server::SandboxMode::Process,
            _ => stratus_server::SandboxMode::Auto,
        };
        cfg.seccomp = self.seccomp == "on";
        cfg.egress = stratus_server::EgressOptions {
            mode: match self.egress_mode.as_str() {
                "host" => stratus_server::EgressMode::Host,
                _ => stratus_server::EgressMode::Routed,
            },
            pool: self.egress_pool,
        };
        cfg.metrics.retention = self.metrics_retention;
        cfg.metrics.record = !self.no_metrics_recording;
        cfg.metrics_open = self.metrics_open;
        cfg.autoscale_clock_speed = self.autoscale_clock_speed;
        cfg.schedule_clock_speed = self.schedule_clock_speed;
        cfg.cluster = stratus_server::cluster::ClusterFlags {
            url: self.cluster.clone(),
            blobs: self.blobs.clone(),
            advertise: self.advertise.clone(),
            node_id: self.node_id.clone(),
        };
        cfg.forget_nodes_after = self.forget_nodes_after;
        cfg
    }
}

/// The command line's definition: the derived one, plus `-v`/`--version` on every
/// command as in the Serverless Framework (clap's own flag is `-V`, kept as an alias).
fn cli_command() -> clap::Command {
    Cli::command().arg(
        clap::Arg::new("version")
            .short('v')
            .short_alias('V')
            .long("version")
            .action(clap::ArgAction::Version)
            .global(true)
            .help("Print version"),
    )
}

/// With `STRATUS_CHECK_ARGS` set, `stratus` only parses its arguments and prints what
/// it understood as JSON: `{"command": [...], "options": {"long-name": [values]}}`
/// (options by their long name, however they were spelled). The differential test
/// against the Serverless Framework's own option schema drives this.
fn parsed_options(cmd: &clap::Command, matches: &clap::ArgMatches) -> serde_json::Value {
    let (mut cmd, mut m) = (cmd, matches);
    let mut path = Vec::new();
    while let Some((name, sub)) = m.subcommand() {
        let Some(c) = cmd.find_subcommand(name) else {
            break;
        };
        path.push(name.to_string());
        (cmd, m) = (c, sub);
    }
    let mut options = serde_json::Map::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id();
        if m.value_source(id.as_str()) != Some(clap::parser::ValueSource::CommandLine) {
            continue;
        }
        let values: Vec<String> = m
            .get_raw(id.as_str())
            .into_iter()
            .flatten()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let name = arg.get_long().unwrap_or(id.as_str()).to_string();
        options.insert(name, values.into());
    }
    serde_json::json!({ "command": path, "options": options })
}

fn main() -> std::process::ExitCode {
    let mut cmd = cli_command();
    let matches = cmd.get_matches_mut();
    if std::env::var_os("STRATUS_CHECK_ARGS").is_some() {
        println!("{}", parsed_options(&cmd, &matches));
        return std::process::ExitCode::SUCCESS;
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.format(&mut cmd).exit(),
    };
    let default_level = match cli.command {
        Command::Server(_) | Command::Demo { .. } => "info",
        _ => "warn",
    };
    let filter = match &cli.global.debug {
        Some(ns) if ns.is_empty() || ns == "*" => "debug".to_string(),
        Some(ns) => format!("{default_level},{ns}=debug"),
        None => default_level.to_string(),
    };
    let env_filter = tracing_subscriber::EnvFilter::try_from_env("STRATUS_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&filter))
        .unwrap_or_else(|_| default_level.into());
    let json_logs = match &cli.command {
        Command::Server(s) => s.args.log_format == "json",
        Command::Demo { server, .. } => server.log_format == "json",
        _ => false,
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    if json_logs {
        // One JSON object per line; the invocation's span (request_id, function,
        // version) rides on every line logged inside it.
        logs.json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        logs.init();
    }
    cli.global.note_no_ops();
    if let Some(profile) = &cli.global.aws_profile {
        // Before any thread exists: the signer reads it like the AWS SDKs do.
        std::env::set_var("AWS_PROFILE", profile);
    }
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
    let g = cli.global;
    // How this process reaches servers: the CA to trust, and whether plain HTTP
    // beyond loopback is allowed; refused endpoints fail here, before any work.
    if let Err(e) = set_transport(&g, &cli.command, &matches) {
        eprintln!("{} {e:#}", ui::error_prefix());
        return std::process::ExitCode::FAILURE;
    }
    let result = rt.block_on(async {
        match cli.command {
            Command::Server(ServerCommand {
                action: Some(ServerAction::RotateKey(args)),
                ..
            }) => commands::rotate_key::rotate_key(args),
            Command::Server(ServerCommand {
                action: Some(ServerAction::InstallSdk(args)),
                ..
            }) => commands::install_sdk::install_sdk(args),
            Command::Server(s) => serve(s.args).await,
            Command::Demo { server, exit } => demo::run(server, exit).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Create(args) => commands::create::run(args),
            Command::Package(args) => commands::deploy::package(&g, args).await,
            Command::Deploy(args) => commands::deploy::run(&g, args).await,
            Command::Rollback(args) => commands::deploy::rollback(&g, args).await,
            Command::Remove => commands::deploy::remove(&g).await,
            Command::Invoke(args) => commands::invoke::run(&g, args).await,
            Command::Logs(args) => commands::logs::run(&g, args).await,
            Command::Info(args) => commands::info::info(&g, args).await,
            Command::Print(args) => commands::info::print(&g, args),
            Command::Metrics(args) => commands::info::metrics(&g, args).await,
            Command::Dev(args) => commands::dev::run(&g, args).await,
            Command::Queue(args) => commands::queue::run(&g, args).await,
            Command::Keys(args) => commands::keys::run(&g, args).await,
            Command::Cluster(args) => commands::cluster::run(&g, args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<ui::Exit>() {
                return std::process::ExitCode::from(exit.0);
            }
            eprintln!("{} {e:#}", ui::error_prefix());
            std::process::ExitCode::FAILURE
        }
    }
}

/// Sets this process's [`Transport`] from `--ca-bundle`/`AWS_CA_BUNDLE` and
/// `--insecure`, and refuses `--endpoint` up front (a clear error, before any work)
/// when it is plain HTTP beyond loopback. Commands that run a server of their own
/// or talk to none skip it.
fn set_transport(g: &Global, command: &Command, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    let talks_to_endpoint = match command {
        Command::Server(_) | Command::Demo { .. } | Command::Create(_) | Command::Print(_) => {
            return Ok(())
        }
        Command::Bench(_) | Command::Package(_) | Command::Dev(_) => false,
        Command::Invoke(_) => {
            matches
                .subcommand_matches("invoke")
                .and_then(|m| m.subcommand_name())
                != Some("local")
        }
        _ => true,
    };
    let transport = Transport::new(g.ca_bundle.as_deref(), g.insecure)?;
    if talks_to_endpoint {
        transport
            .check_endpoint(&g.endpoint)
            .map_err(|e| anyhow::anyhow!("--endpoint {}: {e:#}", g.endpoint))?;
    }
    transport.set_default();
    Ok(())
}

/// `--runtime ID=PATH`.
fn parse_runtime_flag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((id, path)) if !id.is_empty() && !path.is_empty() => {
            Ok((id.to_string(), path.to_string()))
        }
        _ => Err(format!(
            "expected ID=PATH (e.g. python3.12=/usr/bin/python3.12), got {s:?}"
        )),
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
    // SIGTERM is caught from before the address is announced: whoever starts the
    // server and stops it as soon as it has read the address gets a clean stop,
    // not the default action (the handler is otherwise installed only once the
    // startup notices are out).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tracing::info!(addr = %server.addr(), data_dir = %args.data_dir.display(), "stratus server listening");
    // On standard error (standard output's first lines are the addresses, which
    // scripts read), before the address, so whoever waits for it has seen this.
    // With `--log-format json` they are log lines too, so stderr stays all JSON.
    let json = args.log_format == "json";
    let warn = |msg: String| {
        if json {
            tracing::warn!("{msg}");
        } else {
            eprintln!("WARNING: {msg}");
        }
    };
    let note = |msg: String| {
        if json {
            tracing::info!("{msg}");
        } else {
            eprintln!("{msg}");
        }
    };
    if args.no_auth {
        warn(format!(
            "--no-auth: the API on {} accepts unsigned requests; anyone who can reach it can deploy, invoke and delete anything",
            server.addr()
        ));
    } else if let Some(created) = server.auth().created_admin() {
        let path = std::fs::canonicalize(&created.credentials_file)
            .unwrap_or_else(|_| created.credentials_file.clone());
        note(format!(
            "created the admin access key {}; its credentials are in {} (mode 0600). Use them with: export AWS_SHARED_CREDENTIALS_FILE={}",
            created.access_key_id,
            path.display(),
            path.display()
        ));
    }
    println!("stratus server listening on {}", server.url());
    if let Some(g) = server.gateway_url() {
        println!("HTTP gateway on {g}");
    }
    if let Some(ca) = server.tls_ca() {
        println!(
            "TLS certificate authority: {} (trust it with --ca-bundle or AWS_CA_BUNDLE)",
            ca.display()
        );
    }
    if let Some(sdk) = server.aws_sdk() {
        for w in sdk.warnings() {
            warn(w);
        }
    }
    let runnable: Vec<String> = server
        .interpreters()
        .runnable()
        .map(|(id, c)| {
            format!(
                "{id} ({}{})",
                c.interpreter.version,
                if c.exact { "" } else { ", nearest" }
            )
        })
        .collect();
    note(format!("runtimes: {}", runnable.join(", ")));
    for (id, _) in server.interpreters().runnable() {
        if let Some(w) = server.interpreters().substitute_warning(id) {
            warn(w);
        }
    }
    let sandbox = server.sandbox();
    if let Some(why) = server.sandbox_fallback() {
        warn(format!(
            "the linux sandbox is not available ({why}); falling back to the \
             `process` driver: functions run as plain processes with the server's user and \
             see the host. Do not run untrusted code. (--sandbox process silences this.)"
        ));
    }
    if sandbox.isolated {
        note(format!(
            "sandbox: {} (namespaces, cgroup {}, seccomp {}, egress {})",
            sandbox.driver,
            sandbox.cgroup.unwrap_or("?"),
            if sandbox.seccomp { "on" } else { "off" },
            sandbox.egress.split(':').next().unwrap_or_default(),
        ));
        for w in server.egress_warnings() {
            warn(format!("egress: {w}"));
        }
    } else {
        note(format!("sandbox: {} (no isolation)", sandbox.driver));
    }
    match term.as_mut() {
        Some(term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        None => shutdown_signal().await,
    }
    tracing::info!("shutting down: finishing in-flight invocations");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
