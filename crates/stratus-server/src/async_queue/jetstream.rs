//! The cluster event store: NATS JetStream (`--nats nats://…`).
//!
//! - **Stream** `STRATUS_EVENTS`: work-queue retention (a message is gone once acked),
//!   file storage, subjects `stratus.events.<function>` (one per function, the name
//!   escaped to a single subject token). `Nats-Msg-Id` is the request id, so a
//!   publish repeated within the 10-minute duplicate window is stored once.
//! - **Accept**: `publish` returns once the stream acknowledged the message, and only
//!   then does the Invoke API answer 202. A client that is not connected, or a stream
//!   that does not acknowledge within 5 s, is an error: the event was not accepted.
//! - **Deliver**: one durable pull consumer `stratus-delivery` with explicit acks,
//!   shared by every node on that NATS, so nodes split the work and a message a dead
//!   node held comes back to the others after `ack_wait` (30 s). Each node pulls only
//!   as many messages as it has free delivery slots; while a delivery runs it sends a
//!   progress ack every 10 s, so a function may run past `ack_wait` (up to 900 s)
//!   without the event being handed to a second node.
//! - **Settle**: success → ack; throttled → `nak` with a delay (no attempt used); a
//!   function error → the event is published again with its attempt count and the
//!   time it falls due (headers below; `Nats-Msg-Id` `{request id}.retry{n}`), then
//!   the original is acked; a message not yet due is `nak`ed with the time left;
//!   given up → the dead letter is kept in this node's `events.db`, destinations are
//!   notified, and the message is terminated (`term`).
//!
//! Message format (headers; the body is the event): `Stratus-Function`,
//! `Stratus-Qualifier` (optional), `Stratus-Request-Id`, `Stratus-Received-Ms`
//! (epoch ms of the first acceptance: the event's age), `Stratus-Attempts` (failed
//! attempts so far), `Stratus-Not-Before` (epoch ms, retries only),
//! `Stratus-Trace-Id` (optional).

use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{AckKind, Context, Message};
use async_nats::{Client, ConnectOptions, HeaderMap};
use parking_lot::Mutex;
use rusqlite::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::StreamExt as _;

use super::{sqlite, Delivery, Event, Outcome, QueueError};
use crate::logs::now_ms;

/// The stream every node shares.
pub(super) const STREAM: &str = "STRATUS_EVENTS";
/// Subjects of the stream: `stratus.events.<function>`.
const SUBJECTS: &str = "stratus.events.>";
const SUBJECT_PREFIX: &str = "stratus.events.";
/// The durable consumer every node pulls from.
pub(super) const CONSUMER: &str = "stratus-delivery";
/// Publishes with the same `Nats-Msg-Id` within this window are stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// A delivered message not acked (nor marked in progress) for this long goes to
/// another node.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// Progress acks while a delivery runs (well inside `ACK_WAIT`).
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Messages handed out and not yet acked, over every node: deliveries running and
/// retries waiting out their back-off. Past it the stream holds new events back
/// (they wait; none is lost).
const MAX_ACK_PENDING: i64 = 10_000;
/// How long a publish may wait for the stream's acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one pull waits for messages before asking again.
const PULL_EXPIRES: Duration = Duration::from_secs(2);
/// Room kept for the headers when checking an event against NATS's `max_payload`.
const HEADER_ROOM: usize = 512;
/// Longest wait of a throttled event between tries.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(2);

/// Header names of the message format (see the module docs).
mod hdr {
    pub(super) const FUNCTION: &str = "Stratus-Function";
    pub(super) const QUALIFIER: &str = "Stratus-Qualifier";
    pub(super) const REQUEST_ID: &str = "Stratus-Request-Id";
    pub(super) const RECEIVED_MS: &str = "Stratus-Received-Ms";
    pub(super) const ATTEMPTS: &str = "Stratus-Attempts";
    pub(super) const NOT_BEFORE: &str = "Stratus-Not-Before";
    pub(super) const TRACE_ID: &str = "Stratus-Trace-Id";
}

/// A connection to NATS and the stream. Cheap to clone.
#[derive(Clone)]
pub(super) struct JetStream {
    url: Arc<str>,
    client: Client,
    js: Context,
}

impl JetStream {
    /// Connects (failing clearly when NATS is not there at start) and creates the
    /// stream and the consumer when missing. Later disconnections are retried for
    /// ever in the background.
    pub(super) async fn connect(url: &str) -> Result<Self, QueueError> {
        let client = ConnectOptions::new()
            .name("stratus")
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            // Back within a second of NATS coming back.
            .reconnect_delay_callback(|n| Duration::from_millis((n as u64 * 100).min(1000)))
            .connect(url)
            .await
            .map_err(|e| QueueError::Connect {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let js = async_nats::jetstream::new(client.clone());
        let me = Self {
            url: Arc::from(url),
            client,
            js,
        };
        me.consumer().await?;
        let max = me.client.server_info().max_payload;
        if max < super::MAX_ASYNC_PAYLOAD + HEADER_ROOM {
            tracing::warn!(
                max_payload = max,
                "NATS takes messages of at most {max} bytes: asynchronous events near \
                 Lambda's 1 MB limit will be refused; set `max_payload: 2MB` in the \
                 nats-server configuration"
            );
        }
        Ok(me)
    }

    /// The stream's consumer, creating both when missing (a NATS whose store was
    /// wiped gets them again).
    async fn consumer(&self) -> Result<PullConsumer, QueueError> {
        let setup = |what: &str| {
            let (url, what) = (self.url.to_string(), what.to_string());
            move |e: &dyn std::fmt::Display| QueueError::Setup {
                url,
                what,
                reason: e.to_string(),
            }
        };
        let stream = self
            .js
            .get_or_create_stream(stream::Config {
                name: STREAM.into(),
                subjects: vec![SUBJECTS.into()],
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|e| setup(&format!("stream {STREAM}"))(&e))?;
        stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_deliver: -1,
                    max_ack_pending: MAX_ACK_PENDING,
                    filter_subject: SUBJECTS.into(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| setup(&format!("consumer {CONSUMER}"))(&e))
    }

    fn unavailable(&self, reason: impl Into<String>) -> QueueError {
        QueueError::Unavailable {
            url: self.url.to_string(),
            reason: reason.into(),
        }
    }

    /// Stores `ev` in the stream; `Ok` once the stream acknowledged it.
    /// `not_before` (epoch ms) holds a retry back until then.
    pub(super) async fn publish(
        &self,
        ev: &Event,
        not_before: Option<i64>,
    ) -> Result<(), QueueError> {
        if self.client.connection_state() != State::Connected {
            return Err(self.unavailable("not connected"));
        }
        let max = self.client.server_info().max_payload;
        if max > 0 && ev.payload.len() + HEADER_ROOM > max {
            return Err(self.unavailable(format!(
                "the event ({} bytes) is larger than NATS accepts (max_payload {max} bytes; \
                 set `max_payload: 2MB` in the nats-server configuration)",
                ev.payload.len()
            )));
        }
        let mut headers = HeaderMap::new();
        headers.insert(hdr::FUNCTION, ev.function.as_str());
        if let Some(q) = &ev.qualifier {
            headers.insert(hdr::QUALIFIER, q.as_str());
        }
        headers.insert(hdr::REQUEST_ID, ev.request_id.as_str());
        headers.insert(hdr::RECEIVED_MS, ev.received_ms.to_string().as_str());
        headers.insert(hdr::ATTEMPTS, ev.attempts.to_string().as_str());
        if let Some(t) = not_before {
            headers.insert(hdr::NOT_BEFORE, t.to_string().as_str());
        }
        if let Some(t) = &ev.trace_id {
            headers.insert(hdr::TRACE_ID, t.as_str());
        }
        let id = match ev.attempts {
            0 => ev.request_id.clone(),
            n => format!("{}.retry{n}", ev.request_id),
        };
        let publish = PublishMessage::build()
            .payload(ev.payload.clone())
            .headers(headers)
            .message_id(id);
        let sent = async {
            let ack = self
                .js
                .send_publish(subject(&ev.function), publish)
                .await
                .map_err(|e| e.to_string())?;
            ack.await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, sent).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.unavailable(e)),
            Err(_) => Err(self.unavailable(format!(
                "no acknowledgement within {} s",
                PUBLISH_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Events in the stream (waiting, being delivered, or waiting for a retry), of
    /// one function or of all.
    pub(super) async fn pending(&self, function: Option<&str>) -> Result<u64, QueueError> {
        let read = |e: &dyn std::fmt::Display| QueueError::Read {
            url: self.url.to_string(),
            reason: e.to_string(),
        };
        if self.client.connection_state() != State::Connected {
            return Err(read(&"not connected"));
        }
        let mut stream = self.js.get_stream(STREAM).await.map_err(|e| read(&e))?;
        match function {
            None => Ok(stream.info().await.map_err(|e| read(&e))?.state.messages),
            Some(f) => {
                let filter = subject(f);
                let mut subjects = stream
                    .info_with_subjects(&filter)
                    .await
                    .map_err(|e| read(&e))?;
                let mut n = 0;
                while let Some(item) = subjects.next().await {
                    let (s, count) = item.map_err(|e| read(&e))?;
                    if s == filter {
                        n += count as u64;
                    }
                }
                Ok(n)
            }
        }
    }

    /// Moves events left in `events.db` (accepted while this node ran without
    /// `--nats`) into the stream, each removed from the file once the stream has it.
    pub(super) async fn adopt_local_events(
        &self,
        db: &Mutex<Connection>,
    ) -> Result<(), QueueError> {
        let events = tokio::task::block_in_place(|| sqlite::all_events(&db.lock()))?;
        if events.is_empty() {
            return Ok(());
        }
        let n = events.len();
        for (id, ev) in events {
            self.publish(&ev, None).await?;
            tokio::task::block_in_place(|| sqlite::delete_event(&db.lock(), id))?;
        }
        tracing::info!(
            events = n,
            stream = STREAM,
            "moved the events left in events.db to the event stream"
        );
        Ok(())
    }
}

/// `stratus.events.<function>`, the name as one subject token: Lambda's names
/// (`[A-Za-z0-9_-]`) as they are, any other byte as `%XX`.
fn subject(function: &str) -> String {
    let mut s = String::with_capacity(SUBJECT_PREFIX.len() + function.len());
    s.push_str(SUBJECT_PREFIX);
    for b in function.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The event a message carries, and when it falls due (epoch ms), if set.
fn decode(msg: &Message) -> Result<(Event, Option<i64>), String> {
    let headers = msg.headers.as_ref().ok_or("no headers")?;
    let text = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
    let number = |name: &str| -> Result<Option<i64>, String> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .parse()
                .map(Some)
                .map_err(|_| format!("header {name} is not a number: {:?}", v.as_str())),
        }
    };
    let function = text(hdr::FUNCTION).ok_or_else(|| format!("no {} header", hdr::FUNCTION))?;
    let request_id =
        text(hdr::REQUEST_ID).ok_or_else(|| format!("no {} header", hdr::REQUEST_ID))?;
    let ev = Event {
        request_id,
        function,
        qualifier: text(hdr::QUALIFIER),
        payload: msg.payload.clone(),
        received_ms: number(hdr::RECEIVED_MS)?.unwrap_or_else(now_ms),
        attempts: number(hdr::ATTEMPTS)?
            .unwrap_or(0)
            .clamp(0, u32::MAX as i64) as u32,
        trace_id: text(hdr::TRACE_ID),
    };
    Ok((ev, number(hdr::NOT_BEFORE)?))
}

/// Pulls messages and delivers them, at most `max_in_flight` at once on this node.
pub(super) async fn run(js: JetStream, delivery: Delivery) {
    let slots = Arc::new(Semaphore::new(delivery.settings.max_in_flight.max(1)));
    let mut consumer: Option<PullConsumer> = None;
    let mut failing = false;
    loop {
        if delivery.scheduler.is_shut_down() {
            return;
        }
        let Ok(first) = slots.clone().acquire_owned().await else {
            return;
        };
        if js.client.connection_state() != State::Connected {
            // The client reconnects by itself; nothing to pull meanwhile.
            drop(first);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let c = match &consumer {
            Some(c) => c.clone(),
            None => match js.consumer().await {
                Ok(c) => {
                    if failing {
                        tracing::info!(stream = STREAM, "event stream reachable again");
                        failing = false;
                    }
                    consumer = Some(c.clone());
                    c
                }
                Err(e) => {
                    if !failing {
                        tracing::error!(error = %e, "cannot read the event stream; retrying");
                        failing = true;
                    }
                    drop(first);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let want = slots.available_permits() + 1;
        let mut batch = match c
            .batch()
            .max_messages(want)
            .expires(PULL_EXPIRES)
            .messages()
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot pull from the event stream");
                consumer = None;
                drop(first);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut first = Some(first);
        loop {
            // A pull answers by its expiry; the margin covers a connection that died
            // without the client noticing yet.
            let next = tokio::time::timeout(PULL_EXPIRES + Duration::from_secs(5), batch.next());
            let msg = match next.await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "pull from the event stream ended");
                    consumer = None;
                    break;
                }
                Ok(None) | Err(_) => break,
            };
            let permit = match first.take() {
                Some(p) => p,
                None => match slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            tokio::spawn(handle(js.clone(), delivery.clone(), msg, permit));
        }
    }
}

/// Delivers one message and settles it.
async fn handle(js: JetStream, delivery: Delivery, msg: Message, permit: OwnedSemaphorePermit) {
    let _permit = permit;
    let (ev, not_before) = match decode(&msg) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, subject = %msg.subject, "not a Stratus event; dropped from the stream");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    if let Some(t) = not_before {
        let wait = t - now_ms();
        if wait > 0 {
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_millis(wait as u64))))
                .await;
            return;
        }
    }
    let progress = async {
        loop {
            tokio::time::sleep(PROGRESS_EVERY).await;
            let _ = msg.ack_with(AckKind::Progress).await;
        }
    };
    let outcome = tokio::select! {
        o = delivery.deliver(&ev) => o,
        _ = progress => return,
    };
    settle(&js, &delivery, &msg, &ev, outcome).await;
}

async fn settle(js: &JetStream, delivery: &Delivery, msg: &Message, ev: &Event, outcome: Outcome) {
    let r = match outcome {
        // Back to the stream for another node (or this one's next start); the delay
        // keeps this node's last pulls from taking it straight back while it stops.
        Outcome::Interrupted => {
            msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await
        }
        Outcome::Delivered => msg.double_ack().await,
        Outcome::Deferred(base) => {
            // Waits longer the more often it was throttled (the delivery count also
            // counts retries: at most the cap).
            let tries = msg.info().map(|i| i.delivered).unwrap_or(1).clamp(1, 10) as u32;
            let wait = (base * tries).min(MAX_THROTTLE_WAIT);
            msg.ack_with(AckKind::Nak(Some(wait))).await
        }
        Outcome::Retry { attempts, after } => {
            let mut next = ev.clone();
            next.attempts = attempts;
            let due = now_ms() + after.as_millis() as i64;
            match js.publish(&next, Some(due)).await {
                Ok(()) => msg.double_ack().await,
                Err(e) => {
                    // The same message comes back after the back-off; this attempt
                    // is not counted (at worst one more try than configured).
                    tracing::warn!(error = %e, request_id = %ev.request_id, "cannot record a retry; the event is tried again after the back-off");
                    msg.ack_with(AckKind::Nak(Some(after))).await
                }
            }
        }
        Outcome::DeadLettered {
            condition,
            attempts,
            error,
        } => {
            let db = delivery.queue.inner.db.clone();
            let kept = tokio::task::block_in_place(|| {
                sqlite::insert_dead_letter(&db.lock(), ev, condition, attempts, error.as_deref())
            });
            if let Err(e) = kept {
                tracing::error!(error = %e, request_id = %ev.request_id, "cannot keep a dead letter");
            }
            msg.double_ack_with(AckKind::Term).await
        }
    };
    if let Err(e) = r {
        // Not settled: the stream hands the event out again after `ack_wait`
        // (at-least-once).
        tracing::warn!(error = %e, request_id = %ev.request_id, "cannot settle an event with the stream");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_are_one_subject_token() {
        assert_eq!(subject("my-fn_1"), "stratus.events.my-fn_1");
        // Nothing a name could hold makes a wildcard or a second token.
        assert_eq!(subject("a.b*>c d"), "stratus.events.a%2Eb%2A%3Ec%20d");
        assert_eq!(subject("ü"), "stratus.events.%C3%BC");
    }
}
