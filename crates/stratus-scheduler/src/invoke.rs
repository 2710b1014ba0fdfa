//! The invocation path: take a slot, hand the event to a warm environment (or start a
//! cold one), wait for the outcome under the function's timeout, give the slot back.
//!
//! - **Timeout**: the environment is destroyed (never reused) and the caller gets
//!   `{"errorMessage":"{time} {id} Task timed out after N.NN seconds"}`, also logged.
//! - **Crash** (the process exits mid-invocation): `Runtime.ExitError`; the watcher
//!   removes the environment and provisioned ones are replaced.
//! - **Init failure** (cold start): the init error is the function error; repeated
//!   failures back off (see `state.rs`) instead of spawning in a loop.
//! - **Caller gone** (the Invoke request's connection closed mid-invocation): as in
//!   Lambda, the invocation runs on to its end or its timeout, holding its slot; its
//!   END/REPORT are logged and the environment goes back to the pool warm.
//! - **Not started** (the environment died before its runtime fetched the event: a
//!   one-shot `provided` bootstrap that exits after answering, a Ruby runtime that
//!   exits after a critical exception, a runtime killed while idle): as in Lambda,
//!   this costs the event a fresh environment, not an error. The event is dispatched
//!   again with the same request id and the same slot (the lease is kept: nothing
//!   is released or counted twice): first to an idle environment or a new one, then
//!   (second time) to a new one only, and after [`MAX_REDISPATCH`] times it ends in
//!   `Runtime.ExitError` as a crash does, so a runtime that dies every time cannot
//!   loop. Each dispatch gets the function's full timeout from its own hand-over
//!   (Lambda's timeout covers the invoke phase, which never began). START is written
//!   when a runtime fetches the event (the link's fetch hook), so the dead
//!   environment's log gets none; START/END/REPORT appear once, in the log stream
//!   of the environment that ran it, REPORT with its Init Duration when it was
//!   started for it. The normal path pays one atomic for this (in the link).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use stratus_runtime_api::{ErrorBody, Invocation, Outcome, MAX_RESPONSE_BYTES};
use tokio::sync::oneshot;
use tracing::Instrument as _;

use crate::env::{self, exit_error, Env, StartFailure};
use crate::logpump::{now_ms, Report};
use crate::state::Refusal;
use crate::{FunctionSpec, InvokeError, InvokeRequest, InvokeResponse, Scheduler};

/// How many times an event whose environment died before fetching it is dispatched
/// again (see the module docs).
pub(crate) const MAX_REDISPATCH: u32 = 2;

/// An answer given without running the event (or after giving up on it).
type Answer = Result<InvokeResponse, InvokeError>;

impl Scheduler {
    /// Runs one synchronous invocation of `spec`.
    ///
    /// The warm path runs inline (no task hand-off); if the caller goes away
    /// mid-invocation, [`Settle`]'s drop hands the rest of the invocation to a task of
    /// its own. A cold start runs on its own task, so a caller that goes away cannot
    /// orphan the new environment.
    pub async fn invoke(
        &self,
        spec: &Arc<FunctionSpec>,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, InvokeError> {
        // Every server log line about this invocation carries its request id. When
        // the level filters the span out, making it is a check of a cached flag
        // (the fields are never formatted) and entering it does nothing.
        let span = tracing::info_span!(
            "invoke",
            request_id = %req.request_id,
            function = %spec.function_name,
            version = %spec.version,
        );
        self.invoke_in_span(spec, req).instrument(span).await
    }

    async fn invoke_in_span(
        &self,
        spec: &Arc<FunctionSpec>,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, InvokeError> {
        let lease = match self.admit(spec, &req, false).await {
            Ok(lease) => lease,
            Err(Admitted::Answered(answer)) => return answer,
            // Not reached: only a warm-only admission refuses for want of a warm
            // environment. Should it ever be, answer as for a full node.
            Err(Admitted::NoWarm) => {
                return Err(InvokeError::Throttled(
                    crate::ThrottleReason::ConcurrentInvocationLimitExceeded,
                ))
            }
        };
        self.run_leased(spec, req, lease).await
    }

    /// Runs `req` only if an environment of `spec`'s pool is idle now (a cluster
    /// routes calls to nodes that have one); otherwise hands `req` back untouched
    /// (`Err`), nothing counted. Limits and throttles are those of
    /// [`Scheduler::invoke`].
    pub async fn invoke_warm(
        &self,
        spec: &Arc<FunctionSpec>,
        req: InvokeRequest,
    ) -> Result<Result<InvokeResponse, InvokeError>, InvokeRequest> {
        let span = tracing::info_span!(
            "invoke",
            request_id = %req.request_id,
            function = %spec.function_name,
            version = %spec.version,
        );
        async {
            match self.admit(spec, &req, true).await {
                Ok(lease) => Ok(self.run_leased(spec, req, lease).await),
                Err(Admitted::Answered(answer)) => Ok(answer),
                Err(Admitted::NoWarm) => Err(req),
            }
        }
        .instrument(span)
        .await
    }

    /// Takes a slot (and an idle environment when there is one) for `req`.
    async fn admit(
        &self,
        spec: &Arc<FunctionSpec>,
        req: &InvokeRequest,
        warm_only: bool,
    ) -> Result<crate::state::Lease, Admitted> {
        if self.inner.shutdown.is_set() {
            return Err(Admitted::Answered(Err(InvokeError::ShuttingDown)));
        }
        let mut acquired =
            self.inner
                .state
                .lock()
                .acquire_mode(spec, Instant::now(), None, warm_only);
        if let Err(Refusal::Ask(ask)) = acquired {
            // The node's share of a cluster-wide pool is used up: wait (bounded) for
            // more, off the lock, then take the local slot with it.
            acquired = if ask.limiter.acquire(ask.pool.clone(), ask.limit).await {
                self.inner.state.lock().acquire_mode(
                    spec,
                    Instant::now(),
                    Some(ask.pool),
                    warm_only,
                )
            } else {
                self.inner.state.lock().count_throttle(&spec.function_name);
                Err(Refusal::Throttled(ask.reason))
            };
        }
        match acquired {
            Ok(lease) => Ok(lease),
            Err(Refusal::NoWarm) => Err(Admitted::NoWarm),
            Err(Refusal::Throttled(reason)) => {
                self.record_throttle(spec, &req.invoked_arn);
                Err(Admitted::Answered(Err(InvokeError::Throttled(reason))))
            }
            Err(Refusal::BackingOff(err)) => {
                self.record(|| record(spec, req, Duration::ZERO, None, (false, false)));
                Err(Admitted::Answered(Ok(function_error(&err))))
            }
            // Not reached: with a slot in hand the gate is not asked again. Should it
            // ever be, throttle rather than loop.
            Err(Refusal::Ask(ask)) => {
                self.inner.state.lock().count_throttle(&spec.function_name);
                self.record_throttle(spec, &req.invoked_arn);
                Err(Admitted::Answered(Err(InvokeError::Throttled(ask.reason))))
            }
        }
    }

    /// Runs `req` with the slot `lease` holds: on its idle environment, or on a new
    /// one.
    async fn run_leased(
        &self,
        spec: &Arc<FunctionSpec>,
        req: InvokeRequest,
        mut lease: crate::state::Lease,
    ) -> Result<InvokeResponse, InvokeError> {
        match lease.env.take() {
            Some(env) => {
                let mut settle = Settle::new(self, spec, lease, env, &req, None, 0);
                let outcome = settle.wait().await;
                if !self.again(&outcome, 0) {
                    return Ok(settle.finish(outcome));
                }
                let lease = match self.retake(spec, &req, settle.abandon(&outcome), 1) {
                    Ok(lease) => lease,
                    Err(answer) => return answer,
                };
                self.spawn_run(spec.clone(), req, lease, 1).await
            }
            None => self.spawn_run(spec.clone(), req, lease, 0).await,
        }
    }

    /// [`Scheduler::run_on`] on a task of its own, so that a caller that goes away
    /// cannot orphan a new environment.
    async fn spawn_run(
        &self,
        spec: Arc<FunctionSpec>,
        req: InvokeRequest,
        lease: crate::state::Lease,
        attempt: u32,
    ) -> Answer {
        let this = self.clone();
        let run = async move { this.run_on(spec, req, lease, attempt).await };
        tokio::spawn(run.instrument(tracing::Span::current()))
            .await
            .unwrap_or(Err(InvokeError::ShuttingDown))
    }

    /// Runs the invocation on `lease`'s environment, or starts one for it; then, as
    /// long as the environment dies before fetching the event, on another (`attempt`
    /// counts the dispatches again so far).
    async fn run_on(
        self,
        spec: Arc<FunctionSpec>,
        req: InvokeRequest,
        mut lease: crate::state::Lease,
        mut attempt: u32,
    ) -> Answer {
        loop {
            let (held, env, init) = match lease.env.take() {
                Some(env) => (lease, env, None),
                None => match self.cold_start(&spec, &req, lease).await {
                    Ok((held, env, init)) => (held, env, Some(init)),
                    Err(answer) => return answer,
                },
            };
            let mut settle = Settle::new(&self, &spec, held, env, &req, init, attempt);
            let outcome = settle.wait().await;
            if !self.again(&outcome, attempt) {
                return Ok(settle.finish(outcome));
            }
            attempt += 1;
            lease = match self.retake(&spec, &req, settle.abandon(&outcome), attempt) {
                Ok(lease) => lease,
                Err(answer) => return answer,
            };
        }
    }

    /// Finds a lease whose environment died before fetching its event another
    /// environment for dispatch number `attempt` (the slot stays held); on refusal
    /// (cold starts backing off) the slot is given back and the init error answers.
    fn retake(
        &self,
        spec: &Arc<FunctionSpec>,
        req: &InvokeRequest,
        mut lease: crate::state::Lease,
        attempt: u32,
    ) -> Result<crate::state::Lease, Answer> {
        let mut st = self.inner.state.lock();
        let now = Instant::now();
        match st.retake_env(spec, &mut lease, now, attempt < MAX_REDISPATCH) {
            Ok(()) => Ok(lease),
            Err(body) => {
                let flags = (lease.provisioned, lease.spillover);
                st.release(spec, lease, None, now, None);
                drop(st);
                self.record(|| record(spec, req, Duration::ZERO, None, flags));
                Err(Ok(function_error(&body)))
            }
        }
    }

    /// Starts an environment for `lease`. On failure the slot is given back and the
    /// answer (the init error as a function error) returned.
    async fn cold_start(
        &self,
        spec: &Arc<FunctionSpec>,
        req: &InvokeRequest,
        lease: crate::state::Lease,
    ) -> Result<(crate::state::Lease, Arc<Env>, Duration), Answer> {
        match env::start(&self.inner, spec, false).await {
            Ok((env, init)) => {
                tracing::info!(
                    init_ms = init.as_millis() as u64,
                    "cold start: environment ready"
                );
                self.inner
                    .state
                    .lock()
                    .record_init(&spec.pool_key, Ok(()), Instant::now());
                Ok((lease, env, init))
            }
            Err(failure) => {
                let mut st = self.inner.state.lock();
                let body = match failure {
                    StartFailure::Spawn(msg) => {
                        st.start_failed(&spec.pool_key);
                        st.release(spec, lease, None, Instant::now(), None);
                        return Err(Err(InvokeError::Start(msg)));
                    }
                    StartFailure::Init(body) => body,
                };
                tracing::warn!(error = %body.error_message, "cold start: init failed");
                st.record_init(&spec.pool_key, Err(&body), Instant::now());
                let flags = (lease.provisioned, lease.spillover);
                st.release(spec, lease, None, Instant::now(), None);
                drop(st);
                self.record(|| record(spec, req, Duration::ZERO, None, flags));
                Err(Ok(function_error(&body)))
            }
        }
    }

    /// Hands the event to `env` and returns where its outcome will arrive (START is
    /// logged when the runtime fetches it).
    fn begin(
        spec: &FunctionSpec,
        env: &Env,
        req: &InvokeRequest,
        init: Option<Duration>,
    ) -> InFlight {
        if req.tail {
            env.log.want_tail();
        }
        let started = Instant::now();
        let rx = env.link.dispatch(Invocation {
            request_id: req.request_id.clone(),
            payload: req.payload.clone(),
            deadline_ms: now_ms() as u64 + spec.timeout.as_millis() as u64,
            invoked_function_arn: req.invoked_arn.clone(),
            trace_id: req
                .trace_id
                .clone()
                .unwrap_or_else(crate::trace::new_trace_id),
            client_context: req.client_context.clone(),
            cognito_identity: None,
        });
        InFlight {
            rx,
            request_id: req.request_id.clone(),
            invoked_arn: req.invoked_arn.clone(),
            deadline: tokio::time::Instant::from_std(started + spec.timeout),
            started,
            init,
        }
    }

    /// Turns an invocation's outcome (or its timeout) into the caller's answer, logs
    /// END and REPORT, and tells whether `env` survives.
    fn conclude(
        spec: &FunctionSpec,
        env: &Env,
        inv: &InFlight,
        outcome: Option<Result<Outcome, oneshot::error::RecvError>>,
    ) -> ((Bytes, bool, Option<String>), bool) {
        let duration = inv.started.elapsed();
        let request_id = &inv.request_id;
        let mut prelude = None;
        let mut status = None;
        let (payload, function_error, keep) = match outcome {
            Some(Ok(Outcome::Response(body))) => (body, false, true),
            Some(Ok(Outcome::Error(e))) => (Bytes::from(e.to_json()), true, true),
            Some(Ok(Outcome::ResponseTooLarge)) => {
                let e = ErrorBody::new(
                    "Function.ResponseSizeTooLarge",
                    format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
                );
                (Bytes::from(e.to_json()), true, true)
            }
            Some(Ok(Outcome::Exited(reason) | Outcome::NotStarted(reason))) => {
                tracing::warn!(%reason, "the environment exited during the invocation");
                let e = exit_error(Some(request_id), &reason);
                status = Some(("error", Some(e.error_type.clone())));
                prelude = Some(format!("{} {} {}", iso_now(), request_id, e.error_message));
                (Bytes::from(e.to_json()), true, false)
            }
            Some(Err(_)) => {
                let e = exit_error(Some(request_id), "exit status 0");
                (Bytes::from(e.to_json()), true, false)
            }
            None => {
                tracing::warn!(
                    timeout_s = spec.timeout.as_secs_f64(),
                    "the invocation timed out"
                );
                let message = format!(
                    "{} {} Task timed out after {:.2} seconds",
                    iso_now(),
                    request_id,
                    spec.timeout.as_secs_f64()
                );
                prelude = Some(message.clone());
                status = Some(("timeout", None));
                let body = serde_json::json!({ "errorMessage": message });
                (Bytes::from(body.to_string()), true, false)
            }
        };
        tracing::debug!(
            duration_ms = duration.as_secs_f64() * 1000.0,
            function_error,
            "invocation done"
        );
        let tail = env.log.end_invocation(
            Report {
                request_id: request_id.clone(),
                duration,
                memory_mb: spec.memory_mb,
                init: inv.init,
                prelude,
                status,
            },
            &spec.version,
        );
        ((payload, function_error, tail), keep)
    }

    pub(crate) fn env_exited(&self, env: &Env) {
        let replace = self.inner.state.lock().env_exited(env);
        if replace && !self.inner.shutdown.is_set() {
            self.reconcile_provisioned(&env.pool_key);
        }
    }
}

/// Why [`Scheduler::admit`] gave no slot.
enum Admitted {
    /// The call is answered without running (throttled, init back-off, shutdown).
    Answered(Result<InvokeResponse, InvokeError>),
    /// Warm only, and no environment is idle.
    NoWarm,
}

/// An invocation handed to an environment and not yet concluded.
struct InFlight {
    rx: oneshot::Receiver<Outcome>,
    request_id: Arc<str>,
    invoked_arn: Arc<str>,
    started: Instant,
    deadline: tokio::time::Instant,
    init: Option<Duration>,
}

/// The outcome as awaited: `None` when the function's timeout passed first.
type Awaited = Option<Result<Outcome, oneshot::error::RecvError>>;

impl Scheduler {
    /// Whether an event is dispatched again after `attempt` re-dispatches: its
    /// environment died before its runtime fetched it, the bound is not reached and
    /// the server is not shutting down (which destroys environments itself).
    fn again(&self, outcome: &Awaited, attempt: u32) -> bool {
        matches!(outcome, Some(Ok(Outcome::NotStarted(_))))
            && attempt < MAX_REDISPATCH
            && !self.inner.shutdown.is_set()
    }
}

/// Carries one invocation from hand-off to the slot's return, exactly once: through
/// [`Settle::finish`] with the outcome, or, when the caller goes away mid-way (the
/// future is dropped), on drop, by finishing the invocation on a task of its own.
struct Settle<'a> {
    sched: &'a Scheduler,
    spec: &'a Arc<FunctionSpec>,
    /// Taken when settled.
    run: Option<(crate::state::Lease, InFlight)>,
    env: Arc<Env>,
    /// Cloned only if the caller goes away and the event must be dispatched again.
    req: &'a InvokeRequest,
    /// Dispatches again so far.
    attempt: u32,
}

impl<'a> Settle<'a> {
    fn new(
        sched: &'a Scheduler,
        spec: &'a Arc<FunctionSpec>,
        lease: crate::state::Lease,
        env: Arc<Env>,
        req: &'a InvokeRequest,
        init: Option<Duration>,
        attempt: u32,
    ) -> Self {
        let inv = Scheduler::begin(spec, &env, req, init);
        Self {
            sched,
            spec,
            run: Some((lease, inv)),
            env,
            req,
            attempt,
        }
    }

    /// Waits for the outcome, up to the function's timeout.
    async fn wait(&mut self) -> Awaited {
        let (_, inv) = self.run.as_mut()?;
        tokio::time::timeout_at(inv.deadline, &mut inv.rx)
            .await
            .ok()
    }

    /// Gives up this dispatch (the environment died before fetching the event):
    /// nothing is logged or counted, and the slot, still held, is returned for the
    /// next dispatch.
    #[allow(clippy::expect_used)] // as in `finish`
    fn abandon(mut self, outcome: &Awaited) -> crate::state::Lease {
        let (lease, _) = self
            .run
            .take()
            .expect("an invocation is settled exactly once");
        abandon(&self.env, outcome, self.attempt);
        lease
    }

    // `run` is `Some` from construction until `finish`, `abandon` or `Drop` takes
    // it, and both consume `self`: it cannot be taken twice.
    #[allow(clippy::expect_used)]
    fn finish(mut self, outcome: Awaited) -> InvokeResponse {
        let (lease, inv) = self
            .run
            .take()
            .expect("an invocation is settled exactly once");
        let (payload, function_error, log_tail) =
            settle(self.sched, self.spec, lease, &self.env, &inv, outcome);
        InvokeResponse {
            payload,
            function_error,
            log_tail,
        }
    }
}

/// Logs why a dispatch is given up. Its environment is gone already: `NotStarted`
/// comes only from a link that `Env::destroy` failed, which kills the tree (the
/// watcher accounts for it).
fn abandon(env: &Env, outcome: &Awaited, attempt: u32) {
    let reason = match outcome {
        Some(Ok(Outcome::NotStarted(reason))) => reason.as_str(),
        _ => "",
    };
    tracing::info!(
        %reason,
        attempt = attempt + 1,
        env = env.id,
        "the environment exited before its runtime fetched the event; dispatching it again"
    );
}

/// Concludes `inv` on `env` and gives its slot back (with `env` if it survived).
fn settle(
    sched: &Scheduler,
    spec: &Arc<FunctionSpec>,
    lease: crate::state::Lease,
    env: &Arc<Env>,
    inv: &InFlight,
    outcome: Awaited,
) -> (Bytes, bool, Option<String>) {
    let ((payload, function_error, log_tail), keep) = Scheduler::conclude(spec, env, inv, outcome);
    let duration = inv.started.elapsed();
    let flags = (lease.provisioned, lease.spillover);
    let back = sched.inner.state.lock().release(
        spec,
        lease,
        keep.then(|| env.clone()),
        Instant::now(),
        Some((function_error, duration)),
    );
    sched.record(|| crate::InvocationRecord {
        function: spec.function_name.clone(),
        version: spec.version.clone(),
        invoked_arn: inv.invoked_arn.clone(),
        duration,
        error: function_error,
        init: inv.init,
        provisioned: flags.0,
        spillover: flags.1,
    });
    if let Some(surplus) = back {
        surplus.destroy("not needed");
    }
    if !keep {
        env.destroy("invocation failed");
    }
    (payload, function_error, log_tail)
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        let Some((lease, mut inv)) = self.run.take() else {
            return;
        };
        let (sched, spec, env) = (self.sched.clone(), self.spec.clone(), self.env.clone());
        let attempt = self.attempt;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let req = self.req.clone();
                rt.spawn(async move {
                    let outcome = tokio::time::timeout_at(inv.deadline, &mut inv.rx)
                        .await
                        .ok();
                    if !sched.again(&outcome, attempt) {
                        settle(&sched, &spec, lease, &env, &inv, outcome);
                        return;
                    }
                    // As for a caller still waiting: dispatched again, answer dropped.
                    abandon(&env, &outcome, attempt);
                    if let Ok(lease) = sched.retake(&spec, &req, lease, attempt + 1) {
                        let _ = sched.clone().run_on(spec, req, lease, attempt + 1).await;
                    }
                });
            }
            // No runtime left to wait on (the server is going down): the invocation
            // cannot be awaited any more, so the environment goes with it.
            Err(_) => {
                env.destroy("the invocation was abandoned at shutdown");
                let outcome = Some((true, inv.started.elapsed()));
                sched
                    .inner
                    .state
                    .lock()
                    .release(&spec, lease, None, Instant::now(), outcome);
            }
        }
    }
}

/// The record of an invocation that ended before reaching an environment (init
/// failure or init back-off): a function error.
fn record(
    spec: &FunctionSpec,
    req: &InvokeRequest,
    duration: Duration,
    init: Option<Duration>,
    (provisioned, spillover): (bool, bool),
) -> crate::InvocationRecord {
    crate::InvocationRecord {
        function: spec.function_name.clone(),
        version: spec.version.clone(),
        invoked_arn: req.invoked_arn.clone(),
        duration,
        error: true,
        init,
        provisioned,
        spillover,
    }
}

fn function_error(err: &ErrorBody) -> InvokeResponse {
    InvokeResponse {
        payload: Bytes::from(err.to_json()),
        function_error: true,
        log_tail: None,
    }
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
