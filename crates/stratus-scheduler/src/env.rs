//! One execution environment: its process (through the sandbox driver), its Runtime
//! API listener, its log pump, and the watcher that notices when it dies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratus_runtime_api::{EnvLink, ErrorBody, InitOutcome, RuntimeListener};
use stratus_sandbox::{Killer, LaunchSpec, STRATUS_API_ADDR};

use crate::logpump::{self, Capture};
use crate::{FunctionSpec, Inner};

/// A started environment.
#[derive(Debug)]
pub(crate) struct Env {
    pub(crate) id: u64,
    pub(crate) pool_key: Arc<str>,
    pub(crate) link: EnvLink,
    killer: Killer,
    pub(crate) log: Arc<Capture>,
    /// Set (under the state lock) while this environment counts as provisioned.
    pub(crate) prov_counted: AtomicBool,
    _listener: RuntimeListener,
    /// Revokes the environment's credentials when it is gone.
    _credentials: Option<crate::Revocation>,
    /// The Stratus API served inside the environment's network namespace.
    _api: Option<AbortOnDrop>,
}

/// Stops serving the in-namespace Stratus API when the environment goes.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The reason an environment's process died when the OOM killer did it; see
/// [`exit_error`].
pub(crate) const OOM_REASON: &str = "signal: killed (out of memory)";

impl Env {
    /// Kills the process tree; the watcher then accounts for the exit.
    pub(crate) fn destroy(&self, reason: &str) {
        self.link.fail(reason);
        self.killer.kill_tree();
    }
}

/// Why an environment did not become ready.
#[derive(Debug)]
pub(crate) enum StartFailure {
    /// The driver or listener failed: nothing was started.
    Spawn(String),
    /// The runtime reported an init error, exited during init, or timed out.
    Init(ErrorBody),
}

/// Starts an environment and waits for its first `/next`. Returns it with its
/// init duration.
pub(crate) async fn start(
    inner: &Arc<Inner>,
    spec: &Arc<FunctionSpec>,
    provisioned: bool,
) -> Result<(Arc<Env>, Duration), StartFailure> {
    let started = Instant::now();
    let id = inner.next_env_id.fetch_add(1, Ordering::Relaxed);
    let stream: Arc<str> = Arc::from(logpump::stream_name(&spec.version));
    let (link, ready) = EnvLink::new();
    // `None`: the host's network (the process driver, or `--egress-mode host`).
    let netns = inner
        .driver
        .new_netns(spec.network)
        .map_err(|e| StartFailure::Spawn(e.to_string()))?;
    let (mut env, credentials) =
        crate::credentials::environment(inner, spec, id).map_err(StartFailure::Spawn)?;
    let (listener, api, netns) = match netns {
        Some((ns, listeners)) => {
            let listener = RuntimeListener::from_std(listeners.runtime, link.clone())
                .map_err(|e| StartFailure::Spawn(format!("cannot serve the Runtime API: {e}")))?;
            let api = inner
                .settings
                .serve_api
                .as_ref()
                .map(|serve| AbortOnDrop((serve.0)(listeners.api)));
            // The environment reaches the Stratus API only inside its namespace.
            for (k, v) in env.iter_mut() {
                if k == "AWS_ENDPOINT_URL" {
                    *v = format!("http://{STRATUS_API_ADDR}");
                }
            }
            (listener, api, Some(ns))
        }
        None => {
            let listener = RuntimeListener::bind(inner.settings.runtime_api_ip, link.clone())
                .await
                .map_err(|e| {
                    StartFailure::Spawn(format!("cannot bind the Runtime API listener: {e}"))
                })?;
            (listener, None, None)
        }
    };
    env.push(("AWS_LAMBDA_RUNTIME_API".into(), listener.addr().to_string()));
    env.push(("AWS_LAMBDA_LOG_STREAM_NAME".into(), stream.to_string()));
    let init_type = if provisioned {
        "provisioned-concurrency"
    } else {
        "on-demand"
    };
    env.push(("AWS_LAMBDA_INITIALIZATION_TYPE".into(), init_type.into()));
    let launch = LaunchSpec {
        program: spec.program.clone(),
        args: spec.args.clone(),
        cwd: spec.cwd.clone(),
        env,
        tmp_dir: inner.settings.tmp_root.join(format!("env-{id}")),
        mounts: spec.mounts.clone(),
        memory_mb: spec.memory_mb,
        tmp_mb: spec.tmp_mb,
        network: spec.network,
        netns,
    };
    let mut process = inner
        .driver
        .start(&launch)
        .map_err(|e| StartFailure::Spawn(e.to_string()))?;
    let killer = process.killer();
    let log = Capture::start(
        inner.sink.clone(),
        spec.log_group.clone(),
        stream,
        process.stdout.take(),
        process.stderr.take(),
        killer.clone(),
    );
    // START is written when the runtime fetches an invocation (see logpump.rs).
    let (capture, version) = (log.clone(), spec.version.clone());
    link.on_fetch(Box::new(move |inv| {
        capture.start_invocation(&inv.request_id, &version)
    }));
    let env = Arc::new(Env {
        id,
        pool_key: spec.pool_key.clone(),
        link,
        killer,
        log,
        prov_counted: AtomicBool::new(false),
        _listener: listener,
        _credentials: credentials,
        _api: api,
    });
    // The watcher owns the process: when it exits for any reason, everything pending
    // on the link fails, the rest of the tree is killed and the pool forgets it.
    let watched = env.clone();
    let weak = Arc::downgrade(inner);
    tokio::spawn(async move {
        let reason = match process.wait().await {
            // Read before destroy removes the cgroup.
            Ok(_) if watched.killer.oom_killed() => OOM_REASON.to_string(),
            Ok(status) => exit_reason(status),
            Err(e) => format!("wait failed: {e}"),
        };
        watched.destroy(&reason);
        if let Some(inner) = weak.upgrade() {
            crate::Scheduler { inner }.env_exited(&watched);
        }
    });

    let init_limit = if provisioned {
        Duration::from_secs(900)
    } else {
        inner.settings.init_timeout.max(spec.timeout)
    };
    match tokio::time::timeout(init_limit, ready).await {
        Ok(Ok(InitOutcome::Ready)) => {
            // Init runs unthrottled; invocations get CPU in proportion to memory.
            env.killer.limit_cpu();
            Ok((env, started.elapsed()))
        }
        Ok(Ok(InitOutcome::Failed(body))) => {
            env.destroy("init error");
            Err(StartFailure::Init(body))
        }
        Ok(Ok(InitOutcome::Exited(reason))) => Err(StartFailure::Init(exit_error(None, &reason))),
        Ok(Err(_)) => Err(StartFailure::Init(exit_error(None, "exit status 0"))),
        Err(_) => {
            env.destroy("init timed out");
            Err(StartFailure::Init(ErrorBody::new(
                "Runtime.InitError",
                format!(
                    "Init timed out after {:.2} seconds: the runtime did not call /runtime/invocation/next",
                    init_limit.as_secs_f64()
                ),
            )))
        }
    }
}

/// Describes an exit status the way Lambda does (`exit status 1`, `signal: killed`).
fn exit_reason(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(9) => "signal: killed".into(),
        Some(15) => "signal: terminated".into(),
        Some(6) => "signal: aborted".into(),
        Some(11) => "signal: segmentation fault".into(),
        Some(n) => format!("signal: {n}"),
        None => "exited".into(),
    }
}

/// The `Runtime.ExitError` body for a runtime that died (during init when
/// `request_id` is `None`); `Runtime.OutOfMemory` when the OOM killer killed it, with
/// the message Lambda gives (`... Runtime exited with error: signal: killed`).
pub(crate) fn exit_error(request_id: Option<&str>, reason: &str) -> ErrorBody {
    let (error_type, reason) = if reason == OOM_REASON {
        ("Runtime.OutOfMemory", "signal: killed")
    } else {
        ("Runtime.ExitError", reason)
    };
    let what = if reason == "exit status 0" {
        "Runtime exited without providing a reason".to_string()
    } else {
        format!("Runtime exited with error: {reason}")
    };
    let message = match request_id {
        Some(id) => format!("RequestId: {id} Error: {what}"),
        None => format!("Error: {what}"),
    };
    ErrorBody::new(error_type, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_errors_as_lambda_words_them() {
        let e = exit_error(Some("r1"), OOM_REASON);
        assert_eq!(e.error_type, "Runtime.OutOfMemory");
        assert_eq!(
            e.error_message,
            "RequestId: r1 Error: Runtime exited with error: signal: killed"
        );
        let e = exit_error(Some("r1"), "signal: killed");
        assert_eq!(e.error_type, "Runtime.ExitError");
        let e = exit_error(None, "exit status 0");
        assert_eq!(
            e.error_message,
            "Error: Runtime exited without providing a reason"
        );
    }
}
