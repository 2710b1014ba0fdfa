//! `stratus-scheduler` decides where and whether an invocation runs. It owns:
//!
//! - **pools** of execution environments, one per function version (`state.rs`);
//! - **limits**: reserved concurrency, the account limit with its unreserved minimum,
//!   and the per-function scaling rate (a token bucket), with Lambda's throttle reasons
//!   (`limits.rs`); in a cluster, a [`ConcurrencyLimiter`] makes the concurrency
//!   limits hold across nodes;
//! - the **invocation path**: warm hand-off, cold start, timeout, crash (`invoke.rs` —
//!   "what happens when a function times out" is answered there);
//! - **environments**: start through a [`stratus_sandbox::Driver`], a Runtime API
//!   listener each, watch for exit, destroy (`env.rs`);
//! - **provisioned concurrency**: a floor of pre-initialized environments, replaced
//!   when they die, with back-off on repeated init failures (`provisioned.rs`);
//! - **log capture**: each environment's output plus START/END/REPORT, in order, handed
//!   to a [`LogSink`] off the invocation path (`logpump.rs`);
//! - **idle reaping** of on-demand environments after a keep-alive.
//!
//! It knows nothing of HTTP or storage: the server gives it a resolved
//! [`FunctionSpec`] per call and a [`LogSink`] at start.
//!
//! All accounting lives behind one lock ([`state::State`]); the lock is never held
//! across an `.await`, and the warm path takes it twice (acquire, release).

mod credentials;
mod env;
mod invoke;
mod limits;
mod logpump;
mod observe;
mod placement;
mod provisioned;
mod state;
pub mod trace;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use stratus_sandbox::Driver;
pub use stratus_sandbox::{Mount, Network};

pub use credentials::{CredentialIssuer, EnvCredentials, Revocation};
pub use limits::{ConcurrencyLimiter, Gate, LimitPool, SlotFuture, ThrottleReason};
pub use logpump::{LogLine, LogSink};
pub use observe::{Gauges, InvocationRecord, MetricsSink};
pub use placement::{Placement, PoolLoad};

/// Server-wide scheduling settings (Lambda's defaults).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Account concurrency limit.
    pub account_concurrency: u32,
    /// Concurrency that reservations may not take from the account.
    pub unreserved_minimum: u32,
    /// New on-demand environments per function per 10 seconds (refilled continuously).
    pub scaling_rate_per_10s: u32,
    /// Idle on-demand environments are destroyed after this long.
    pub idle_keep_alive: Duration,
    /// Longest init (start to first `/next`) of an on-demand environment, at least.
    pub init_timeout: Duration,
    /// Where each environment's private temp dir is created.
    pub tmp_root: PathBuf,
    /// Address the Runtime API listeners bind to (environments on the host network).
    pub runtime_api_ip: IpAddr,
    /// Serves the Stratus API on a listener made inside an environment's network
    /// namespace (its `AWS_ENDPOINT_URL`). Without it, an isolated environment has no
    /// Stratus API.
    pub serve_api: Option<ApiServer>,
}

/// Serves the Stratus API on one listener until the returned task is aborted.
#[derive(Clone)]
pub struct ApiServer(
    pub Arc<dyn Fn(std::net::TcpListener) -> tokio::task::JoinHandle<()> + Send + Sync>,
);

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiServer")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            account_concurrency: 1000,
            unreserved_minimum: 100,
            scaling_rate_per_10s: 1000,
            idle_keep_alive: Duration::from_secs(600),
            init_timeout: Duration::from_secs(10),
            tmp_root: std::env::temp_dir().join("stratus-envs"),
            runtime_api_ip: IpAddr::from([127, 0, 0, 1]),
            serve_api: None,
        }
    }
}

/// Everything the scheduler needs to run one function version. Built by the server
/// from its stored configuration; cheap to share.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Pool identity: changes whenever code or configuration changes.
    pub pool_key: Arc<str>,
    /// Function name.
    pub function_name: Arc<str>,
    /// Version (`$LATEST` or a number).
    pub version: Arc<str>,
    /// Memory size in MB (reported in REPORT; the limit under the linux driver).
    pub memory_mb: u32,
    /// Function timeout.
    pub timeout: Duration,
    /// Program, arguments and working directory.
    pub program: PathBuf,
    /// Arguments after the program.
    pub args: Vec<std::ffi::OsString>,
    /// Working directory (code root).
    pub cwd: PathBuf,
    /// Environment common to all environments of this version (Lambda's variables and
    /// the function's own); per-environment variables are added by the scheduler.
    pub env: Vec<(String, String)>,
    /// Log group, `/aws/lambda/{name}`.
    pub log_group: Arc<str>,
    /// The execution role's policy document (JSON, checked at deploy), which the
    /// [`CredentialIssuer`] scopes each environment's credentials to; `None` when the
    /// function has no role statements.
    pub role_policy: Option<Arc<str>>,
    /// Host directories an isolated environment sees (code at `/var/task`, runtime
    /// files); paths above are host paths, rewritten by the driver.
    pub mounts: Vec<Mount>,
    /// Size of `/tmp` in MB (EphemeralStorage).
    pub tmp_mb: u32,
    /// Own network namespace, or the host's.
    pub network: Network,
}

/// Provisioned concurrency state of a pool, as the management API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedStatus {
    /// Environments asked for.
    pub requested: u32,
    /// Environments initialized and alive.
    pub available: u32,
    /// `IN_PROGRESS`, `READY` or `FAILED`.
    pub status: &'static str,
    /// Why it failed, when it did.
    pub reason: Option<String>,
}

/// Counters of one function since the server started.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionMetrics {
    /// Invocations that ran (successfully or not).
    pub invocations: u64,
    /// Of those, function errors (including timeouts, crashes and init failures).
    pub errors: u64,
    /// Calls refused with 429.
    pub throttles: u64,
    /// Sum of invocation durations, milliseconds.
    pub duration_ms_total: f64,
    /// Invocations running now.
    pub concurrent: u32,
}

/// One synchronous invocation.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// Request id (`x-amzn-RequestId`, `Lambda-Runtime-Aws-Request-Id`).
    pub request_id: Arc<str>,
    /// The event.
    pub payload: Bytes,
    /// ARN the caller used (qualified when a qualifier was given).
    pub invoked_arn: Arc<str>,
    /// Decoded client context JSON.
    pub client_context: Option<Arc<str>>,
    /// Whether the caller wants the tail of the log (`X-Amz-Log-Type: Tail`).
    pub tail: bool,
    /// The X-Ray trace id (`Lambda-Runtime-Trace-Id`): the caller's, carried over
    /// by [`trace::propagate`]; a new one is made when `None`.
    pub trace_id: Option<Arc<str>>,
}

/// The result of an invocation that ran (successfully or with a function error).
#[derive(Debug, Clone)]
pub struct InvokeResponse {
    /// Response body, or the error JSON when `function_error`.
    pub payload: Bytes,
    /// Set for any function error (`X-Amz-Function-Error: Unhandled`).
    pub function_error: bool,
    /// Last 4 KB of this invocation's log, when asked for.
    pub log_tail: Option<String>,
}

/// Why an invocation did not run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// Over a concurrency or rate limit.
    #[error("Rate Exceeded.")]
    Throttled(ThrottleReason),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The environment could not be started (driver or listener failure).
    #[error("cannot start an execution environment: {0}")]
    Start(String),
}

/// The scheduler. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    driver: Arc<dyn Driver>,
    sink: Arc<dyn LogSink>,
    state: Mutex<state::State>,
    next_env_id: std::sync::atomic::AtomicU64,
    shutdown: tokio_util_shutdown::Flag,
    credentials: parking_lot::RwLock<Option<Arc<dyn CredentialIssuer>>>,
    /// Set once at start; read lock-free on every invocation.
    metrics: std::sync::OnceLock<Arc<dyn MetricsSink>>,
    /// A cluster's placement of provisioned environments; unset on a single node.
    placement: std::sync::OnceLock<Arc<dyn Placement>>,
}

/// A tiny shutdown flag shared by background tasks.
mod tokio_util_shutdown {
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Debug, Default)]
    pub(crate) struct Flag(AtomicBool);

    impl Flag {
        pub(crate) fn set(&self) {
            self.0.store(true, Ordering::SeqCst);
        }
        pub(crate) fn is_set(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }
}

impl Scheduler {
    /// Creates a scheduler and starts its idle reaper.
    pub fn new(settings: Settings, driver: Arc<dyn Driver>, sink: Arc<dyn LogSink>) -> Self {
        let state = state::State::new(&settings);
        let inner = Arc::new(Inner {
            settings,
            driver,
            sink,
            state: Mutex::new(state),
            next_env_id: std::sync::atomic::AtomicU64::new(1),
            shutdown: Default::default(),
            credentials: Default::default(),
            metrics: Default::default(),
            placement: Default::default(),
        });
        let sched = Scheduler { inner };
        sched.spawn_reaper();
        sched
    }

    /// Gives every environment started from now on its own credentials from
    /// `issuer` (see [`CredentialIssuer`]).
    pub fn set_credential_issuer(&self, issuer: Arc<dyn CredentialIssuer>) {
        *self.inner.credentials.write() = Some(issuer);
    }

    /// Installs (or, with `None`, removes) limits shared with other nodes: from now
    /// on every admission also takes a slot from `limiter` (see
    /// [`ConcurrencyLimiter`]). Without one (the default) admission uses only this
    /// node's counters. Invocations already running keep what they took.
    pub fn set_limiter(&self, limiter: Option<Arc<dyn ConcurrencyLimiter>>) {
        self.inner.state.lock().set_limiter(limiter);
    }

    /// Shares the per-function scaling rate among `nodes` healthy nodes of a
    /// cluster: each node starts at most `scaling_rate_per_10s / nodes` new
    /// environments per function per 10 s (at least one token). 1, the default, is
    /// the single node's whole rate.
    pub fn set_scaling_nodes(&self, nodes: u32) {
        self.inner
            .state
            .lock()
            .set_scaling_nodes(nodes, std::time::Instant::now());
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// What the sandbox driver isolates.
    pub fn sandbox(&self) -> stratus_sandbox::SandboxInfo {
        self.inner.driver.info()
    }

    /// Sets (or clears, with `None`) a function's reserved concurrency. The caller
    /// validates against [`Scheduler::unreserved_available`] first.
    pub fn set_reserved(&self, function: &str, reserved: Option<u32>) {
        self.inner.state.lock().set_reserved(function, reserved);
    }

    /// Forgets a deleted function: its reservation, counters and scaling bucket.
    pub fn forget(&self, function: &str) {
        self.inner.state.lock().forget(function);
    }

    /// Account concurrency that is not reserved by any function except `excluding`.
    pub fn unreserved_available(&self, excluding: &str) -> u32 {
        self.inner.state.lock().unreserved_available(excluding)
    }

    /// Counters of `function` since the server started.
    pub fn metrics(&self, function: &str) -> FunctionMetrics {
        self.inner.state.lock().metrics(function)
    }

    /// Environments currently busy for `function` (all versions).
    pub fn busy(&self, function: &str) -> u32 {
        self.inner.state.lock().busy(function)
    }

    /// Per-pool environment counts (pool key → (total, idle)), for tests and metrics.
    pub fn env_counts(&self) -> HashMap<String, (u32, u32)> {
        self.inner.state.lock().env_counts()
    }

    /// Total live environments.
    pub fn total_envs(&self) -> u32 {
        self.env_counts().values().map(|(t, _)| t).sum()
    }

    /// Destroys every environment of pools whose key starts with `prefix` (a function
    /// deleted, or `$LATEST` replaced) once they are idle; busy ones finish first.
    pub fn retire(&self, prefix: &str) {
        let idle = self.inner.state.lock().retire(prefix);
        for env in idle {
            env.destroy("retired");
        }
    }

    /// Whether [`Scheduler::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutdown.is_set()
    }

    /// Stops everything: no new invocations, every environment killed.
    pub fn shutdown(&self) {
        self.inner.shutdown.set();
        let all = self.inner.state.lock().drain_all();
        for env in all {
            env.destroy("server shutting down");
        }
        self.inner.driver.shutdown();
    }

    fn spawn_reaper(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.shutdown.is_set() {
                    return;
                }
                let expired = inner
                    .state
                    .lock()
                    .take_expired(inner.settings.idle_keep_alive);
                for env in expired {
                    env.destroy("idle keep-alive expired");
                }
            }
        });
    }
}
