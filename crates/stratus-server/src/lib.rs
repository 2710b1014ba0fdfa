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
//! `model` (AWS shapes), `error` (AWS error JSON).

pub mod api;
pub mod async_queue;
pub mod deploy;
pub mod error;
pub mod esm;
pub mod gateway;
pub mod logs;
pub mod model;
pub mod registry;
pub mod runtimes;
pub mod store;
pub mod triggers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::future::IntoFuture;
use stratus_package::BlobStore;
use stratus_sandbox::{Driver, LinuxDriver, LinuxOptions, ProcessDriver, SandboxInfo};
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
    /// Listen address of the HTTP gateway (off when `None`).
    pub gateway: Option<SocketAddr>,
    /// Which sandbox driver runs environments.
    pub sandbox: SandboxMode,
    /// Whether the linux driver installs its seccomp filter.
    pub seccomp: bool,
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
fn sandbox_driver(
    mode: SandboxMode,
    seccomp: bool,
) -> Result<(Arc<dyn Driver>, Option<String>), StartError> {
    let linux = || {
        tokio::task::block_in_place(|| {
            LinuxDriver::new(LinuxOptions {
                seccomp,
                // Keepers parked ahead take the cgroup join (an RCU grace period) and
                // the network namespace off the cold-start path.
                pool: 8,
                ..Default::default()
            })
        })
    };
    match mode {
        SandboxMode::Process => Ok((Arc::new(ProcessDriver), None)),
        SandboxMode::Linux => match linux() {
            Ok(d) => Ok((Arc::new(d), None)),
            Err(e) => Err(StartError::Sandbox(e)),
        },
        SandboxMode::Auto => match linux() {
            Ok(d) => Ok((Arc::new(d), None)),
            Err(e) => Ok((Arc::new(ProcessDriver), Some(e))),
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
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            log_limits: logs::LogLimits::for_age(Duration::from_secs(7 * 24 * 3600)),
            shutdown_grace: Duration::from_secs(30),
            async_settings: async_queue::AsyncSettings::default(),
            gateway: None,
            sandbox: SandboxMode::Auto,
            seccomp: true,
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
    /// The asynchronous event store could not be opened.
    Events(rusqlite::Error),
    #[error("the linux sandbox is not available: {0}")]
    /// `--sandbox linux` was asked for and cannot run here.
    Sandbox(String),
    #[error("cannot load functions: {0}")]
    /// Stored functions could not be loaded.
    Registry(#[from] error::ApiError),
}

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    gateway: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
    state: AppState,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    sandbox_fallback: Option<String>,
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

    /// What the sandbox driver isolates.
    pub fn sandbox(&self) -> SandboxInfo {
        self.state.scheduler.sandbox()
    }

    /// Why `--sandbox auto` fell back to the `process` driver, when it did.
    pub fn sandbox_fallback(&self) -> Option<&str> {
        self.sandbox_fallback.as_deref()
    }

    /// The scheduler (for embedding and tests).
    pub fn scheduler(&self) -> &Scheduler {
        &self.state.scheduler
    }

    /// The API as a router with this server's state, to drive it in-process (tests:
    /// `tower::ServiceExt::oneshot`, no socket).
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
    }
}

/// Opens the data dir, loads state, re-warms provisioned pools and starts serving.
pub async fn start(cfg: ServerConfig) -> Result<RunningServer, StartError> {
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
    let logs = LogStore::open(dir, cfg.log_limits).map_err(StartError::Logs)?;
    let mut settings = cfg.settings.clone();
    settings.tmp_root = dir.join("tmp");
    // Leftover temp dirs of environments of a previous run.
    let _ = std::fs::remove_dir_all(&settings.tmp_root);
    let _ = std::fs::create_dir_all(&settings.tmp_root);
    let (driver, sandbox_fallback) = sandbox_driver(cfg.sandbox, cfg.seccomp)?;
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
    let runtimes = Runtimes::prepare(
        &dir.join("runtimes"),
        cfg.node.as_deref(),
        cfg.python.as_deref(),
    )
    .map_err(StartError::Runtimes)?;
    let identity = Identity {
        region: cfg.region.clone(),
        account_id: cfg.account_id.clone(),
        endpoint_url: format!("http://{addr}"),
        gateway_url: gateway_listener
            .as_ref()
            .map(|(_, a)| format!("http://{a}")),
    };
    let stores = Stores::sqlite(dir)?;
    let blobs = BlobStore::open(dir.join("blobs"))?;
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
    let queues = stratus_queue::Queues::open(
        dir,
        &registry.identity.endpoint_url,
        &registry.identity.region,
        &registry.identity.account_id,
    )
    .map_err(|e| StartError::Queues(e.to_string()))?;
    let events = async_queue::AsyncQueue::start(
        dir,
        registry.clone(),
        scheduler.clone(),
        queues.clone(),
        cfg.async_settings.clone(),
    )
    .map_err(StartError::Events)?;

    let triggers = triggers::Triggers::start(
        registry.clone(),
        stores.clone(),
        events.clone(),
        queues.clone(),
        scheduler.clone(),
    );
    let state = AppState {
        registry,
        stores,
        scheduler,
        logs,
        events,
        triggers,
        queues,
    };
    let gateway = match gateway_listener {
        None => None,
        Some((listener, bound)) => {
            let app = gateway::app(
                state.triggers.routes.clone(),
                state.registry.clone(),
                state.scheduler.clone(),
            );
            let task = tokio::spawn(async move {
                let service = app.into_make_service_with_connect_info::<SocketAddr>();
                let _ = axum::serve(listener, service).await;
            });
            Some((bound, task))
        }
    };
    let app = api::app(state.clone());
    let _ = router.set(app.clone());
    let (stop, mut stopped) = watch::channel(false);
    let mut stopping = stop.subscribe();
    let grace = cfg.shutdown_grace;
    let scheduler = state.scheduler.clone();
    let task = tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let signal = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .into_future();
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
        gateway,
        state,
        stop,
        task,
        sandbox_fallback,
    })
}
