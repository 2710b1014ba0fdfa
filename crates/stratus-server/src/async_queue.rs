//! Asynchronous invocation (`X-Amz-Invocation-Type: Event`): nothing accepted is lost.
//!
//! - **Accept**: an event is answered 202 only after it is on disk. Events go to a
//!   writer thread that inserts every event waiting at that moment in one transaction
//!   of `events.db` (SQLite, WAL, `synchronous=FULL`, so the commit is fsync'd): a
//!   group commit, one fsync for a burst.
//! - **Deliver**: a dispatcher task takes due events (oldest first) and invokes the
//!   function through the scheduler, within the function's concurrency limits. A
//!   throttled event waits and is retried (it does not use up an attempt); it is never
//!   dropped. Delivery is at-least-once: an event is deleted only after its outcome
//!   is handled, so after a crash every accepted event is delivered again or for the
//!   first time.
//! - **Retry**: a function error is retried `MaximumRetryAttempts` times (0–2, default 2)
//!   after a back-off (Lambda waits about 1 then 2 minutes; the base delay is a server
//!   setting), and never after `MaximumEventAgeInSeconds` (60–21,600, default 21,600).
//! - **Destinations and dead letters**: on success an `OnSuccess` destination gets
//!   Lambda's invocation record; when retries are exhausted or the event is too old,
//!   `OnFailure` gets the record and the function's `DeadLetterConfig` target gets the
//!   original event. Function targets are invoked asynchronously (through this same
//!   queue). Every failed event is also kept in the `dead_letters` table, readable at
//!   `GET /stratus/v1/dead-letters?function=NAME`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{params, Connection};
use serde::Serialize;
use serde_json::{json, Value};
use stratus_scheduler::{InvokeError, InvokeRequest, Scheduler};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

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
    /// Deliveries running at once (each still needs a concurrency slot).
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

/// An accepted event as stored.
#[derive(Debug, Clone)]
struct StoredEvent {
    id: i64,
    request_id: String,
    function: String,
    qualifier: Option<String>,
    payload: Bytes,
    received_ms: i64,
    attempts: u32,
    /// The X-Ray trace id of the Invoke request that accepted the event.
    trace_id: Option<String>,
}

struct Enqueue {
    request_id: String,
    function: String,
    qualifier: Option<String>,
    payload: Bytes,
    trace_id: Option<String>,
    ack: oneshot::Sender<Result<(), String>>,
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

/// The queue. Cheap to clone.
#[derive(Clone)]
pub struct AsyncQueue {
    tx: mpsc::Sender<Enqueue>,
    /// Queue destinations and dead-letter queues.
    queues: Arc<stratus_queue::Queues>,
    db: Arc<Mutex<Connection>>,
    wake: Arc<Notify>,
    /// Async metrics (AsyncEventsReceived, …), once the server sets it.
    metrics: Arc<std::sync::OnceLock<stratus_metrics::Recorder>>,
}

impl std::fmt::Debug for AsyncQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncQueue").finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT,
    payload BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_due ON events (next_attempt_ms, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    function TEXT NOT NULL,
    condition TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    payload BLOB NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_fn ON dead_letters (function, id);
";

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk (fsync'd) before we answer 202.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(SCHEMA)?;
    // Databases from before trace ids were kept gain the column (NULL: such an
    // event is delivered with a new trace id).
    let has_trace: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('events') WHERE name = 'trace_id')",
        [],
        |r| r.get(0),
    )?;
    if !has_trace {
        conn.execute_batch("ALTER TABLE events ADD COLUMN trace_id TEXT")?;
    }
    Ok(conn)
}

impl AsyncQueue {
    /// Opens `events.db` in `dir` and starts the writer thread and the dispatcher.
    pub fn start(
        dir: &Path,
        registry: Arc<Registry>,
        scheduler: Scheduler,
        queues: Arc<stratus_queue::Queues>,
        settings: AsyncSettings,
    ) -> rusqlite::Result<Self> {
        let path = dir.join("events.db");
        let writer = open(&path)?;
        let db = Arc::new(Mutex::new(open(&path)?));
        let (tx, rx) = mpsc::channel::<Enqueue>(16 * 1024);
        let wake = Arc::new(Notify::new());
        let w = wake.clone();
        std::thread::Builder::new()
            .name("stratus-events".into())
            .spawn(move || writer_loop(writer, rx, w))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let queue = Self {
            tx,
            db,
            wake,
            queues,
            metrics: Default::default(),
        };
        tokio::spawn(dispatch_loop(queue.clone(), registry, scheduler, settings));
        Ok(queue)
    }

    /// Counts async events from now on.
    pub fn set_metrics(&self, recorder: stratus_metrics::Recorder) {
        let _ = self.metrics.set(recorder);
    }

    fn count(&self, metric: &'static str, function: &str, qualifier: Option<&str>, value: f64) {
        if let Some(r) = self.metrics.get() {
            r.record(stratus_metrics::Event::Lambda {
                metric,
                function: function.into(),
                qualifier: qualifier.map(Into::into),
                value,
            });
        }
    }

    /// Stores an event durably. Resolves once it is on disk.
    pub async fn enqueue(
        &self,
        request_id: String,
        function: String,
        qualifier: Option<String>,
        payload: Bytes,
    ) -> Result<(), String> {
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
    ) -> Result<(), String> {
        let (ack, done) = oneshot::channel();
        let counted = (function.clone(), qualifier.clone());
        self.tx
            .send(Enqueue {
                request_id,
                function,
                qualifier,
                payload,
                trace_id,
                ack,
            })
            .await
            .map_err(|_| "the event queue is shut down".to_string())?;
        done.await
            .map_err(|_| "the event queue is shut down".to_string())??;
        self.count("AsyncEventsReceived", &counted.0, counted.1.as_deref(), 1.0);
        Ok(())
    }

    /// Events waiting for delivery or a retry.
    pub fn pending(&self, function: Option<&str>) -> rusqlite::Result<u64> {
        let conn = self.db.lock();
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM events WHERE ?1 IS NULL OR function = ?1",
            [function],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// How many dead letters a function has (every function's with `None`).
    pub fn dead_letter_count(&self, function: Option<&str>) -> rusqlite::Result<u64> {
        let conn = self.db.lock();
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM dead_letters WHERE ?1 IS NULL OR function = ?1",
            [function],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Dead letters of a function, oldest first.
    pub fn dead_letters(&self, function: &str, limit: u32) -> rusqlite::Result<Vec<DeadLetter>> {
        let conn = self.db.lock();
        let mut stmt = conn.prepare(
            "SELECT request_id, function, condition, attempts, error, payload, timestamp FROM dead_letters
             WHERE function = ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![function, limit], |r| {
            let payload: Vec<u8> = r.get(5)?;
            Ok(DeadLetter {
                request_id: r.get(0)?,
                function: r.get(1)?,
                condition: r.get(2)?,
                attempts: r.get::<_, i64>(3)? as u32,
                error: r.get(4)?,
                payload: String::from_utf8_lossy(&payload).into_owned(),
                timestamp: r.get(6)?,
            })
        })?;
        rows.collect()
    }

    fn due(
        &self,
        now: i64,
        exclude: &HashSet<i64>,
        limit: usize,
    ) -> rusqlite::Result<(Vec<StoredEvent>, Option<i64>)> {
        let conn = self.db.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, request_id, function, qualifier, payload, received_ms, attempts, trace_id FROM events
             WHERE next_attempt_ms <= ?1 ORDER BY next_attempt_ms, id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, (limit + exclude.len()) as i64], |r| {
            let payload: Vec<u8> = r.get(4)?;
            Ok(StoredEvent {
                id: r.get(0)?,
                request_id: r.get(1)?,
                function: r.get(2)?,
                qualifier: r.get(3)?,
                payload: Bytes::from(payload),
                received_ms: r.get(5)?,
                attempts: r.get::<_, i64>(6)? as u32,
                trace_id: r.get(7)?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            let ev = row?;
            if !exclude.contains(&ev.id) && out.len() < limit {
                out.push(ev);
            }
        }
        let next: Option<i64> = conn
            .query_row(
                "SELECT MIN(next_attempt_ms) FROM events WHERE next_attempt_ms > ?1",
                [now],
                |r| r.get(0),
            )
            .unwrap_or(None);
        Ok((out, next))
    }

    fn finish(&self, id: i64) {
        if let Err(e) = self
            .db
            .lock()
            .execute("DELETE FROM events WHERE id = ?1", [id])
        {
            tracing::error!(error = %e, "cannot delete a delivered event");
        }
    }

    fn reschedule(&self, id: i64, attempts: u32, at_ms: i64) {
        let r = self.db.lock().execute(
            "UPDATE events SET attempts = ?2, next_attempt_ms = ?3 WHERE id = ?1",
            params![id, attempts, at_ms],
        );
        if let Err(e) = r {
            tracing::error!(error = %e, "cannot reschedule an event");
        }
    }

    fn dead_letter(&self, ev: &StoredEvent, condition: &str, attempts: u32, error: Option<&str>) {
        let mut conn = self.db.lock();
        let r = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO dead_letters (request_id, function, condition, attempts, error, payload, timestamp)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![ev.request_id, ev.function, condition, attempts, error, &ev.payload[..], now_ms()],
            )?;
            tx.execute("DELETE FROM events WHERE id = ?1", [ev.id])?;
            tx.commit()
        })();
        if let Err(e) = r {
            tracing::error!(error = %e, "cannot dead-letter an event");
        }
    }
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Enqueue>, wake: Arc<Notify>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let now = now_ms();
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO events (request_id, function, qualifier, payload, received_ms, next_attempt_ms, trace_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
                )?;
                for e in &batch {
                    stmt.execute(params![
                        e.request_id,
                        e.function,
                        e.qualifier,
                        &e.payload[..],
                        now,
                        e.trace_id
                    ])?;
                }
            }
            tx.commit()
        })();
        let reply = result.map_err(|e| format!("cannot store the event: {e}"));
        for e in batch {
            let _ = e.ack.send(reply.clone());
        }
        wake.notify_one();
    }
}

async fn dispatch_loop(
    queue: AsyncQueue,
    registry: Arc<Registry>,
    scheduler: Scheduler,
    settings: AsyncSettings,
) {
    let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let slots = Arc::new(Semaphore::new(settings.max_in_flight));
    loop {
        let now = now_ms();
        let exclude = in_flight.lock().clone();
        let free = slots.available_permits();
        let (due, next) = match queue.due(now, &exclude, free.max(1)) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the event queue");
                (Vec::new(), Some(now + 1000))
            }
        };
        for ev in due {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            in_flight.lock().insert(ev.id);
            let (q, reg, sched, inf, set) = (
                queue.clone(),
                registry.clone(),
                scheduler.clone(),
                in_flight.clone(),
                settings.clone(),
            );
            tokio::spawn(async move {
                deliver(&q, &reg, &sched, &set, ev.clone()).await;
                inf.lock().remove(&ev.id);
                drop(permit);
                q.wake.notify_one();
            });
        }
        let wait = next
            .map(|t| Duration::from_millis((t - now_ms()).clamp(1, 1000) as u64))
            .unwrap_or(Duration::from_secs(1));
        tokio::select! {
            _ = queue.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        if scheduler.is_shut_down() {
            return;
        }
    }
}

/// Delivers one event and settles it: deleted, rescheduled, or dead-lettered.
async fn deliver(
    queue: &AsyncQueue,
    registry: &Arc<Registry>,
    scheduler: &Scheduler,
    settings: &AsyncSettings,
    ev: StoredEvent,
) {
    let cfg = registry.event_invoke_settings(&ev.function, ev.qualifier.as_deref());
    let age_ms = now_ms() - ev.received_ms;
    if age_ms > cfg.maximum_event_age_seconds as i64 * 1000 {
        fail(
            queue,
            registry,
            &cfg,
            &ev,
            "EventAgeExceeded",
            ev.attempts,
            None,
            None,
        )
        .await;
        return;
    }
    let resolved = match registry.resolve(&ev.function, ev.qualifier.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            fail(
                queue,
                registry,
                &cfg,
                &ev,
                "FunctionNotFound",
                ev.attempts,
                Some(&e.message),
                None,
            )
            .await;
            return;
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
    match scheduler.invoke(&resolved.spec, req).await {
        Err(InvokeError::ShuttingDown) => {} // stays on disk for the next start
        Err(e) => {
            // Throttled (or the environment could not start): wait and try again,
            // without using up an attempt.
            tracing::debug!(error = %e, request_id = %ev.request_id, "async event deferred");
            queue.reschedule(ev.id, ev.attempts, now_ms() + 200);
        }
        Ok(out) if !out.function_error => {
            if let Some(dest) = &cfg.on_success {
                let arn = registry.identity.function_arn(&ev.function);
                let record = invocation_record(
                    &ev,
                    &arn,
                    &resolved,
                    "Success",
                    ev.attempts + 1,
                    &out.payload,
                    false,
                );
                if !send_to(queue, registry, dest, record).await {
                    queue.count(
                        "DestinationDeliveryFailures",
                        &ev.function,
                        ev.qualifier.as_deref(),
                        1.0,
                    );
                }
            }
            queue.finish(ev.id);
        }
        Ok(out) => {
            let attempts = ev.attempts + 1;
            if attempts > cfg.maximum_retry_attempts {
                let error = String::from_utf8_lossy(&out.payload).into_owned();
                fail(
                    queue,
                    registry,
                    &cfg,
                    &ev,
                    "RetriesExhausted",
                    attempts,
                    Some(&error),
                    Some((&resolved, &out.payload)),
                )
                .await;
            } else {
                let delay = settings.retry_base * attempts;
                queue.reschedule(ev.id, attempts, now_ms() + delay.as_millis() as i64);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn fail(
    queue: &AsyncQueue,
    registry: &Arc<Registry>,
    cfg: &EventInvokeSettings,
    ev: &StoredEvent,
    condition: &str,
    attempts: u32,
    error: Option<&str>,
    response: Option<(&crate::registry::Resolved, &Bytes)>,
) {
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
        if !send_to(queue, registry, dest, record).await {
            queue.count(
                "DestinationDeliveryFailures",
                &ev.function,
                ev.qualifier.as_deref(),
                1.0,
            );
        }
    }
    if let Some(dlq) = &cfg.dead_letter_target {
        if !send_raw(queue, registry, dlq, ev.payload.clone()).await {
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
    queue.dead_letter(ev, condition, attempts, error);
}

/// Lambda's invocation record for destinations.
#[allow(clippy::too_many_arguments)]
fn invocation_record(
    ev: &StoredEvent,
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

/// Whether the record was delivered.
async fn send_to(
    queue: &AsyncQueue,
    registry: &Arc<Registry>,
    target: &str,
    record: Value,
) -> bool {
    send_raw(queue, registry, target, Bytes::from(record.to_string())).await
}

/// Sends to a destination: a function ARN (or name) gets an asynchronous invocation,
/// a queue ARN (`arn:aws:sqs:…`) a message. Returns whether it was delivered.
async fn send_raw(
    queue: &AsyncQueue,
    registry: &Arc<Registry>,
    target: &str,
    payload: Bytes,
) -> bool {
    if let Some(rest) = target.strip_prefix("arn:aws:sqs:") {
        let name = queue
            .queues
            .name_from_arn(target)
            .or_else(|| rest.rsplit(':').next().map(str::to_string));
        let body = String::from_utf8_lossy(&payload).into_owned();
        match name {
            Some(name) => {
                if let Err(e) = queue
                    .queues
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
        Ok((name, qualifier)) if registry.snapshot(&name).is_some() => {
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

#[cfg(test)]
mod trace_column_tests {
    use super::*;

    #[test]
    fn an_events_database_from_before_trace_ids_gains_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL,
                    function TEXT NOT NULL, qualifier TEXT, payload BLOB NOT NULL,
                    received_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_ms INTEGER NOT NULL);
                INSERT INTO events (request_id, function, payload, received_ms, next_attempt_ms)
                    VALUES ('r1', 'f', x'7b7d', 1, 1);",
            )
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let (id, trace): (String, Option<String>) = conn
            .query_row("SELECT request_id, trace_id FROM events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((id.as_str(), trace), ("r1", None));
        // Opening again (the column is there now) changes nothing.
        drop(conn);
        let conn = open(&path).unwrap();
        conn.execute(
            "INSERT INTO events (request_id, function, payload, received_ms, next_attempt_ms, trace_id)
             VALUES ('r2', 'f', x'7b7d', 2, 2, 'Root=1-00000000-000000000000000000000000')",
            [],
        )
        .unwrap();
    }
}
