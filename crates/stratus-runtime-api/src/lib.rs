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

mod protocol;
mod server;

pub use protocol::{headers, ErrorBody, Route, MAX_RESPONSE_BYTES};
pub use server::RuntimeListener;

use std::sync::Arc;

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

/// The scheduler's handle on one environment's Runtime API state. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct EnvLink {
    state: Arc<Mutex<LinkState>>,
}

impl EnvLink {
    /// A fresh link; pair it with a listener via [`RuntimeListener::bind`].
    pub fn new() -> (Self, oneshot::Receiver<InitOutcome>) {
        let (tx, rx) = oneshot::channel();
        let link = Self::default();
        link.state.lock().ready = Some(tx);
        (link, rx)
    }

    /// Assigns an invocation to this environment and returns where its outcome will
    /// arrive. The environment must be idle (the scheduler guarantees one invocation
    /// at a time); if it is dead the receiver resolves at once with `Exited`.
    pub fn dispatch(&self, inv: Invocation) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.state.lock();
        if let Some(reason) = &st.dead {
            let _ = tx.send(Outcome::Exited(reason.clone()));
            return rx;
        }
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

    /// Marks the environment dead: pending init and invocation complete with
    /// `Exited(reason)`, and later calls fail at once.
    pub fn fail(&self, reason: &str) {
        let mut st = self.state.lock();
        if st.dead.is_none() {
            st.dead = Some(reason.to_string());
        }
        if let Some(tx) = st.ready.take() {
            let _ = tx.send(InitOutcome::Exited(reason.to_string()));
        }
        if let Some((_, tx)) = st.in_flight.take() {
            let _ = tx.send(Outcome::Exited(reason.to_string()));
        }
        st.parked = None;
        st.queued = None;
    }

    /// True once [`EnvLink::fail`] was called.
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead.is_some()
    }

    /// Called by the server for `GET /next`: an invocation now, or a receiver to wait on.
    fn next(&self) -> Result<NextInvocation, String> {
        let mut st = self.state.lock();
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
        let mut st = self.state.lock();
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
        let mut st = self.state.lock();
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
