//! Asynchronous invocation (`X-Amz-Invocation-Type: Event`): nothing accepted is lost.
//!
//! - **Accept**: an event is answered 202 only after it is durably stored: in
//!   `events.db` on a single node ([`sqlite`]: group commit, fsync'd), or in the NATS
//!   JetStream stream `STRATUS_EVENTS` with `--nats` ([`jetstream`]: after the
//!   stream's publish acknowledgement). A store that cannot take the event answers an
//!   error instead (`ServiceException`), never a 202.
//! - **Deliver**: each backend takes due events and hands them to [`Delivery::deliver`]
//!   (the same for both), which invokes the function through the scheduler within its
//!   concurrency limits and says what to do with the event ([`Outcome`]). A throttled
//!   event waits and is tried again (it does not use up an attempt); it is never
//!   dropped. Delivery is at-least-once: an event is removed only after its outcome is
//!   handled, so after a crash every accepted event is delivered again or for the
//!   first time (by this node after a restart, or with JetStream by any node).
//! - **Retry**: a function error is retried `MaximumRetryAttempts` times (0–2, default 2)
//!   after a back-off (Lambda waits about 1 then 2 minutes; the base delay is a server
//!   setting), and never after `MaximumEventAgeInSeconds` (60–21,600, default 21,600).
//! - **Destinations and dead letters**: on success an `OnSuccess` destination gets
//!   Lambda's invocation record; when retries are exhausted or the event is too old,
//!   `OnFailure` gets the record and the function's `DeadLetterConfig` target gets the
//!   original event. Function targets are invoked asynchronously (through this same
//!   queue). Every failed event is also kept in the `dead_letters` table of the node
//!   that gave up on it (`events.db`, with either backend), readable at
//!   `GET /stratus/v1/dead-letters?function=NAME`.

mod jetstream;
mod sqlite;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::Connection;
use serde::Serialize;
use serde_json::{json, Value};
use stratus_scheduler::{InvokeError, InvokeRequest, Scheduler};

use crate::logs::now_ms;
use crate::model::new_uuid;
use crate::registry::{EventInvokeSettings, Registry};

/// Largest asynchronous payload (1 MB, as Lambda since late 2025).
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;

/// Tuning of asynchronous delivery.
#[derive(Debug, Clone)]
pub struct AsyncSettings {
    /// Delay before the first retry of a failed event; the second waits twice as long.
    pub retry_base: Duration,
    /// Deliveries running at once on this node (each still needs a concurrency slot).
    pub max_in_flight: usize,
}

impl Default for AsyncSettings {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(60),
            max_in_flight: 64,
        }
    }
}

/// Errors of the event queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// `events.db` could not be opened or read.
    #[error("event store (events.db): {0}")]
    Store(#[from] rusqlite::Error),
    /// The writer of `events.db` has stopped (the server is shutting down).
    #[error("the event queue is shut down")]
    ShutDown,
    /// `events.db` could not take the event.
    #[error("cannot store the event: {0}")]
    Write(String),
    /// The NATS server could not be reached at start.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The `--nats` URL.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// The stream or its consumer could not be created or read.
    #[error("cannot set up JetStream {what} on NATS at {url}: {reason} (is JetStream enabled: `nats-server -js`?)")]
    Setup {
        /// The `--nats` URL.
        url: String,
        /// `stream STRATUS_EVENTS` or `consumer …`.
        what: String,
        /// What the server said.
        reason: String,
    },
    /// The stream did not take the event: it was not accepted.
    #[error("the event stream (NATS JetStream at {url}) did not take the event: {reason}; it was not accepted, retry the request")]
    Unavailable {
        /// The `--nats` URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The stream could not be read.
    #[error("cannot read the event stream (NATS JetStream at {url}): {reason}")]
    Read {
        /// The `--nats` URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// An accepted event, as either backend keeps it.
#[derive(Debug, Clone)]
struct Event {
    request_id: String,
    function: String,
    qualifier: Option<String>,
    payload: Bytes,
    /// When it was first accepted (epoch ms): its age counts from here.
    received_ms: i64,
    /// Attempts that ended in a function error so far.
    attempts: u32,
    /// The X-Ray trace id of the Invoke request that accepted the event.
    trace_id: Option<String>,
}

/// What became of one delivery, for the backend to settle.
#[derive(Debug)]
enum Outcome {
    /// Handled (succeeded, destination notified): remove the event.
    Delivered,
    /// Throttled, or no environment could start: try again after this long without
    /// using up an attempt.
    Deferred(Duration),
    /// The function failed and may be retried: attempt number `attempts + 1` after
    /// the back-off.
    Retry {
        /// Attempts that failed so far.
        attempts: u32,
        /// The back-off.
        after: Duration,
    },
    /// Given up (destinations already notified): keep a dead letter, remove the event.
    DeadLettered {
        /// `RetriesExhausted`, `EventAgeExceeded` or `FunctionNotFound`.
        condition: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: Option<String>,
    },
    /// The server is shutting down: leave the event for the next start (or node).
    Interrupted,
}

/// A dead-lettered event, as the native API returns it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The request id of the original invocation.
    pub request_id: String,
    /// The function it was for.
    pub function: String,
    /// Why it was dead-lettered (e.g. `RetriesExhausted`, `EventAgeExceeded`).
    pub condition: String,
    /// How many times delivery was tried.
    pub attempts: u32,
    /// The last error, if the function failed.
    pub error: Option<String>,
    /// The event as it was invoked.
    pub payload: String,
    /// When it was dead-lettered, epoch milliseconds.
    pub timestamp: i64,
}

/// Where accepted events are kept.
enum Backend {
    Sqlite(sqlite::Writer),
    /// Boxed: the client and context are large, and the enum lives once per server.
    JetStream(Box<jetstream::JetStream>),
}

struct Inner {
    backend: Backend,
    /// `events.db`: the events (SQLite backend) and this node's dead letters.
    db: Arc<Mutex<Connection>>,
    /// Queue destinations and dead-letter queues.
    queues: Arc<stratus_queue::Queues>,
    /// Async metrics (AsyncEventsReceived, …), once the server sets it.
    metrics: std::sync::OnceLock<stratus_metrics::Recorder>,
}

/// The queue. Cheap to clone.
#[derive(Clone)]
pub struct AsyncQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AsyncQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.inner.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::JetStream(_) => "jetstream",
        };
        f.debug_struct("AsyncQueue")
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}

impl AsyncQueue {
    /// Opens `events.db` in `dir` and starts delivering: from `events.db` itself, or
    /// with `nats` (a `nats://` URL) from the JetStream stream `STRATUS_EVENTS`, which
    /// this node creates when missing and shares with every node on that NATS.
    pub async fn start(
        dir: &Path,
        registry: Arc<Registry>,
        scheduler: Scheduler,
        queues: Arc<stratus_queue::Queues>,
        settings: AsyncSettings,
        nats: Option<&str>,
    ) -> Result<Self, QueueError> {
        let path = dir.join("events.db");
        let db = Arc::new(Mutex::new(tokio::task::block_in_place(|| {
            sqlite::open(&path)
        })?));
        let backend = match nats {
            None => Backend::Sqlite(sqlite::Writer::start(&path)?),
            Some(url) => Backend::JetStream(Box::new(jetstream::JetStream::connect(url).await?)),
        };
        let queue = Self {
            inner: Arc::new(Inner {
                backend,
                db,
                queues,
                metrics: Default::default(),
            }),
        };
        let delivery = Delivery {
            queue: queue.clone(),
            registry,
            scheduler,
            settings,
        };
        match &queue.inner.backend {
            Backend::Sqlite(_) => {
                tokio::spawn(sqlite::run(delivery));
            }
            Backend::JetStream(js) => {
                // Events a single node accepted before it was given `--nats` move
                // to the stream first, so switching loses none.
                js.adopt_local_events(&queue.inner.db).await?;
                tokio::spawn(jetstream::run((**js).clone(), delivery));
            }
        }
        Ok(queue)
    }

    /// Counts async events from now on.
    pub fn set_metrics(&self, recorder: stratus_metrics::Recorder) {
        let _ = self.inner.metrics.set(recorder);
    }

    fn count(&self, metric: &'static str, function: &str, qualifier: Option<&str>, value: f64) {
        if let Some(r) = self.inner.metrics.get() {
            r.record(stratus_metrics::Event::Lambda {
                metric,
                function: function.into(),
                qualifier: qualifier.map(Into::into),
                value,
            });
        }
    }

    /// Stores an event durably. Resolves once it is on disk (or in the stream).
    pub async fn enqueue(
        &self,
        request_id: String,
        function: String,
        qualifier: Option<String>,
        payload: Bytes,
    ) -> Result<(), QueueError> {
        self.enqueue_traced(request_id, function, qualifier, payload, None)
            .await
    }

    /// [`Self::enqueue`] for an Invoke request with an X-Ray trace id, which the
    /// delivery keeps (as Lambda's asynchronous invocations do).
    pub async fn enqueue_traced(
        &self,
        request_id: String,
        function: String,
        qualifier: Option<String>,
        payload: Bytes,
        trace_id: Option<String>,
    ) -> Result<(), QueueError> {
        let ev = Event {
            request_id,
            function,
            qualifier,
            payload,
            received_ms: now_ms(),
            attempts: 0,
            trace_id,
        };
        let counted = (ev.function.clone(), ev.qualifier.clone());
        match &self.inner.backend {
            Backend::Sqlite(w) => w.enqueue(ev).await?,
            Backend::JetStream(js) => js.publish(&ev, None).await?,
        }
        self.count("AsyncEventsReceived", &counted.0, counted.1.as_deref(), 1.0);
        Ok(())
    }

    /// Events waiting for delivery or a retry (with JetStream: in the whole cluster).
    pub async fn pending(&self, function: Option<&str>) -> Result<u64, QueueError> {
        match &self.inner.backend {
            // One COUNT on a local file, as before: quick enough to run in place.
            Backend::Sqlite(_) => Ok(sqlite::pending(&self.inner.db.lock(), function)?),
            Backend::JetStream(js) => js.pending(function).await,
        }
    }

    /// How many dead letters a function has on this node (every function's with `None`).
    pub fn dead_letter_count(&self, function: Option<&str>) -> Result<u64, QueueError> {
        Ok(sqlite::dead_letter_count(&self.inner.db.lock(), function)?)
    }

    /// Dead letters of a function on this node, oldest first.
    pub fn dead_letters(&self, function: &str, limit: u32) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(sqlite::dead_letters(
            &self.inner.db.lock(),
            function,
            limit,
        )?)
    }
}

/// Delivers events: what both backends share.
#[derive(Clone)]
struct Delivery {
    queue: AsyncQueue,
    registry: Arc<Registry>,
    scheduler: Scheduler,
    settings: AsyncSettings,
}

/// How long a node waits for a function it does not know before an event for it is
/// dead-lettered as `FunctionNotFound`, when nodes share the events (JetStream).
const UNKNOWN_FUNCTION_GRACE: Duration = Duration::from_secs(30);

/// How long a throttled event waits before it is tried again.
const THROTTLE_WAIT: Duration = Duration::from_millis(200);

impl Delivery {
    /// Delivers one event; the caller settles it as the [`Outcome`] says.
    async fn deliver(&self, ev: &Event) -> Outcome {
        let (queue, registry) = (&self.queue, &self.registry);
        let cfg = registry.event_invoke_settings(&ev.function, ev.qualifier.as_deref());
        let age_ms = now_ms() - ev.received_ms;
        if age_ms > cfg.maximum_event_age_seconds as i64 * 1000 {
            return self
                .fail(&cfg, ev, "EventAgeExceeded", ev.attempts, None, None)
                .await;
        }
        let resolved = match registry.resolve(&ev.function, ev.qualifier.as_deref()) {
            Ok(r) => r,
            // Shared by nodes: the node that accepted the event knew the function, so
            // one that does not may just not have heard of it yet (a deploy still
            // propagating). Wait a little before calling it gone.
            Err(_)
                if matches!(self.queue.inner.backend, Backend::JetStream(_))
                    && age_ms < UNKNOWN_FUNCTION_GRACE.as_millis() as i64 =>
            {
                return Outcome::Deferred(Duration::from_secs(1));
            }
            Err(e) => {
                let error = e.message.clone();
                return self
                    .fail(&cfg, ev, "FunctionNotFound", ev.attempts, Some(error), None)
                    .await;
            }
        };
        queue.count(
            "AsyncEventAge",
            &ev.function,
            ev.qualifier.as_deref(),
            age_ms.max(0) as f64,
        );
        let req = InvokeRequest {
            request_id: Arc::from(ev.request_id.as_str()),
            payload: ev.payload.clone(),
            invoked_arn: resolved.invoked_arn.clone(),
            client_context: None,
            tail: false,
            trace_id: ev.trace_id.as_deref().map(Arc::from),
        };
        match self.scheduler.invoke(&resolved.spec, req).await {
            Err(InvokeError::ShuttingDown) => Outcome::Interrupted,
            Err(e) => {
                // Throttled (or the environment could not start): wait and try again,
                // without using up an attempt.
                tracing::debug!(error = %e, request_id = %ev.request_id, "async event deferred");
                Outcome::Deferred(THROTTLE_WAIT)
            }
            Ok(out) if !out.function_error => {
                if let Some(dest) = &cfg.on_success {
                    let arn = registry.identity.function_arn(&ev.function);
                    let record = invocation_record(
                        ev,
                        &arn,
                        &resolved,
                        "Success",
                        ev.attempts + 1,
                        &out.payload,
                        false,
                    );
                    if !self.send_to(dest, record).await {
                        queue.count(
                            "DestinationDeliveryFailures",
                            &ev.function,
                            ev.qualifier.as_deref(),
                            1.0,
                        );
                    }
                }
                Outcome::Delivered
            }
            Ok(out) => {
                let attempts = ev.attempts + 1;
                if attempts > cfg.maximum_retry_attempts {
                    let error = String::from_utf8_lossy(&out.payload).into_owned();
                    self.fail(
                        &cfg,
                        ev,
                        "RetriesExhausted",
                        attempts,
                        Some(error),
                        Some((&resolved, &out.payload)),
                    )
                    .await
                } else {
                    Outcome::Retry {
                        attempts,
                        after: self.settings.retry_base * attempts,
                    }
                }
            }
        }
    }

    /// Notifies `OnFailure` and the dead-letter target; the caller keeps the dead letter.
    async fn fail(
        &self,
        cfg: &EventInvokeSettings,
        ev: &Event,
        condition: &'static str,
        attempts: u32,
        error: Option<String>,
        response: Option<(&crate::registry::Resolved, &Bytes)>,
    ) -> Outcome {
        let (queue, registry) = (&self.queue, &self.registry);
        if let Some(dest) = &cfg.on_failure {
            let record = match response {
                Some((resolved, body)) => {
                    let arn = registry.identity.function_arn(&ev.function);
                    invocation_record(ev, &arn, resolved, condition, attempts, body, true)
                }
                None => json!({
                    "version": "1.0",
                    "timestamp": crate::model::lambda_time_now(),
                    "requestContext": {
                        "requestId": ev.request_id,
                        "functionArn": format!("{}:{}", registry.identity.function_arn(&ev.function), ev.qualifier.as_deref().unwrap_or("$LATEST")),
                        "condition": condition,
                        "approximateInvokeCount": attempts,
                    },
                    "requestPayload": serde_json::from_slice::<Value>(&ev.payload).unwrap_or(Value::Null),
                }),
            };
            if !self.send_to(dest, record).await {
                queue.count(
                    "DestinationDeliveryFailures",
                    &ev.function,
                    ev.qualifier.as_deref(),
                    1.0,
                );
            }
        }
        if let Some(dlq) = &cfg.dead_letter_target {
            if !self.send_raw(dlq, ev.payload.clone()).await {
                queue.count(
                    "DeadLetterErrors",
                    &ev.function,
                    ev.qualifier.as_deref(),
                    1.0,
                );
            }
        }
        queue.count(
            "AsyncEventsDropped",
            &ev.function,
            ev.qualifier.as_deref(),
            1.0,
        );
        Outcome::DeadLettered {
            condition,
            attempts,
            error,
        }
    }

    /// Whether the record was delivered.
    async fn send_to(&self, target: &str, record: Value) -> bool {
        self.send_raw(target, Bytes::from(record.to_string())).await
    }

    /// Sends to a destination: a function ARN (or name) gets an asynchronous
    /// invocation, a queue ARN (`arn:aws:sqs:…`) a message. Returns whether it was
    /// delivered.
    async fn send_raw(&self, target: &str, payload: Bytes) -> bool {
        let queue = &self.queue;
        if let Some(rest) = target.strip_prefix("arn:aws:sqs:") {
            let queues = &queue.inner.queues;
            let name = queues
                .name_from_arn(target)
                .or_else(|| rest.rsplit(':').next().map(str::to_string));
            let body = String::from_utf8_lossy(&payload).into_owned();
            match name {
                Some(name) => {
                    if let Err(e) = queues
                        .send_message(&name, stratus_queue::SendMessage::new(body))
                        .await
                    {
                        tracing::error!(error = %e, target, "cannot send to a queue destination");
                        return false;
                    }
                    return true;
                }
                None => tracing::error!(target, "not a queue ARN"),
            }
            return false;
        }
        match crate::registry::parse_function_ref(target) {
            Ok((name, qualifier)) if self.registry.snapshot(&name).is_some() => {
                if let Err(e) = queue.enqueue(new_uuid(), name, qualifier, payload).await {
                    tracing::error!(error = %e, target, "cannot send to a destination");
                    return false;
                }
                true
            }
            _ => {
                tracing::warn!(
                    target,
                    "destination is not a function on this server; the event is kept in dead_letters"
                );
                false
            }
        }
    }
}

/// Lambda's invocation record for destinations.
#[allow(clippy::too_many_arguments)]
fn invocation_record(
    ev: &Event,
    function_arn: &str,
    resolved: &crate::registry::Resolved,
    condition: &str,
    attempts: u32,
    response: &Bytes,
    error: bool,
) -> Value {
    let mut response_context =
        json!({ "statusCode": 200, "executedVersion": &*resolved.executed_version });
    if error {
        response_context["functionError"] = "Unhandled".into();
    }
    json!({
        "version": "1.0",
        "timestamp": crate::model::lambda_time_now(),
        "requestContext": {
            "requestId": ev.request_id,
            "functionArn": format!("{function_arn}:{}", resolved.executed_version),
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": serde_json::from_slice::<Value>(&ev.payload).unwrap_or(Value::Null),
        "responseContext": response_context,
        "responsePayload": serde_json::from_slice::<Value>(response).unwrap_or(Value::Null),
    })
}
