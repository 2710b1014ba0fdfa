//! `stratus-runtime-api` owns the AWS Lambda Runtime API (version 2018-06-01) as seen
//! from inside one execution environment: `GET invocation/next`, `POST
//! invocation/{id}/response`, `POST invocation/{id}/error` and `POST init/error`.
//!
//! Each environment gets its own listener ([`RuntimeListener::bind`]), because the
//! official runtime clients take one fixed `host:port` from `AWS_LAMBDA_RUNTIME_API`:
//! the listener is how we know which environment is calling.
//!
//! The scheduler talks to an environment only through its [`EnvLink`]:
//! [`EnvLink::wait_ready`] resolves at the runtime's first `/next` (end of init) or on
//! `/init/error`; [`EnvLink::dispatch`] hands an [`Invocation`] to the parked `/next`
//! (or queues it until `/next` arrives) and returns a receiver for its [`Outcome`];
//! [`EnvLink::fail`] completes everything pending when the process dies. This crate
//! knows nothing about pools, limits or timeouts: that policy is the scheduler's.
//!
//! **Fetched or not.** An environment can die with an invocation assigned that its
//! runtime never received: a one-shot `provided` bootstrap exits after answering, a
//! runtime is killed while idle, and the scheduler meanwhile hands the next event to
//! it. Lambda charges such an event only a fresh init, so the link tells the two
//! apart: [`Outcome::NotStarted`] when the event was never handed over (still queued,
//! or the parked `/next` went away), [`Outcome::Exited`] once it was. One atomic per
//! link decides the race between the `/next` handler and the death, without a lock
//! on the handler's side: the dispatch arms it (`ASSIGNED`), the handler moves it to
//! `FETCHED` just before it answers `/next`, [`EnvLink::fail`] to `ABANDONED`;
//! whichever moves it first wins, and a handler that loses answers `410` instead of
//! handing the event out. The optional fetch hook ([`EnvLink::on_fetch`]) runs when
//! an event is handed out: the scheduler logs START there, so an event that is
//! dispatched again elsewhere leaves no START behind.

mod protocol;
mod server;

pub use protocol::{headers, ErrorBody, Route, MAX_RESPONSE_BYTES};
pub use server::RuntimeListener;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// One invocation as handed to the runtime by `/next`.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: Arc<str>,
    /// The event (request body).
    pub payload: Bytes,
    /// Absolute deadline, epoch milliseconds (`Lambda-Runtime-Deadline-Ms`).
    pub deadline_ms: u64,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub invoked_function_arn: Arc<str>,
    /// `Lambda-Runtime-Trace-Id`.
    pub trace_id: Arc<str>,
    /// `Lambda-Runtime-Client-Context` (decoded JSON text), when given.
    pub client_context: Option<Arc<str>>,
    /// `Lambda-Runtime-Cognito-Identity`, when given.
    pub cognito_identity: Option<Arc<str>>,
}

/// How an invocation ended, as far as the Runtime API can tell.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `/response` with this body.
    Response(Bytes),
    /// `/error`: the error body as posted (normalized to Lambda's JSON shape).
    Error(ErrorBody),
    /// The runtime posted a response larger than the limit.
    ResponseTooLarge,
    /// The environment died (or was destroyed) before answering.
    Exited(String),
    /// The environment died (or was already dead) before its runtime fetched the
    /// invocation with `/next`: the event never ran and can be dispatched again.
    NotStarted(String),
}

/// How init ended.
#[derive(Debug, Clone)]
pub enum InitOutcome {
    /// The runtime asked for its first event.
    Ready,
    /// `/init/error` with this body.
    Failed(ErrorBody),
    /// The process died during init.
    Exited(String),
}

#[derive(Debug, Default)]
struct LinkState {
    /// Sends the init outcome; taken at the first `/next`, `/init/error` or death.
    ready: Option<oneshot::Sender<InitOutcome>>,
    /// A parked `GET /next`.
    parked: Option<oneshot::Sender<Invocation>>,
    /// An invocation assigned before the runtime came back for it.
    queued: Option<Invocation>,
    /// The invocation being processed, and where its outcome goes.
    in_flight: Option<(Arc<str>, oneshot::Sender<Outcome>)>,
    /// The last finished request id, to tell "already answered" from "unknown".
    last_done: Option<Arc<str>>,
    /// Set when the environment is gone; everything new fails at once.
    dead: Option<String>,
}

/// The in-flight invocation's hand-over state (see the module docs).
const ASSIGNED: u8 = 0;
const FETCHED: u8 = 1;
const ABANDONED: u8 = 2;

/// Called with each invocation as `/next` hands it to the runtime.
pub type FetchHook = Box<dyn Fn(&Invocation) + Send + Sync>;

#[derive(Default)]
struct Shared {
    state: Mutex<LinkState>,
    /// `ASSIGNED`, `FETCHED` or `ABANDONED` for the latest dispatched invocation.
    handover: AtomicU8,
    on_fetch: OnceLock<FetchHook>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("state", &self.state)
            .field("handover", &self.handover)
            .finish_non_exhaustive()
    }
}

/// The scheduler's handle on one environment's Runtime API state. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct EnvLink {
    shared: Arc<Shared>,
}

impl EnvLink {
    /// A fresh link; pair it with a listener via [`RuntimeListener::bind`].
    pub fn new() -> (Self, oneshot::Receiver<InitOutcome>) {
        let (tx, rx) = oneshot::channel();
        let link = Self::default();
        link.shared.state.lock().ready = Some(tx);
        (link, rx)
    }

    /// Sets the hook run as each invocation is handed to the runtime (once per link;
    /// a second call is ignored). Set it before the first dispatch.
    pub fn on_fetch(&self, hook: FetchHook) {
        let _ = self.shared.on_fetch.set(hook);
    }

    /// Assigns an invocation to this environment and returns where its outcome will
    /// arrive. The environment must be idle (the scheduler guarantees one invocation
    /// at a time); if it is dead the receiver resolves at once with `NotStarted`.
    pub fn dispatch(&self, inv: Invocation) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.shared.state.lock();
        if let Some(reason) = &st.dead {
            let _ = tx.send(Outcome::NotStarted(reason.clone()));
            return rx;
        }
        self.shared.handover.store(ASSIGNED, Ordering::Release);
        st.in_flight = Some((inv.request_id.clone(), tx));
        match st.parked.take() {
            Some(parked) => {
                if let Err(inv) = parked.send(inv) {
                    // The /next connection went away; keep it for the next /next.
                    st.queued = Some(inv);
                }
            }
            None => st.queued = Some(inv),
        }
        rx
    }

    /// Marks the environment dead: pending init completes with `Exited(reason)`, the
    /// pending invocation with `Exited(reason)` if the runtime fetched it and
    /// `NotStarted(reason)` if not, and later calls fail at once.
    pub fn fail(&self, reason: &str) {
        let mut st = self.shared.state.lock();
        if st.dead.is_none() {
            st.dead = Some(reason.to_string());
        }
        if let Some(tx) = st.ready.take() {
            let _ = tx.send(InitOutcome::Exited(reason.to_string()));
        }
        if let Some((_, tx)) = st.in_flight.take() {
            let abandoned = self
                .shared
                .handover
                .compare_exchange(ASSIGNED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            let _ = tx.send(if abandoned {
                Outcome::NotStarted(reason.to_string())
            } else {
                Outcome::Exited(reason.to_string())
            });
        }
        st.parked = None;
        st.queued = None;
    }

    /// True once [`EnvLink::fail`] was called.
    pub fn is_dead(&self) -> bool {
        self.shared.state.lock().dead.is_some()
    }

    /// Called by the server just before it answers `/next` with `inv`: claims the
    /// hand-over (false when the environment was declared dead first; the event is
    /// then not handed out) and runs the fetch hook.
    fn fetched(&self, inv: &Invocation) -> bool {
        if self
            .shared
            .handover
            .compare_exchange(ASSIGNED, FETCHED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        if let Some(hook) = self.shared.on_fetch.get() {
            hook(inv);
        }
        true
    }

    /// Called by the server for `GET /next`: an invocation now, or a receiver to wait on.
    fn next(&self) -> Result<NextInvocation, String> {
        let mut st = self.shared.state.lock();
        if let Some(reason) = &st.dead {
            return Err(reason.clone());
        }
        if let Some(tx) = st.ready.take() {
            let _ = tx.send(InitOutcome::Ready);
        }
        if let Some(inv) = st.queued.take() {
            return Ok(NextInvocation::Now(inv));
        }
        let (tx, rx) = oneshot::channel();
        st.parked = Some(tx);
        Ok(NextInvocation::Wait(rx))
    }

    /// Completes the in-flight invocation `id`.
    fn complete(&self, id: &str, outcome: Outcome) -> Result<(), CompleteError> {
        let mut st = self.shared.state.lock();
        match &st.in_flight {
            Some((cur, _)) if &**cur == id => {
                if let Some((cur, tx)) = st.in_flight.take() {
                    let _ = tx.send(outcome);
                    st.last_done = Some(cur);
                }
                Ok(())
            }
            _ if st.last_done.as_deref() == Some(id) => Err(CompleteError::AlreadyDone),
            _ => Err(CompleteError::Unknown),
        }
    }

    fn init_error(&self, body: ErrorBody) -> bool {
        let mut st = self.shared.state.lock();
        match st.ready.take() {
            Some(tx) => {
                let _ = tx.send(InitOutcome::Failed(body));
                true
            }
            None => false,
        }
    }
}

enum NextInvocation {
    Now(Invocation),
    Wait(oneshot::Receiver<Invocation>),
}

#[derive(Debug, PartialEq, Eq)]
enum CompleteError {
    Unknown,
    AlreadyDone,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn inv(id: &str) -> Invocation {
        Invocation {
            request_id: Arc::from(id),
            payload: Bytes::from_static(b"{}"),
            deadline_ms: 0,
            invoked_function_arn: Arc::from("arn"),
            trace_id: Arc::from("Root=1-0-0"),
            client_context: None,
            cognito_identity: None,
        }
    }

    fn outcome(mut rx: oneshot::Receiver<Outcome>) -> Outcome {
        rx.try_recv().unwrap()
    }

    fn now(link: &EnvLink) -> Invocation {
        match link.next().unwrap() {
            NextInvocation::Now(i) => i,
            NextInvocation::Wait(_) => panic!("expected a queued invocation"),
        }
    }

    fn wait(link: &EnvLink) -> oneshot::Receiver<Invocation> {
        match link.next().unwrap() {
            NextInvocation::Wait(rx) => rx,
            NextInvocation::Now(_) => panic!("expected to park"),
        }
    }

    #[test]
    fn queued_and_never_fetched_is_not_started() {
        let (link, _ready) = EnvLink::new();
        let rx = link.dispatch(inv("a"));
        link.fail("exit status 0");
        assert!(matches!(outcome(rx), Outcome::NotStarted(r) if r == "exit status 0"));
    }

    #[test]
    fn fetched_from_the_queue_then_death_is_exited() {
        let (link, _ready) = EnvLink::new();
        let rx = link.dispatch(inv("a"));
        let got = now(&link);
        assert!(link.fetched(&got));
        link.fail("exit status 1");
        assert!(matches!(outcome(rx), Outcome::Exited(r) if r == "exit status 1"));
    }

    #[test]
    fn received_by_a_parked_next_then_death_is_exited() {
        let (link, _ready) = EnvLink::new();
        let mut parked = wait(&link);
        let rx = link.dispatch(inv("a"));
        let got = parked.try_recv().unwrap();
        assert!(link.fetched(&got));
        link.fail("signal: killed");
        assert!(matches!(outcome(rx), Outcome::Exited(_)));
    }

    #[test]
    fn a_parked_next_that_went_away_fetched_nothing() {
        // Gone before the dispatch: the event stays queued.
        let (link, _ready) = EnvLink::new();
        drop(wait(&link));
        let rx = link.dispatch(inv("a"));
        link.fail("signal: killed");
        assert!(matches!(outcome(rx), Outcome::NotStarted(_)));
        // Gone after the dispatch, with the event inside, never answered.
        let (link, _ready) = EnvLink::new();
        let parked = wait(&link);
        let rx = link.dispatch(inv("b"));
        drop(parked);
        link.fail("signal: killed");
        assert!(matches!(outcome(rx), Outcome::NotStarted(_)));
    }

    #[test]
    fn a_death_first_wins_the_hand_over() {
        let (link, _ready) = EnvLink::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        link.on_fetch(Box::new(move |_| {
            seen.fetch_add(1, Ordering::Relaxed);
        }));
        let rx = link.dispatch(inv("a"));
        let got = now(&link);
        link.fail("exit status 0");
        assert!(!link.fetched(&got), "the handler must not hand it out");
        assert!(matches!(outcome(rx), Outcome::NotStarted(_)));
        assert_eq!(calls.load(Ordering::Relaxed), 0, "no START for it");
    }

    #[test]
    fn dispatch_to_a_dead_environment_is_not_started() {
        let (link, _ready) = EnvLink::new();
        link.fail("exit status 0");
        let rx = link.dispatch(inv("a"));
        assert!(matches!(outcome(rx), Outcome::NotStarted(r) if r == "exit status 0"));
    }

    #[test]
    fn each_invocation_is_armed_afresh_and_the_hook_runs_per_fetch() {
        let (link, _ready) = EnvLink::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        link.on_fetch(Box::new(move |_| {
            seen.fetch_add(1, Ordering::Relaxed);
        }));
        let rx = link.dispatch(inv("a"));
        assert!(link.fetched(&now(&link)));
        link.complete("a", Outcome::Response(Bytes::from_static(b"1")))
            .unwrap();
        assert!(matches!(outcome(rx), Outcome::Response(_)));
        // The runtime answered and exited without asking for the next one.
        let rx = link.dispatch(inv("b"));
        link.fail("exit status 0");
        assert!(matches!(outcome(rx), Outcome::NotStarted(_)));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
