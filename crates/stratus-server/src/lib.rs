//! `stratus-server` is the daemon: the Lambda management and Invoke APIs (and
//! Stratus's own `/stratus/v1`) on one listener, the function registry and its
//! SQLite store, code storage, runtimes, and log storage. It wires them to the
//! scheduler and owns start-up (load state, re-warm provisioned pools) and graceful
//! shutdown (stop accepting, let in-flight invocations finish, kill every
//! environment).
//!
//! Modules: `api` (routes → typed calls), `registry` (functions, versions, aliases,
//! concurrency settings; resolution for invoke), `store` (SQLite), `runtimes`
//! (runtime → launch command; embedded bootstraps), `logs` (log sink and queries),
//! `model` (AWS shapes), `error` (AWS error JSON), `listen` (accept loop, TLS and
//! connection limits of the client-facing listeners), `tls` (certificates),
//! `cluster` (cluster mode: nodes, heartbeat, change feed; docs/cluster.md).

pub mod api;
pub mod async_queue;
pub mod auth;
pub mod autoscale;
pub mod aws_sdk;
pub mod cluster;
pub mod deploy;
pub mod error;
pub mod esm;
pub mod gateway;
pub mod interpreters;
pub mod java_runtime;
pub mod listen;
pub mod logs;
mod metrics;
pub mod model;
pub mod registry;
mod roles;
pub mod runtimes;
pub mod store;
pub mod tls;
pub mod triggers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use stratus_sandbox::{Driver, LinuxDriver, LinuxOptions, ProcessDriver, SandboxInfo};
pub use stratus_sandbox::{EgressMode, EgressOptions, Ipv4Cidr};
use stratus_scheduler::{ApiServer, Scheduler, Settings};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::AppState;
use crate::logs::LogStore;
use crate::registry::{Identity, Registry};
use crate::runtimes::Runtimes;
use crate::store::Stores;

/// Everything configurable about a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data directory (state, code, logs).
    pub data_dir: PathBuf,
    /// Listen address for the API.
    pub listen: SocketAddr,
    /// Scheduling settings.
    pub settings: Settings,
    /// Node.js interpreter (default `node` on PATH).
    pub node: Option<String>,
    /// Python interpreter (default `python3` on PATH).
    pub python: Option<String>,
    /// `--aws-sdk DIR`: where the runtimes' AWS SDKs are installed (default
    /// `{data-dir}/aws-sdk`); see [`aws_sdk`].
    pub aws_sdk: Option<PathBuf>,
    /// `--runtime ID=PATH`: the interpreter of a runtime ID (see [`interpreters`]).
    pub runtimes: Vec<(String, String)>,
    /// `--runtime-fallback`: refuse an ID whose version is not installed, or run it
    /// on the nearest one.
    pub runtime_fallback: interpreters::Fallback,
    /// `--legacy-runtimes`: Lambda's deprecated runtime IDs refused (Lambda's
    /// message) or run on the nearest supported one.
    pub legacy_runtimes: interpreters::Fallback,
    /// Region in ARNs and `AWS_REGION`.
    pub region: String,
    /// Account id in ARNs.
    pub account_id: String,
    /// How long, and how much, log lines are kept.
    pub log_limits: logs::LogLimits,
    /// How long in-flight invocations may run on after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Asynchronous delivery tuning.
    pub async_settings: async_queue::AsyncSettings,
    /// `--nats nats://…`: accepted async events live in this NATS server's JetStream
    /// (shared by every node on it) instead of `events.db`.
    pub nats: Option<String>,
    /// Listen address of the HTTP gateway (off when `None`).
    pub gateway: Option<SocketAddr>,
    /// The master key (base64 of 32 bytes), as `STRATUS_MASTER_KEY` gives it;
    /// `None`: `{data-dir}/master.key` (created at first start).
    pub master_key: Option<String>,
    /// TLS on the API and gateway listeners (plain HTTP when `None`).
    pub tls: Option<tls::TlsSettings>,
    /// Connection limits of the API and gateway listeners.
    pub limits: listen::Limits,
    /// `--no-auth`: the API takes unsigned requests (loopback listeners only).
    pub no_auth: bool,
    /// Which sandbox driver runs environments.
    pub sandbox: SandboxMode,
    /// Whether the linux driver installs its seccomp filter.
    pub seccomp: bool,
    /// How egress functions reach the outside under the linux driver
    /// (`--egress-mode`, `--egress-pool`).
    pub egress: EgressOptions,
    /// How long per-minute metrics are kept, and whether they are recorded.
    pub metrics: stratus_metrics::Settings,
    /// `--metrics-open`: `GET /metrics` answers unsigned requests (for Prometheus).
    pub metrics_open: bool,
    /// Simulated seconds per real second of the autoscaler's clock: 1 is the system
    /// clock; more (tests, `stratus bench`) runs alarms and schedules faster.
    pub autoscale_clock_speed: f64,
    /// Cluster mode (`--cluster`, `--blobs`, `--advertise`, `--node-id`); all unset:
    /// the embedded single node.
    pub cluster: cluster::ClusterFlags,
    /// In a cluster, how long a stopped or dead node's row stays before the leader
    /// deletes it (`--forget-nodes-after`).
    pub forget_nodes_after: std::time::Duration,
    /// Schedule time per real second, from each schedule's anchor (the same on
    /// every node): 1 is the real clock; more (tests) fires schedules faster.
    pub schedule_clock_speed: f64,
}

/// `--sandbox`: which driver runs environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// `linux` where the kernel allows it, else `process` with a warning.
    #[default]
    Auto,
    /// Isolated environments, or refuse to start.
    Linux,
    /// Plain processes: no isolation.
    Process,
}

/// Picks the driver for `mode`; with `Auto`, also why `linux` was not possible.
/// The driver, why `auto` fell back to `process` (if it did), and what to warn
/// about egress.
type PickedDriver = (Arc<dyn Driver>, Option<String>, Vec<String>);

fn sandbox_driver(
    mode: SandboxMode,
    seccomp: bool,
    egress: &EgressOptions,
) -> Result<PickedDriver, StartError> {
    let linux = || {
        tokio::task::block_in_place(|| {
            LinuxDriver::new(LinuxOptions {
                seccomp,
                // Keepers parked ahead take the cgroup join (an RCU grace period) and
                // the network namespace off the cold-start path.
                pool: 8,
                egress: egress.clone(),
                ..Default::default()
            })
        })
    };
    let picked = |d: LinuxDriver| {
        let warnings = d.egress_warnings();
        (Arc::new(d) as Arc<dyn Driver>, None, warnings)
    };
    match mode {
        SandboxMode::Process => Ok((Arc::new(ProcessDriver), None, Vec::new())),
        SandboxMode::Linux => match linux() {
            Ok(d) => Ok(picked(d)),
            Err(e) => Err(StartError::Sandbox(e)),
        },
        SandboxMode::Auto => match linux() {
            Ok(d) => Ok(picked(d)),
            Err(e) => Ok((Arc::new(ProcessDriver), Some(e), Vec::new())),
        },
    }
}

impl ServerConfig {
    /// Defaults for a data dir and listen address.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen,
            settings: Settings::default(),
            node: None,
            python: None,
            aws_sdk: None,
            runtimes: Vec::new(),
            runtime_fallback: interpreters::Fallback::Refuse,
            legacy_runtimes: interpreters::Fallback::Refuse,
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            log_limits: logs::LogLimits::for_age(Duration::from_secs(7 * 24 * 3600)),
            shutdown_grace: Duration::from_secs(30),
            async_settings: async_queue::AsyncSettings::default(),
            nats: None,
            gateway: None,
            master_key: None,
            tls: None,
            limits: listen::Limits::default(),
            no_auth: false,
            sandbox: SandboxMode::Auto,
            seccomp: true,
            egress: EgressOptions::default(),
            metrics: stratus_metrics::Settings::default(),
            metrics_open: false,
            autoscale_clock_speed: 1.0,
            cluster: cluster::ClusterFlags::default(),
            schedule_clock_speed: 1.0,
            forget_nodes_after: cluster::leader::FORGET_NODES_AFTER,
        }
    }
}

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    /// The data directory could not be created.
    DataDir {
        /// The directory.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    /// The API (or gateway) address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    #[error(transparent)]
    /// The state database could not be opened.
    Store(#[from] store::StoreError),
    #[error("cannot open code store: {0}")]
    /// The code blob store could not be opened.
    Blobs(#[from] stratus_package::BlobError),
    #[error("cannot open log store: {0}")]
    /// The log database could not be opened.
    Logs(rusqlite::Error),
    #[error("cannot prepare runtimes: {0}")]
    /// The runtime bootstraps could not be written.
    Runtimes(std::io::Error),
    #[error("cannot open the queue service: {0}")]
    /// The queue service could not be opened.
    Queues(String),
    #[error("cannot open the event queue: {0}")]
    /// The asynchronous event store could not be opened (or NATS reached).
    Events(async_queue::QueueError),
    #[error("cannot open the data dir's encryption keys: {0}")]
    /// The master key or the data keys could not be read (or the data dir is in use).
    Seal(#[from] stratus_seal::SealError),
    #[error(transparent)]
    /// The TLS certificate or key could not be loaded or made.
    Tls(#[from] tls::TlsError),
    #[error("--no-auth is refused on {addr}: unsigned requests are only accepted on a loopback address (127.0.0.1 or ::1); remove --no-auth or listen on loopback")]
    /// `--no-auth` with a listener that is not loopback.
    NoAuthNotLoopback {
        /// The API address.
        addr: SocketAddr,
    },
    #[error("cannot set up authentication: {0}")]
    /// The key table or the credentials file failed.
    Auth(#[from] auth::AuthSetupError),
    #[error("the linux sandbox is not available: {0}")]
    /// `--sandbox linux` was asked for and cannot run here.
    Sandbox(String),
    #[error(transparent)]
    /// The metrics table could not be opened.
    Metrics(#[from] stratus_metrics::StoreError),
    #[error(transparent)]
    /// A cluster flag is wrong, or the cluster could not be joined.
    Cluster(#[from] cluster::ClusterError),
    #[error("cannot load functions: {0}")]
    /// Stored functions could not be loaded.
    Registry(#[from] error::ApiError),
}

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    scheme: &'static str,
    ca: Option<PathBuf>,
    gateway: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
    state: AppState,
    auth: Arc<auth::Auth>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// Marks the data dir as in use (`stratus server rotate-key` refuses it).
    _lock: stratus_seal::DataDirLock,
    sandbox_fallback: Option<String>,
    egress_warnings: Vec<String>,
    /// In cluster mode: the database, who this node is and its concurrency grants
    /// (to leave and give them back at shutdown).
    node: Option<(
        deadpool_postgres::Pool,
        cluster::Node,
        Arc<cluster::grants::Grants>,
    )>,
}

impl RunningServer {
    /// The bound API address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound gateway address, when the gateway is on.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().map(|(a, _)| *a)
    }

    /// The API's URL as clients reach it (`https://` with TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The gateway's URL, when the gateway is on.
    pub fn gateway_url(&self) -> Option<String> {
        self.gateway_addr()
            .map(|a| format!("{}://{a}", self.scheme))
    }

    /// With `--tls-self-signed`: the CA certificate clients should trust.
    pub fn tls_ca(&self) -> Option<&std::path::Path> {
        self.ca.as_deref()
    }

    /// Authentication: keys, session credentials, and what the first start created.
    pub fn auth(&self) -> &Arc<auth::Auth> {
        &self.auth
    }

    /// What the sandbox driver isolates.
    pub fn sandbox(&self) -> SandboxInfo {
        self.state.scheduler.sandbox()
    }

    /// Which interpreter runs each Node.js/Python runtime ID.
    pub fn interpreters(&self) -> &interpreters::Interpreters {
        self.state.registry.runtimes().interpreters()
    }

    /// The runtimes' AWS SDKs found at start ([`aws_sdk`]).
    pub fn aws_sdk(&self) -> Option<&aws_sdk::AwsSdk> {
        self.state.registry.runtimes().aws_sdk()
    }

    /// Why `--sandbox auto` fell back to the `process` driver, when it did.
    pub fn sandbox_fallback(&self) -> Option<&str> {
        self.sandbox_fallback.as_deref()
    }

    /// What the operator should know about egress (routed egress unavailable, host
    /// mode, an unreachable DNS resolver), found at start.
    pub fn egress_warnings(&self) -> &[String] {
        &self.egress_warnings
    }

    /// The scheduler (for embedding and tests).
    pub fn scheduler(&self) -> &Scheduler {
        &self.state.scheduler
    }

    /// The API as a router with this server's state, to drive it in-process (tests:
    /// `tower::ServiceExt::oneshot`, no socket). It is the API *without* the
    /// authentication layer: the handlers' own rules, as a signed request meets them.
    pub fn router(&self) -> axum::Router {
        api::app(self.state.clone())
    }

    /// Graceful shutdown: stop accepting, wait up to the grace period for in-flight
    /// requests, kill every environment, flush logs.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Some((_, g)) = &self.gateway {
            g.abort();
        }
        let _ = self.task.await;
        self.state.scheduler.shutdown();
        self.state.logs.close();
        // The current minute's rollups, so a restart still reads them.
        self.state.metrics.flush().await;
        if let Some((pool, node, grants)) = &self.node {
            grants.shutdown().await;
            if let Err(e) = cluster::leave_cluster(pool, node).await {
                tracing::warn!(error = %e, "could not mark this node stopped in the cluster");
            }
        }
    }

    /// This node's id and where the others reach it, in cluster mode.
    pub fn cluster_node(&self) -> Option<&cluster::Node> {
        self.node.as_ref().map(|(_, n, _)| n)
    }
}

/// Opens the data dir, loads state, re-warms provisioned pools and starts serving.
pub async fn start(cfg: ServerConfig) -> Result<RunningServer, StartError> {
    if cfg.no_auth && !cfg.listen.ip().is_loopback() {
        return Err(StartError::NoAuthNotLoopback { addr: cfg.listen });
    }
    // Every cluster flag is checked before anything is touched.
    let plan = cfg.cluster.plan()?;
    // A cluster keeps accepted async events where every node can deliver them: an
    // event in one node's events.db would die with that node.
    if plan.cluster.is_some() && cfg.nats.is_none() {
        return Err(cluster::ClusterError::Flag {
            flag: "--cluster",
            reason: "needs --nats too: accepted asynchronous events must outlive any one node, e.g. --nats nats://10.0.0.1:4222 (a NATS server with JetStream)".into(),
        }
        .into());
    }
    for sub in ["", "blobs", "code", "runtimes", "tmp"] {
        let p = cfg.data_dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|source| StartError::DataDir {
            path: p.display().to_string(),
            source,
        })?;
    }
    // Environments run with their code directory as the working directory, so
    // every path handed to them (bootstraps, code, /tmp) must be absolute.
    let dir = &std::fs::canonicalize(&cfg.data_dir).map_err(|source| StartError::DataDir {
        path: cfg.data_dir.display().to_string(),
        source,
    })?;
    // Taken first: nothing (another server, a key rotation) may change the data
    // dir under a running server.
    let lock = stratus_seal::DataDirLock::acquire(dir)?;
    // Opening the keys fails early and clearly on a wrong or unsafe master key,
    // before anything else is touched.
    let keys = stratus_seal::KeySource::for_data_dir(dir, cfg.master_key.clone());
    let sealer = stratus_seal::Sealer::open_data_dir(dir, &keys)?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let gateway_listener = match cfg.gateway {
        None => None,
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            Some((listener, bound))
        }
    };
    let mut served: Vec<std::net::IpAddr> = vec![addr.ip()];
    served.extend(gateway_listener.as_ref().map(|(_, a)| a.ip()));
    let tls = match &cfg.tls {
        None => None,
        Some(settings) => Some(tls::prepare(settings, dir, &served)?),
    };
    // With TLS, functions reach the API through a plain listener on loopback: the
    // traffic never leaves the machine, and function code needs no CA bundle nor a
    // certificate that names an IP literal (see README, "Encryption in transit").
    let internal = match tls {
        None => None,
        Some(_) => {
            let loopback: SocketAddr = if addr.is_ipv4() {
                (std::net::Ipv4Addr::LOCALHOST, 0).into()
            } else {
                (std::net::Ipv6Addr::LOCALHOST, 0).into()
            };
            let listener =
                TcpListener::bind(loopback)
                    .await
                    .map_err(|source| StartError::Bind {
                        addr: loopback,
                        source,
                    })?;
            let bound = listener.local_addr().map_err(|source| StartError::Bind {
                addr: loopback,
                source,
            })?;
            Some((listener, bound))
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let node = match &plan.cluster {
        Some(c) => Some(c.node(dir, addr)?),
        None => None,
    };
    let logs = LogStore::open(dir, cfg.log_limits).map_err(StartError::Logs)?;
    let mut settings = cfg.settings.clone();
    settings.tmp_root = dir.join("tmp");
    // Leftover temp dirs of environments of a previous run.
    let _ = std::fs::remove_dir_all(&settings.tmp_root);
    let _ = std::fs::create_dir_all(&settings.tmp_root);
    let (driver, sandbox_fallback, egress_warnings) =
        sandbox_driver(cfg.sandbox, cfg.seccomp, &cfg.egress)?;
    // Isolated environments reach the API only through a listener inside their own
    // network namespace; it serves the same router once it exists.
    let router: Arc<std::sync::OnceLock<axum::Router>> = Arc::default();
    let cell = router.clone();
    settings.serve_api = Some(ApiServer(Arc::new(move |listener| {
        let cell = cell.clone();
        tokio::spawn(async move {
            let (Some(app), Ok(listener)) = (cell.get().cloned(), TcpListener::from_std(listener))
            else {
                return;
            };
            let _ = axum::serve(listener, app).await;
        })
    })));
    let scheduler = Scheduler::new(settings, driver, logs.clone());
    // A cluster splits provisioned environments over its live nodes: installed
    // before the registry hands the scheduler its floors (docs/cluster.md).
    let placement = match (&plan.cluster, &node) {
        (Some(_), Some(n)) => {
            let p = cluster::placement::Placement::new(&n.id);
            scheduler.set_placement(p.clone());
            Some(p)
        }
        _ => None,
    };
    let runtimes = Runtimes::prepare_with(
        &dir.join("runtimes"),
        &interpreters::Sources {
            node: cfg.node.clone(),
            python: cfg.python.clone(),
            explicit: cfg.runtimes.clone(),
            fallback: cfg.runtime_fallback,
            legacy: cfg.legacy_runtimes,
        },
    )
    .map_err(StartError::Runtimes)?
    .with_aws_sdk(aws_sdk::AwsSdk::detect(
        &cfg.aws_sdk.clone().unwrap_or_else(|| dir.join("aws-sdk")),
    ));
    let identity = Identity {
        region: cfg.region.clone(),
        account_id: cfg.account_id.clone(),
        endpoint_url: match &internal {
            Some((_, a)) => format!("http://{a}"),
            None => format!("http://{addr}"),
        },
        gateway_url: gateway_listener
            .as_ref()
            .map(|(_, a)| format!("{scheme}://{a}")),
    };
    // Cluster mode: shared state in PostgreSQL, sealed with the cluster's data keys
    // (opened with this node's master key, which must be the cluster's).
    let cluster_db = match (&plan.cluster, &node) {
        (Some(c), Some(n)) => {
            let db = store::PgDatabase::open(&c.url, &n.id)?;
            let master = keys.master_key()?.ok_or_else(|| {
                StartError::Seal(stratus_seal::SealError::KeyFile {
                    path: dir.join(stratus_seal::MASTER_KEY_FILE),
                    source: std::io::ErrorKind::NotFound.into(),
                })
            })?;
            let shared = db.cluster_sealer(&master, &keys.name())?;
            Some((db, shared))
        }
        _ => None,
    };
    let stores = match &cluster_db {
        Some((db, shared)) => db.stores(shared.clone()),
        None => Stores::sqlite(dir, sealer.clone())?,
    };
    let auth = Arc::new(match &cluster_db {
        Some((db, shared)) => {
            let keys = Arc::new(db.key_store(shared.clone()));
            let auth = cluster::open_shared_auth(
                db,
                keys,
                dir,
                &cfg.region,
                &cfg.account_id,
                !cfg.no_auth,
            )?;
            tokio::task::block_in_place(|| auth.write_admin_credentials(dir))?;
            auth
        }
        None => tokio::task::block_in_place(|| {
            auth::Auth::open(
                dir,
                &cfg.region,
                &cfg.account_id,
                !cfg.no_auth,
                sealer.clone(),
            )
        })?,
    });
    // Every environment gets credentials of its own, scoped to its execution role.
    scheduler.set_credential_issuer(Arc::new(auth::SessionIssuer(auth.clone())));
    if cfg.no_auth {
        tracing::warn!(%addr, "--no-auth: the API accepts unsigned requests from anyone who can reach {addr}");
    } else if let Some(created) = auth.created_admin() {
        tracing::info!(access_key_id = %created.access_key_id, file = %created.credentials_file.display(), "created the admin access key");
    }
    let local_blobs = stratus_package::BlobStore::open(dir.join("blobs"))?;
    let blobs = match &plan.blobs {
        None => registry::blobs::Blobs::local(local_blobs),
        Some((location, url)) => registry::blobs::Blobs::with_shared(
            local_blobs,
            location,
            url,
            tokio::runtime::Handle::current(),
        )
        .map_err(cluster::ClusterError::from)?,
    };
    let registry = tokio::task::block_in_place(|| {
        Registry::open(
            stores.functions.clone(),
            blobs,
            dir.join("code"),
            runtimes,
            identity,
            scheduler.clone(),
        )
    })?;
    let registry = Arc::new(registry);
    // Queue URLs name the endpoint functions are given: the JavaScript SDK v3 may
    // send to a queue URL's host, which function code must reach without trusting
    // the CA. Clients given an endpoint use only a queue URL's path.
    let queues = match (&plan.cluster, &cluster_db) {
        // Cluster mode: the queues live in PostgreSQL, the same on every node,
        // sealed with the cluster's data keys (docs/cluster.md, "Queues").
        (Some(c), Some((_, shared))) => {
            stratus_queue::Queues::open_postgres(
                &c.url,
                &registry.identity.endpoint_url,
                &registry.identity.region,
                &registry.identity.account_id,
                shared.clone(),
                Arc::new(stratus_queue::SystemClock),
            )
            .await
        }
        _ => stratus_queue::Queues::open(
            dir,
            &registry.identity.endpoint_url,
            &registry.identity.region,
            &registry.identity.account_id,
            sealer.clone(),
        ),
    }
    .map_err(|e| StartError::Queues(e.to_string()))?;
    let events = async_queue::AsyncQueue::start(
        dir,
        registry.clone(),
        scheduler.clone(),
        queues.clone(),
        cfg.async_settings.clone(),
        cfg.nats.as_deref(),
    )
    .await
    .map_err(StartError::Events)?;

    let (recorder, metrics) = stratus_metrics::start(
        &dir.join("state.db"),
        cfg.metrics.clone(),
        metrics::sampler(scheduler.clone(), registry.clone(), queues.clone()),
    )?;
    if recorder.enabled() {
        scheduler.set_metrics_sink(Arc::new(metrics::SchedulerSink(recorder.clone())));
        events.set_metrics(recorder.clone());
        queues.set_counter(Arc::new(move |metric, queue, n| {
            recorder.record(stratus_metrics::Event::Queue {
                metric,
                queue: queue.into(),
                value: n as f64,
            })
        }));
    }
    // In a cluster one node, the leader, fires the schedules (cluster/leader.rs).
    let election = match (&plan.cluster, &node) {
        (Some(c), Some(n)) => Some(
            cluster::leader::Election::new(&c.url, &n.id)
                .await
                .map_err(cluster::ClusterError::from)?
                .forget_nodes_after(cfg.forget_nodes_after),
        ),
        _ => None,
    };
    let triggers = triggers::Triggers::start(
        registry.clone(),
        stores.clone(),
        events.clone(),
        queues.clone(),
        scheduler.clone(),
        cfg.schedule_clock_speed,
        election.as_ref().map(|e| e.leadership()),
    );
    if let Some(n) = &node {
        // A cluster node polls no SQS mapping until it knows the healthy nodes
        // (`cluster::pollers`, within a second of joining).
        triggers.mappings.set_members(&n.id, Vec::new());
    }
    let clock: Arc<dyn autoscale::Clock> = if cfg.autoscale_clock_speed > 1.0 {
        Arc::new(autoscale::AcceleratedClock::new(
            time::OffsetDateTime::now_utc(),
            cfg.autoscale_clock_speed,
        ))
    } else {
        Arc::new(autoscale::SystemClock)
    };
    let autoscaler = match (&cluster_db, &placement, &election) {
        // In a cluster: the tables in PostgreSQL, decisions on the leader only,
        // utilization over every node (autoscale/mod.rs).
        (Some((db, _)), Some(p), Some(e)) => tokio::task::block_in_place(|| {
            autoscale::cluster::open(
                db,
                &registry,
                &scheduler,
                p,
                e,
                cfg.autoscale_clock_speed,
                clock,
            )
        })?,
        _ => tokio::task::block_in_place(|| {
            autoscale::Autoscaler::open(
                dir,
                registry.clone(),
                Arc::new(autoscale::SchedulerSource::new(
                    registry.clone(),
                    scheduler.clone(),
                )),
                clock,
            )
        })?,
    };
    autoscaler.start(scheduler.clone());
    let cluster_db = match (&plan.cluster, &node) {
        (Some(c), Some(n)) => {
            let pool = cluster::pool(&c.url)?;
            cluster::join_cluster(&pool, n, &scheduler).await?;
            // Account and reserved concurrency hold across the cluster: slots are
            // leased from PostgreSQL in batches (docs/decisions.md).
            let grants = cluster::grants::Grants::new(
                &c.url,
                &n.id,
                cluster::grants::GrantSettings::default(),
            )
            .await
            .map_err(cluster::ClusterError::from)?;
            scheduler.set_limiter(Some(grants.clone()));
            Some((pool, n.clone(), c.url.clone(), grants))
        }
        _ => None,
    };
    let membership = match &cluster_db {
        Some((pool, n, _, _)) => cluster::Membership::cluster(n, pool.clone()),
        None => cluster::Membership::single(addr),
    };
    // Routing to warm environments on other nodes, signed with a key derived from
    // the cluster's master key; off with TLS (it speaks plain HTTP between nodes).
    let forward = match (&cluster_db, &placement) {
        (Some((_, n, _, _)), Some(p)) => keys.master_key()?.map(|m| {
            (
                n.id.clone(),
                cluster::forward::ForwardKey::derive(&m),
                p.clone(),
            )
        }),
        _ => None,
    };
    let router_of_calls = match &forward {
        Some((id, key, p)) if cfg.tls.is_none() => {
            Some(cluster::forward::Router::new(id, key.clone(), p.clone()))
        }
        _ => None,
    };
    let peers = match &cluster_db {
        Some((pool, n, _, _)) => {
            cluster::peers::Peers::cluster(&n.id, pool.clone(), auth.clone(), scheme == "https")
        }
        None => cluster::peers::Peers::none(),
    };
    let state = AppState::new(api::AppParts {
        autoscaler,
        registry,
        stores,
        scheduler,
        logs,
        events,
        triggers,
        queues,
        sealer,
        metrics,
        membership,
        router: router_of_calls,
        peers,
    });
    let limits = cfg.limits.clone();
    let acceptor = tls.as_ref().map(|t| t.config.clone());
    let (stop, stopped) = watch::channel(false);
    if let Some((pool, n, url, _)) = &cluster_db {
        cluster::run_node(
            pool.clone(),
            n.clone(),
            url.clone(),
            cluster::changes::Applier {
                registry: state.registry.clone(),
                triggers: state.triggers.clone(),
                auth: auth.clone(),
                autoscaler: state.autoscaler.clone(),
            },
            state.scheduler.clone(),
            stop.subscribe(),
        );
        // Each SQS mapping is polled by one healthy node (rendezvous hashing).
        cluster::pollers::spawn(
            pool.clone(),
            n.id.clone(),
            state.triggers.mappings.clone(),
            stop.subscribe(),
        );
        if let Some(p) = &placement {
            cluster::placement::spawn(
                pool.clone(),
                p.clone(),
                state.scheduler.clone(),
                stop.subscribe(),
            );
        }
    }
    if let Some(election) = election {
        election.spawn(stop.subscribe());
    }
    let gateway = match gateway_listener {
        None => None,
        Some((listener, bound)) => {
            let app = gateway::app(
                state.triggers.routes.clone(),
                state.registry.clone(),
                state.scheduler.clone(),
            );
            let listener = listen::Listener {
                tcp: listener,
                tls: acceptor.clone(),
                limits: limits.clone(),
            };
            // The gateway is aborted at shutdown, as before: it has no stop signal of
            // its own (one that never fires).
            let (_never, never) = watch::channel(false);
            let task = tokio::spawn(async move {
                let _never = _never;
                listen::serve(listener, app, never).await;
            });
            Some((bound, task))
        }
    };
    // The same authenticated API on every listener, the ones inside environments'
    // network namespaces included (functions sign with their session credentials).
    let mut app = auth::layer(api::app(state.clone()), auth.clone());
    if let Some((_, key, _)) = forward {
        // Outside authentication: the route checks the cluster's signature itself.
        app = app.merge(cluster::forward::routes(cluster::forward::Target {
            key,
            scheduler: state.scheduler.clone(),
        }));
    }
    if cfg.metrics_open {
        // Prometheus cannot sign: `GET /metrics` is answered before authentication.
        let store = state.metrics.clone();
        let node = state.peers.node_id().map(str::to_string);
        app = app.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let (store, node) = (store.clone(), node.clone());
                async move {
                    if req.method() == http::Method::GET && req.uri().path() == "/metrics" {
                        api::metrics::scrape(&store, node.as_deref()).await
                    } else {
                        next.run(req).await
                    }
                }
            },
        ));
    }
    let _ = router.set(app.clone());
    let mut stopping = stop.subscribe();
    let grace = cfg.shutdown_grace;
    let scheduler = state.scheduler.clone();
    let api_listener = listen::Listener {
        tcp: listener,
        tls: acceptor,
        limits: limits.clone(),
    };
    let internal_listener = internal.map(|(tcp, _)| listen::Listener {
        tcp,
        tls: None,
        limits,
    });
    let task = tokio::spawn(async move {
        let serve = async move {
            match internal_listener {
                None => listen::serve(api_listener, app, stopped).await,
                Some(internal) => {
                    tokio::join!(
                        listen::serve(api_listener, app.clone(), stopped.clone()),
                        listen::serve(internal, app, stopped),
                    );
                }
            }
        };
        let mut serve = std::pin::pin!(serve);
        tokio::select! {
            _ = &mut serve => return,
            _ = stopping.wait_for(|s| *s) => {}
        }
        // No new connections now; in-flight invocations get the grace period, then
        // every environment is killed so whatever is left fails cleanly.
        if tokio::time::timeout(grace, &mut serve).await.is_ok() {
            return;
        }
        scheduler.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut serve).await;
    });
    Ok(RunningServer {
        addr,
        scheme,
        ca: tls.and_then(|t| t.ca),
        gateway,
        state,
        auth,
        stop,
        task,
        _lock: lock,
        sandbox_fallback,
        egress_warnings,
        node: cluster_db.map(|(pool, n, _, grants)| (pool, n, grants)),
    })
}
