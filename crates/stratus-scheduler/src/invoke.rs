//! The invocation path: take a slot, hand the event to a warm environment (or start a
//! cold one), wait for the outcome under the function's timeout, give the slot back.
//!
//! - **Timeout**: the environment is destroyed (never reused) and the caller gets
//!   `{"errorMessage":"{time} {id} Task timed out after N.NN seconds"}`, also logged.
//! - **Crash** (the process exits mid-invocation): `Runtime.ExitError`; the watcher
//!   removes the environment and provisioned ones are replaced.
//! - **Init failure** (cold start): the init error is the function error; repeated
//!   failures back off (see `state.rs`) instead of spawning in a loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use stratus_runtime_api::{ErrorBody, Invocation, Outcome, MAX_RESPONSE_BYTES};

use crate::env::{self, exit_error, Env, StartFailure};
use crate::logpump::{now_ms, Report};
use crate::state::Refusal;
use crate::{FunctionSpec, InvokeError, InvokeRequest, InvokeResponse, Scheduler};

impl Scheduler {
    /// Runs one synchronous invocation of `spec`.
    ///
    /// The warm path runs inline (no task hand-off); if the caller goes away
    /// mid-invocation, [`Settle`]'s drop destroys the environment (its invocation can
    /// no longer be awaited) and frees the slot. A cold start runs on its own task, so
    /// a caller that goes away cannot orphan the new environment.
    pub async fn invoke(
        &self,
        spec: &Arc<FunctionSpec>,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, InvokeError> {
        if self.inner.shutdown.is_set() {
            return Err(InvokeError::ShuttingDown);
        }
        let acquired = self.inner.state.lock().acquire(spec, Instant::now());
        let mut lease = match acquired {
            Ok(lease) => lease,
            Err(Refusal::Throttled(reason)) => return Err(InvokeError::Throttled(reason)),
            Err(Refusal::BackingOff(err)) => return Ok(function_error(&err)),
        };
        match lease.env.take() {
            Some(env) => {
                let settle = Settle::new(self, spec, lease, env.clone());
                let (result, keep) = self.dispatch(spec, &env, &req, None).await;
                Ok(settle.finish(result, keep))
            }
            None => {
                let this = self.clone();
                let spec = spec.clone();
                tokio::spawn(async move { this.run_cold(spec, req, lease).await })
                    .await
                    .unwrap_or(Err(InvokeError::ShuttingDown))
            }
        }
    }

    /// Starts an environment for `lease`, then runs the invocation on it.
    async fn run_cold(
        self,
        spec: Arc<FunctionSpec>,
        req: InvokeRequest,
        lease: crate::state::Lease,
    ) -> Result<InvokeResponse, InvokeError> {
        let (env, init) = match env::start(&self.inner, &spec, false).await {
            Ok((env, init)) => {
                self.inner
                    .state
                    .lock()
                    .record_init(&spec.pool_key, Ok(()), Instant::now());
                (env, init)
            }
            Err(failure) => {
                let mut st = self.inner.state.lock();
                let body = match failure {
                    StartFailure::Spawn(msg) => {
                        st.start_failed(&spec.pool_key);
                        st.release(&spec, lease, None, Instant::now(), None);
                        return Err(InvokeError::Start(msg));
                    }
                    StartFailure::Init(body) => body,
                };
                st.record_init(&spec.pool_key, Err(&body), Instant::now());
                st.release(&spec, lease, None, Instant::now(), None);
                return Ok(function_error(&body));
            }
        };
        let settle = Settle::new(&self, &spec, lease, env.clone());
        let (result, keep) = self.dispatch(&spec, &env, &req, Some(init)).await;
        Ok(settle.finish(result, keep))
    }

    /// Hands the event to `env` and waits for the outcome. Returns the payload,
    /// whether it is a function error, the tail receiver, and whether `env` survives.
    async fn dispatch(
        &self,
        spec: &FunctionSpec,
        env: &Arc<Env>,
        req: &InvokeRequest,
        init: Option<Duration>,
    ) -> ((Bytes, bool, Option<String>), bool) {
        env.log
            .start_invocation(&req.request_id, &spec.version, req.tail);
        let timeout_ms = spec.timeout.as_millis() as u64;
        let started = Instant::now();
        let rx = env.link.dispatch(Invocation {
            request_id: req.request_id.clone(),
            payload: req.payload.clone(),
            deadline_ms: now_ms() as u64 + timeout_ms,
            invoked_function_arn: req.invoked_arn.clone(),
            trace_id: trace_id(&req.request_id),
            client_context: req.client_context.clone(),
            cognito_identity: None,
        });
        let outcome = tokio::time::timeout(spec.timeout, rx).await;
        let duration = started.elapsed();
        let mut prelude = None;
        let mut status = None;
        let (payload, function_error, keep) = match outcome {
            Ok(Ok(Outcome::Response(body))) => (body, false, true),
            Ok(Ok(Outcome::Error(e))) => (Bytes::from(e.to_json()), true, true),
            Ok(Ok(Outcome::ResponseTooLarge)) => {
                let e = ErrorBody::new(
                    "Function.ResponseSizeTooLarge",
                    format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
                );
                (Bytes::from(e.to_json()), true, true)
            }
            Ok(Ok(Outcome::Exited(reason))) => {
                let e = exit_error(Some(&req.request_id), &reason);
                status = Some(("error", Some(e.error_type.clone())));
                prelude = Some(format!(
                    "{} {} {}",
                    iso_now(),
                    req.request_id,
                    e.error_message
                ));
                (Bytes::from(e.to_json()), true, false)
            }
            Ok(Err(_)) => {
                let e = exit_error(Some(&req.request_id), "exit status 0");
                (Bytes::from(e.to_json()), true, false)
            }
            Err(_) => {
                let message = format!(
                    "{} {} Task timed out after {:.2} seconds",
                    iso_now(),
                    req.request_id,
                    spec.timeout.as_secs_f64()
                );
                prelude = Some(message.clone());
                status = Some(("timeout", None));
                let body = serde_json::json!({ "errorMessage": message });
                (Bytes::from(body.to_string()), true, false)
            }
        };
        let tail = env.log.end_invocation(Report {
            request_id: req.request_id.clone(),
            duration,
            memory_mb: spec.memory_mb,
            init,
            prelude,
            status,
        });
        ((payload, function_error, tail), keep)
    }

    pub(crate) fn env_exited(&self, env: &Env) {
        let replace = self.inner.state.lock().env_exited(env);
        if replace && !self.inner.shutdown.is_set() {
            self.reconcile_provisioned(&env.pool_key);
        }
    }
}

/// Gives an invocation's slot back exactly once: through [`Settle::finish`] with the
/// outcome, or, when the invocation is abandoned mid-way (the caller went away), on
/// drop, destroying the environment whose invocation nobody awaits any more.
struct Settle<'a> {
    sched: &'a Scheduler,
    spec: &'a Arc<FunctionSpec>,
    lease: Option<crate::state::Lease>,
    env: Arc<Env>,
    started: Instant,
}

impl<'a> Settle<'a> {
    fn new(
        sched: &'a Scheduler,
        spec: &'a Arc<FunctionSpec>,
        lease: crate::state::Lease,
        env: Arc<Env>,
    ) -> Self {
        Self {
            sched,
            spec,
            lease: Some(lease),
            env,
            started: Instant::now(),
        }
    }

    fn finish(mut self, result: (Bytes, bool, Option<String>), keep: bool) -> InvokeResponse {
        let (payload, function_error, log_tail) = result;
        if let Some(lease) = self.lease.take() {
            let outcome = Some((function_error, self.started.elapsed()));
            let back = self.sched.inner.state.lock().release(
                self.spec,
                lease,
                keep.then(|| self.env.clone()),
                Instant::now(),
                outcome,
            );
            if let Some(surplus) = back {
                surplus.destroy("not needed");
            }
            if !keep {
                self.env.destroy("invocation failed");
            }
        }
        InvokeResponse {
            payload,
            function_error,
            log_tail,
        }
    }
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.env.destroy("the caller went away mid-invocation");
            let outcome = Some((true, self.started.elapsed()));
            self.sched
                .inner
                .state
                .lock()
                .release(self.spec, lease, None, Instant::now(), outcome);
        }
    }
}

fn function_error(err: &ErrorBody) -> InvokeResponse {
    InvokeResponse {
        payload: Bytes::from(err.to_json()),
        function_error: true,
        log_tail: None,
    }
}

fn trace_id(request_id: &str) -> Arc<str> {
    let hex: String = request_id
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(24)
        .collect();
    let secs = now_ms() / 1000;
    Arc::from(format!(
        "Root=1-{secs:08x}-{hex:0>24};Parent={};Sampled=0",
        &hex[..hex.len().min(16)]
    ))
}

/// Current UTC time as `2024-01-02T03:04:05.678Z`.
pub(crate) fn iso_now() -> String {
    let d = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.millisecond()
    )
}
