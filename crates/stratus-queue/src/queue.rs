//! The queue core: [`Queues`] implements SQS's semantics on [`crate::store`] and is
//! the library API the rest of Stratus uses (the SQS event-source poller included).
//! It knows nothing of HTTP.
//!
//! - **Visibility**: each message row has `visible_ms`, the moment it can next be
//!   received: sent time plus delay, then receive time plus visibility timeout.
//!   A message is *delayed* (never received, not yet visible), *in flight*
//!   (received, not yet visible again) or *visible*.
//! - **Receipt handles** name the queue, the message row and a random token that
//!   changes on every receive. `DeleteMessage` with an older handle of a message
//!   that has since been received again succeeds without deleting (SQS: "the
//!   request will succeed, but the message might not be deleted"); with the latest
//!   handle it deletes, even after the visibility timeout ran out.
//! - **Retention**: a message older than the queue's `MessageRetentionPeriod`
//!   (measured from its first `SentTimestamp`, also in a dead-letter queue) is
//!   deleted before any read of its queue, and at start-up.
//! - **Redrive**: a receive that meets a message already received
//!   `maxReceiveCount` times moves it to the dead-letter queue (same message id,
//!   body and attributes, receive count reset) instead of returning it.
//! - **Long polling** waits on a per-queue [`Notify`] that every send, visibility
//!   change and redrive into the queue wakes, and otherwise sleeps exactly until
//!   the next delayed or in-flight message becomes visible.
//! - **FIFO** queues (`.fifo`): messages of one group are received in order and a
//!   group with a message in flight yields nothing else; `MessageDeduplicationId`
//!   (or a SHA-256 of the body with `ContentBasedDeduplication`) suppresses a
//!   duplicate sent within 5 minutes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::attributes::{
    self, QueueConfig, RedrivePolicy, MAX_DELAY_SECONDS, MAX_VISIBILITY_TIMEOUT, MAX_WAIT_SECONDS,
};
use crate::clock::{Clock, SystemClock};
use crate::error::QueueError;
use crate::message::{
    self, decode_attributes, encode_attributes, md5_hex, md5_of_attributes, AttributeValue,
    MessageAttributes,
};
use crate::store::{Store, StoreError};

/// Most messages one receive returns.
pub const MAX_RECEIVE_MESSAGES: u32 = 10;
/// How long a FIFO deduplication id suppresses duplicates.
pub const DEDUPLICATION_WINDOW: Duration = Duration::from_secs(300);
/// Most tags on a queue.
pub const MAX_TAGS: usize = 50;

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendMessage {
    /// The body (1 character to 1 MiB, SQS's allowed characters).
    pub body: String,
    /// Message attributes (at most 10).
    pub attributes: MessageAttributes,
    /// Message system attributes: only `AWSTraceHeader` exists.
    pub system_attributes: MessageAttributes,
    /// Seconds before it can be received (0–900); `None` takes the queue's
    /// `DelaySeconds`. Not allowed on FIFO queues.
    pub delay_seconds: Option<u32>,
    /// FIFO: the ordering group (required). Standard: kept and returned.
    pub group_id: Option<String>,
    /// FIFO: the deduplication id.
    pub deduplication_id: Option<String>,
}

impl SendMessage {
    /// A message with just a body.
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }
}

/// The answer to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message id (a UUID). For a FIFO duplicate, the id of the original.
    pub message_id: String,
    /// Hex MD5 of the body.
    pub md5_of_body: String,
    /// `MD5OfMessageAttributes`, when there are attributes.
    pub md5_of_message_attributes: Option<String>,
    /// `MD5OfMessageSystemAttributes`, when there are system attributes.
    pub md5_of_message_system_attributes: Option<String>,
    /// FIFO: the message's sequence number.
    pub sequence_number: Option<String>,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The message id given at send.
    pub message_id: String,
    /// The handle for deleting it or changing its visibility; new on every receive.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// Hex MD5 of the body.
    pub md5_of_body: String,
    /// Every system attribute of the message: `SenderId`, `SentTimestamp`,
    /// `ApproximateReceiveCount`, `ApproximateFirstReceiveTimestamp`, and when
    /// they apply `MessageGroupId`, `MessageDeduplicationId`, `SequenceNumber`,
    /// `AWSTraceHeader`, `DeadLetterQueueSourceArn`.
    pub attributes: BTreeMap<String, String>,
    /// Every message attribute.
    pub message_attributes: MessageAttributes,
    /// `MD5OfMessageAttributes` over all of them, when there are any.
    pub md5_of_message_attributes: Option<String>,
    /// Times received, this one included.
    pub receive_count: u32,
    /// Epoch ms of the send.
    pub sent_timestamp: i64,
    /// Epoch ms of the first receive.
    pub first_receive_timestamp: i64,
}

/// Message counts of a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Can be received now (`ApproximateNumberOfMessages`).
    pub visible: u64,
    /// Received and not yet deleted or visible again
    /// (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: u64,
    /// Sent with a delay that has not passed (`ApproximateNumberOfMessagesDelayed`).
    pub delayed: u64,
}

/// Where queues live: the endpoint of their URLs and the region and account of
/// their ARNs.
#[derive(Debug, Clone)]
struct Identity {
    endpoint: String,
    region: String,
    account: String,
}

impl Identity {
    fn url(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.endpoint, self.account)
    }

    fn arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account)
    }

    fn name_from_arn(&self, arn: &str) -> Option<String> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            ["arn", _, "sqs", region, account, name]
                if *region == self.region && *account == self.account && !name.is_empty() =>
            {
                Some(name.to_string())
            }
            _ => None,
        }
    }

    fn name_from_url(&self, url: &str) -> Result<String, QueueError> {
        let invalid = || QueueError::InvalidAddress {
            url: url.to_string(),
        };
        let without_query = url.split(['?', '#']).next().unwrap_or_default();
        let path = match without_query.find("://") {
            Some(i) => {
                let rest = &without_query[i + 3..];
                rest.find('/').map(|j| &rest[j..]).unwrap_or_default()
            }
            None => without_query,
        };
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let [.., account, name] = segments.as_slice() else {
            return Err(invalid());
        };
        if *account != self.account {
            return Err(QueueError::QueueDoesNotExist {
                name: format!(
                    "{name} (account {account}; this server's queues are in account {})",
                    self.account
                ),
            });
        }
        Ok(name.to_string())
    }
}

/// A queue as loaded inside an operation.
#[derive(Debug, Clone)]
struct QueueRow {
    id: i64,
    name: String,
    config: QueueConfig,
    created_ms: i64,
    modified_ms: i64,
}

fn load_queue(c: &Connection, name: &str) -> Result<QueueRow, QueueError> {
    load_queue_opt(c, name)?.ok_or_else(|| QueueError::no_queue(name))
}

fn load_queue_opt(c: &Connection, name: &str) -> Result<Option<QueueRow>, QueueError> {
    let row = c
        .prepare_cached("SELECT id, config, created_ms, modified_ms FROM queues WHERE name = ?1")?
        .query_row([name], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    let Some((id, config, created_ms, modified_ms)) = row else {
        return Ok(None);
    };
    let config = serde_json::from_str(&config).map_err(|e| {
        tracing::error!(queue = name, error = %e, "unreadable queue configuration");
        QueueError::Store(StoreError::Corrupt(format!(
            "the stored configuration of queue {name} is unreadable: {e}"
        )))
    })?;
    Ok(Some(QueueRow {
        id,
        name: name.to_string(),
        config,
        created_ms,
        modified_ms,
    }))
}

fn config_json(config: &QueueConfig) -> Result<String, QueueError> {
    serde_json::to_string(config).map_err(|e| {
        QueueError::Store(StoreError::Corrupt(format!(
            "cannot encode a queue configuration: {e}"
        )))
    })
}

/// Deletes the queue's messages that are past its retention period.
fn expire(c: &Connection, q: &QueueRow, now: i64) -> Result<(), QueueError> {
    let cutoff = now - i64::from(q.config.retention_seconds) * 1000;
    c.prepare_cached("DELETE FROM messages WHERE queue_id = ?1 AND sent_ms <= ?2")?
        .execute(params![q.id, cutoff])?;
    Ok(())
}

/// A message or request id (UUID v4).
pub(crate) fn new_uuid() -> String {
    stratus_rules::uuid_v4()
}

/// A receipt handle: base64 of `v1:{queue row}:{message row}:{token}`.
fn make_handle(queue_id: i64, row_id: i64, token: &str) -> String {
    B64.encode(format!("v1:{queue_id}:{row_id}:{token}"))
}

fn parse_handle(handle: &str) -> Result<(i64, i64, String), QueueError> {
    let invalid = || QueueError::ReceiptHandleIsInvalid {
        handle: handle.to_string(),
    };
    let bytes = B64.decode(handle.trim()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split(':');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("v1"), Some(q), Some(m), Some(token), None) if token.len() == 32 => Ok((
            q.parse().map_err(|_| invalid())?,
            m.parse().map_err(|_| invalid())?,
            token.to_string(),
        )),
        _ => Err(invalid()),
    }
}

/// FIFO ids: 1–128 characters, alphanumerics and punctuation.
fn validate_fifo_id(name: &str, value: &str) -> Result<(), QueueError> {
    if value.is_empty() || value.len() > 128 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(QueueError::param(
            name,
            value,
            "Must be 1 to 128 characters of alphanumerics and punctuation.",
        ));
    }
    Ok(())
}

/// Checks what can be checked without the queue's configuration.
fn validate_send(m: &SendMessage) -> Result<(), QueueError> {
    message::validate_body(&m.body)?;
    message::validate_attributes(&m.attributes)?;
    for (name, attr) in &m.system_attributes {
        if name != "AWSTraceHeader" {
            return Err(QueueError::InvalidParameters {
                reason: format!("Message system attribute name '{name}' is invalid; the only one is AWSTraceHeader."),
            });
        }
        if attr.data_type != "String"
            || !matches!(&attr.value, AttributeValue::String(s) if !s.is_empty())
        {
            return Err(QueueError::InvalidParameters {
                reason: "Message system attribute AWSTraceHeader must be a non-empty String."
                    .into(),
            });
        }
    }
    if let Some(d) = m.delay_seconds {
        if d > MAX_DELAY_SECONDS {
            return Err(QueueError::param(
                "DelaySeconds",
                d,
                "must be an integer from 0 to 900.",
            ));
        }
    }
    if let Some(g) = &m.group_id {
        validate_fifo_id("MessageGroupId", g)?;
    }
    if let Some(d) = &m.deduplication_id {
        validate_fifo_id("MessageDeduplicationId", d)?;
    }
    Ok(())
}

/// Inserts one validated message into `q` (FIFO: unless it is a duplicate).
fn insert_message(
    c: &Connection,
    q: &QueueRow,
    m: &SendMessage,
    now: i64,
) -> Result<Sent, QueueError> {
    let size = message::message_size(&m.body, &m.attributes);
    if size > q.config.max_message_size as usize {
        return Err(QueueError::InvalidParameters {
            reason: format!(
                "Message must be shorter than {} bytes (this one is {size}, counting attributes).",
                q.config.max_message_size
            ),
        });
    }
    let md5_of_body = md5_hex(m.body.as_bytes());
    let md5_of_message_attributes = md5_of_attributes(&m.attributes);
    let md5_of_message_system_attributes = md5_of_attributes(&m.system_attributes);
    let mut sent = Sent {
        message_id: new_uuid(),
        md5_of_body,
        md5_of_message_attributes,
        md5_of_message_system_attributes,
        sequence_number: None,
    };
    let mut dedup_id = None;
    let delay = if q.config.fifo {
        let Some(_) = &m.group_id else {
            return Err(QueueError::MissingParameter {
                name: "MessageGroupId".into(),
            });
        };
        if m.delay_seconds.is_some_and(|d| d > 0) {
            return Err(QueueError::param(
                "DelaySeconds",
                m.delay_seconds.unwrap_or_default(),
                "The request include parameter that is not valid for this queue type: FIFO queues take DelaySeconds only as a queue attribute.",
            ));
        }
        let id = match (&m.deduplication_id, q.config.content_based_deduplication) {
            (Some(id), _) => id.clone(),
            (None, true) => hex::encode(Sha256::digest(m.body.as_bytes())),
            (None, false) => {
                return Err(QueueError::InvalidParameters {
                    reason: "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly.".into(),
                })
            }
        };
        c.prepare_cached("DELETE FROM dedup WHERE queue_id = ?1 AND expires_ms <= ?2")?
            .execute(params![q.id, now])?;
        let original: Option<(String, i64)> = c
            .prepare_cached(
                "SELECT message_id, sequence FROM dedup WHERE queue_id = ?1 AND dedup_id = ?2",
            )?
            .query_row(params![q.id, id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((message_id, sequence)) = original {
            sent.message_id = message_id;
            sent.sequence_number = Some(sequence_number(sequence));
            return Ok(sent);
        }
        dedup_id = Some(id);
        q.config.delay_seconds
    } else {
        if m.deduplication_id.is_some() {
            return Err(QueueError::param(
                "MessageDeduplicationId",
                m.deduplication_id.as_deref().unwrap_or_default(),
                "The request include parameter that is not valid for this queue type: only FIFO queues deduplicate.",
            ));
        }
        m.delay_seconds.unwrap_or(q.config.delay_seconds)
    };
    c.prepare_cached(
        "INSERT INTO messages (queue_id, message_id, body, attributes, system_attributes, sent_ms, visible_ms, group_id, dedup_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        q.id,
        sent.message_id,
        m.body,
        encode_attributes(&m.attributes),
        encode_attributes(&m.system_attributes),
        now,
        now + i64::from(delay) * 1000,
        m.group_id,
        dedup_id,
    ])?;
    if let Some(id) = dedup_id {
        let sequence = c.last_insert_rowid();
        c.prepare_cached(
            "INSERT OR REPLACE INTO dedup (queue_id, dedup_id, message_id, sequence, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            q.id,
            id,
            sent.message_id,
            sequence,
            now + DEDUPLICATION_WINDOW.as_millis() as i64
        ])?;
        sent.sequence_number = Some(sequence_number(sequence));
    }
    Ok(sent)
}

fn sequence_number(row_id: i64) -> String {
    format!("{row_id:020}")
}

/// A message row as a receive reads it.
#[derive(Debug)]
struct MessageRow {
    id: i64,
    message_id: String,
    body: String,
    attributes: Option<String>,
    system_attributes: Option<String>,
    sent_ms: i64,
    receive_count: u32,
    first_receive_ms: Option<i64>,
    group_id: Option<String>,
    dedup_id: Option<String>,
    dead_letter_source: Option<String>,
}

const MESSAGE_COLUMNS: &str = "id, message_id, body, attributes, system_attributes, sent_ms, receive_count, first_receive_ms, group_id, dedup_id, dead_letter_source";

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        message_id: r.get(1)?,
        body: r.get(2)?,
        attributes: r.get(3)?,
        system_attributes: r.get(4)?,
        sent_ms: r.get(5)?,
        receive_count: r.get::<_, i64>(6)? as u32,
        first_receive_ms: r.get(7)?,
        group_id: r.get(8)?,
        dedup_id: r.get(9)?,
        dead_letter_source: r.get(10)?,
    })
}

/// The outcome of one receive attempt.
#[derive(Debug, Default)]
struct Attempt {
    messages: Vec<Received>,
    /// The queue's `ReceiveMessageWaitTimeSeconds`.
    wait_seconds: u32,
    /// When the next delayed or in-flight message becomes visible.
    next_visible_ms: Option<i64>,
    /// Dead-letter queues that messages were moved to.
    moved_to: Vec<String>,
}

/// One receive attempt, inside the writer's transaction.
struct ReceiveJob<'a> {
    c: &'a Connection,
    identity: &'a Identity,
    q: &'a QueueRow,
    now: i64,
    visibility: u32,
    /// The dead-letter queue, looked up once when first needed.
    dlq: Option<Option<QueueRow>>,
    attempt: Attempt,
}

impl ReceiveJob<'_> {
    /// Whether the message has used up its receives: then it is moved (when the
    /// dead-letter queue exists) and must not be returned.
    fn redrive(&mut self, row_id: i64, receive_count: u32) -> Result<bool, QueueError> {
        let q = self.q;
        let Some(policy) = &q.config.redrive else {
            return Ok(false);
        };
        if receive_count < policy.max_receive_count {
            return Ok(false);
        }
        if self.dlq.is_none() {
            let dlq = match self.identity.name_from_arn(&policy.dead_letter_target_arn) {
                Some(name) => load_queue_opt(self.c, &name)?,
                None => None,
            };
            if dlq.is_none() {
                tracing::warn!(
                    queue = %q.name,
                    target = %policy.dead_letter_target_arn,
                    "the dead-letter queue does not exist; the message stays in its queue"
                );
            }
            self.dlq = Some(dlq);
        }
        let Some(Some(dlq)) = &self.dlq else {
            return Ok(false);
        };
        self.c
            .prepare_cached(
                "UPDATE messages SET queue_id = ?2, receive_count = 0, first_receive_ms = NULL, last_receive_ms = NULL,
                 receipt_token = NULL, visible_ms = ?3, dead_letter_source = ?4 WHERE id = ?1",
            )?
            .execute(params![row_id, dlq.id, self.now, self.identity.arn(&q.name)])?;
        if !self.attempt.moved_to.contains(&dlq.name) {
            self.attempt.moved_to.push(dlq.name.clone());
        }
        Ok(true)
    }

    /// Marks a message received and adds it to the answer.
    fn take(&mut self, row: MessageRow) -> Result<(), QueueError> {
        let token = hex::encode(rand::random::<[u8; 16]>());
        let count = row.receive_count + 1;
        let first = row.first_receive_ms.unwrap_or(self.now);
        self.c
            .prepare_cached(
                "UPDATE messages SET receive_count = ?2, first_receive_ms = ?3, last_receive_ms = ?4,
                 visible_ms = ?5, receipt_token = ?6 WHERE id = ?1",
            )?
            .execute(params![
                row.id,
                count,
                first,
                self.now,
                self.now + i64::from(self.visibility) * 1000,
                token
            ])?;
        let mut attributes = BTreeMap::from([
            ("SenderId".to_string(), self.identity.account.clone()),
            ("SentTimestamp".to_string(), row.sent_ms.to_string()),
            ("ApproximateReceiveCount".to_string(), count.to_string()),
            (
                "ApproximateFirstReceiveTimestamp".to_string(),
                first.to_string(),
            ),
        ]);
        if let Some(g) = row.group_id {
            attributes.insert("MessageGroupId".into(), g);
        }
        if let Some(d) = row.dedup_id {
            attributes.insert("MessageDeduplicationId".into(), d);
            attributes.insert("SequenceNumber".into(), sequence_number(row.id));
        }
        if let Some(source) = row.dead_letter_source {
            attributes.insert("DeadLetterQueueSourceArn".into(), source);
        }
        for (name, attr) in decode_attributes(row.system_attributes.as_deref()) {
            if let AttributeValue::String(v) = attr.value {
                attributes.insert(name, v);
            }
        }
        let message_attributes = decode_attributes(row.attributes.as_deref());
        self.attempt.messages.push(Received {
            message_id: row.message_id,
            receipt_handle: make_handle(self.q.id, row.id, &token),
            md5_of_body: md5_hex(row.body.as_bytes()),
            body: row.body,
            attributes,
            md5_of_message_attributes: md5_of_attributes(&message_attributes),
            message_attributes,
            receive_count: count,
            sent_timestamp: row.sent_ms,
            first_receive_timestamp: first,
        });
        Ok(())
    }

    fn read_row(&self, id: i64) -> Result<MessageRow, QueueError> {
        Ok(self
            .c
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
            ))?
            .query_row([id], message_row)?)
    }

    /// Standard queue: visible messages, earliest visible first.
    fn standard(&mut self, max: usize) -> Result<(), QueueError> {
        let mut seen = HashSet::new();
        loop {
            let limit = (max - self.attempt.messages.len() + seen.len()) as i64;
            let rows: Vec<MessageRow> = self
                .c
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE queue_id = ?1 AND visible_ms <= ?2
                     ORDER BY visible_ms, id LIMIT ?3"
                ))?
                .query_map(params![self.q.id, self.now, limit], message_row)?
                .collect::<Result<_, _>>()?;
            let mut progressed = false;
            for row in rows {
                if !seen.insert(row.id) {
                    continue;
                }
                progressed = true;
                if self.redrive(row.id, row.receive_count)? {
                    continue;
                }
                self.take(row)?;
                if self.attempt.messages.len() >= max {
                    return Ok(());
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// FIFO queue: in order within each group; a group whose oldest message is in
    /// flight (or delayed) yields nothing.
    fn fifo(&mut self, max: usize) -> Result<(), QueueError> {
        let heads: Vec<(i64, Option<String>, i64, u32)> = self
            .c
            .prepare_cached(
                "SELECT id, group_id, visible_ms, receive_count FROM messages WHERE queue_id = ?1 ORDER BY id",
            )?
            .query_map([self.q.id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u32))
            })?
            .collect::<Result<_, _>>()?;
        let mut blocked: HashSet<Option<String>> = HashSet::new();
        for (id, group, visible_ms, receive_count) in heads {
            if blocked.contains(&group) {
                continue;
            }
            if visible_ms > self.now {
                blocked.insert(group);
                continue;
            }
            if self.redrive(id, receive_count)? {
                continue;
            }
            let row = self.read_row(id)?;
            self.take(row)?;
            if self.attempt.messages.len() >= max {
                break;
            }
        }
        Ok(())
    }
}

/// Queues with SQS semantics, stored in `queues.db`. Cheap to share (`Arc`).
pub struct Queues {
    store: Store,
    identity: Arc<Identity>,
    clock: Arc<dyn Clock>,
    /// Long-poll wake-ups, per queue name.
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Queues {
    /// Opens (creating) `queues.db` in `dir`. Queue URLs are
    /// `{endpoint}/{account}/{name}` and ARNs `arn:aws:sqs:{region}:{account}:{name}`.
    pub fn open(
        dir: &Path,
        endpoint: &str,
        region: &str,
        account: &str,
    ) -> Result<Arc<Self>, QueueError> {
        Self::open_with_clock(dir, endpoint, region, account, Arc::new(SystemClock))
    }

    /// [`Queues::open`] with another clock (tests move time with
    /// [`crate::ManualClock`]).
    pub fn open_with_clock(
        dir: &Path,
        endpoint: &str,
        region: &str,
        account: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, QueueError> {
        let store = Store::open(dir, clock.now_ms())?;
        Ok(Arc::new(Self {
            store,
            identity: Arc::new(Identity {
                endpoint: endpoint.trim_end_matches('/').to_string(),
                region: region.to_string(),
                account: account.to_string(),
            }),
            clock,
            waiters: Mutex::new(HashMap::new()),
        }))
    }

    /// The URL of a queue.
    pub fn url(&self, name: &str) -> String {
        self.identity.url(name)
    }

    /// The ARN of a queue.
    pub fn arn(&self, name: &str) -> String {
        self.identity.arn(name)
    }

    /// The queue name of an ARN of this server's region and account.
    pub fn name_from_arn(&self, arn: &str) -> Option<String> {
        self.identity.name_from_arn(arn)
    }

    /// The queue name of a queue URL: any URL whose path ends in
    /// `/{account}/{name}` (the host is not checked; clients reach us by many).
    pub fn name_from_url(&self, url: &str) -> Result<String, QueueError> {
        self.identity.name_from_url(url)
    }

    /// The account id of this server's queues.
    pub fn account(&self) -> &str {
        &self.identity.account
    }

    fn waiter(&self, queue: &str) -> Arc<Notify> {
        self.waiters
            .lock()
            .entry(queue.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    /// Wakes the long polls of a queue (they look again).
    fn wake(&self, queue: &str) {
        if let Some(n) = self.waiters.lock().get(queue) {
            n.notify_waiters();
        }
    }

    /// Creates a queue, or returns the URL of an existing one whose attributes
    /// match those given (else [`QueueError::QueueNameExists`]).
    pub async fn create_queue(
        &self,
        name: &str,
        attributes: &HashMap<String, String>,
        tags: &HashMap<String, String>,
    ) -> Result<String, QueueError> {
        let config = QueueConfig::for_create(attributes)?;
        attributes::validate_queue_name(name, config.fifo)?;
        validate_tags(tags)?;
        let tags_json = serde_json::to_string(tags).unwrap_or_else(|_| "{}".into());
        let (identity, clock, owned) =
            (self.identity.clone(), self.clock.clone(), name.to_string());
        let keys: Vec<String> = attributes.keys().cloned().collect();
        self.store
            .run(move |c| {
                if let Some(existing) = load_queue_opt(c, &owned)? {
                    let mut keys = keys;
                    keys.push("FifoQueue".into());
                    if let Some(k) = keys
                        .into_iter()
                        .find(|k| existing.config.get(k) != config.get(k))
                    {
                        return Err(QueueError::QueueNameExists {
                            name: owned,
                            attribute: k,
                        });
                    }
                    return Ok(());
                }
                if let Some(policy) = &config.redrive {
                    check_redrive_target(c, &identity, &owned, config.fifo, policy)?;
                }
                let now = clock.now_ms();
                c.execute(
                    "INSERT INTO queues (name, config, tags, created_ms, modified_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
                    params![owned, config_json(&config)?, tags_json, now],
                )?;
                Ok(())
            })
            .await?;
        Ok(self.url(name))
    }

    /// Deletes a queue and its messages.
    pub async fn delete_queue(&self, name: &str) -> Result<(), QueueError> {
        let owned = name.to_string();
        self.store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                c.execute("DELETE FROM messages WHERE queue_id = ?1", [q.id])?;
                c.execute("DELETE FROM dedup WHERE queue_id = ?1", [q.id])?;
                c.execute("DELETE FROM queues WHERE id = ?1", [q.id])?;
                Ok::<_, QueueError>(())
            })
            .await?;
        if let Some(n) = self.waiters.lock().remove(name) {
            n.notify_waiters();
        }
        Ok(())
    }

    /// Whether a queue exists.
    pub async fn exists(&self, name: &str) -> Result<bool, QueueError> {
        let owned = name.to_string();
        self.store
            .run(move |c| Ok::<_, QueueError>(load_queue_opt(c, &owned)?.is_some()))
            .await
    }

    /// Names of the queues whose names start with `prefix`, sorted.
    pub async fn list_queues(&self, prefix: Option<&str>) -> Result<Vec<String>, QueueError> {
        let prefix = prefix.unwrap_or_default().to_string();
        self.store
            .run(move |c| {
                let names: Vec<String> = c
                    .prepare_cached("SELECT name FROM queues WHERE name >= ?1 ORDER BY name")?
                    .query_map([&prefix], |r| r.get::<_, String>(0))?
                    .collect::<Result<_, _>>()?;
                Ok::<_, QueueError>(
                    names
                        .into_iter()
                        .take_while(|n| n.starts_with(&prefix))
                        .collect(),
                )
            })
            .await
    }

    /// Names of the queues whose redrive policy targets `name`, sorted.
    pub async fn dead_letter_sources(&self, name: &str) -> Result<Vec<String>, QueueError> {
        let (owned, identity) = (name.to_string(), self.identity.clone());
        self.store
            .run(move |c| {
                load_queue(c, &owned)?;
                let arn = identity.arn(&owned);
                let rows: Vec<(String, String)> = c
                    .prepare_cached("SELECT name, config FROM queues ORDER BY name")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                Ok::<_, QueueError>(
                    rows.into_iter()
                        .filter(|(_, config)| {
                            serde_json::from_str::<QueueConfig>(config)
                                .ok()
                                .and_then(|c| c.redrive)
                                .is_some_and(|r| r.dead_letter_target_arn == arn)
                        })
                        .map(|(n, _)| n)
                        .collect(),
                )
            })
            .await
    }

    /// Queue attributes by name (`All` for every one). Unknown names are
    /// [`QueueError::InvalidAttributeName`]; names the queue does not have (a
    /// redrive policy it has none of) are left out.
    pub async fn get_attributes(
        &self,
        name: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, String>, QueueError> {
        if let Some(bad) = names.iter().find(|n| !attributes::is_known(n)) {
            return Err(QueueError::InvalidAttributeName { name: bad.clone() });
        }
        let all = names.iter().any(|n| n == "All");
        let names = names.to_vec();
        let (owned, identity, clock) =
            (name.to_string(), self.identity.clone(), self.clock.clone());
        self.store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                let now = clock.now_ms();
                let depth = depth_of(c, &q, now)?;
                let mut out = if all { q.config.all() } else { BTreeMap::new() };
                let computed = |n: &str| -> Option<String> {
                    Some(match n {
                        "ApproximateNumberOfMessages" => depth.visible.to_string(),
                        "ApproximateNumberOfMessagesNotVisible" => depth.in_flight.to_string(),
                        "ApproximateNumberOfMessagesDelayed" => depth.delayed.to_string(),
                        "CreatedTimestamp" => (q.created_ms / 1000).to_string(),
                        "LastModifiedTimestamp" => (q.modified_ms / 1000).to_string(),
                        "QueueArn" => identity.arn(&q.name),
                        other => return q.config.get(other),
                    })
                };
                let wanted: Vec<&str> = if all {
                    attributes::READ_ONLY.to_vec()
                } else {
                    names.iter().map(String::as_str).collect()
                };
                for n in wanted {
                    if let Some(v) = computed(n) {
                        out.insert(n.to_string(), v);
                    }
                }
                Ok::<_, QueueError>(out)
            })
            .await
    }

    /// Sets queue attributes (all or none).
    pub async fn set_attributes(
        &self,
        name: &str,
        attributes: &HashMap<String, String>,
    ) -> Result<(), QueueError> {
        let attributes = attributes.clone();
        let (owned, identity, clock) =
            (name.to_string(), self.identity.clone(), self.clock.clone());
        self.store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                let mut config = q.config.clone();
                config.apply(&attributes, false)?;
                if let Some(policy) = &config.redrive {
                    if config.redrive != q.config.redrive {
                        check_redrive_target(c, &identity, &owned, config.fifo, policy)?;
                    }
                }
                c.execute(
                    "UPDATE queues SET config = ?2, modified_ms = ?3 WHERE id = ?1",
                    params![q.id, config_json(&config)?, clock.now_ms()],
                )?;
                Ok::<_, QueueError>(())
            })
            .await?;
        // A shorter retention or a new redrive may change what a long poll sees.
        self.wake(name);
        Ok(())
    }

    /// Sends a message with just a body, message attributes and a delay (`None`:
    /// the queue's `DelaySeconds`).
    pub async fn send(
        &self,
        queue: &str,
        body: impl Into<String>,
        attributes: MessageAttributes,
        delay_seconds: Option<u32>,
    ) -> Result<Sent, QueueError> {
        self.send_message(
            queue,
            SendMessage {
                body: body.into(),
                attributes,
                delay_seconds,
                ..SendMessage::default()
            },
        )
        .await
    }

    /// Sends a message. It is on disk when this returns.
    pub async fn send_message(
        &self,
        queue: &str,
        message: SendMessage,
    ) -> Result<Sent, QueueError> {
        let mut results = self.send_batch(queue, vec![message]).await?;
        results.pop().unwrap_or_else(|| {
            Err(QueueError::InvalidParameters {
                reason: "nothing was sent".into(),
            })
        })
    }

    /// Sends several messages in one transaction; each succeeds or fails on its own.
    /// The outer error is for the queue as a whole (it does not exist).
    pub async fn send_batch(
        &self,
        queue: &str,
        messages: Vec<SendMessage>,
    ) -> Result<Vec<Result<Sent, QueueError>>, QueueError> {
        let checked: Vec<Result<SendMessage, QueueError>> = messages
            .into_iter()
            .map(|m| validate_send(&m).map(|()| m))
            .collect();
        let (owned, clock) = (queue.to_string(), self.clock.clone());
        let results = self
            .store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                let now = clock.now_ms();
                let mut out = Vec::with_capacity(checked.len());
                for m in checked {
                    out.push(m.and_then(|m| {
                        // Each message in its own savepoint: a failure leaves no trace.
                        c.execute_batch("SAVEPOINT send_one")?;
                        let r = insert_message(c, &q, &m, now);
                        c.execute_batch(if r.is_ok() {
                            "RELEASE send_one"
                        } else {
                            "ROLLBACK TO send_one; RELEASE send_one"
                        })?;
                        r
                    }));
                }
                Ok::<_, QueueError>(out)
            })
            .await?;
        self.wake(queue);
        Ok(results)
    }

    /// Receives up to `max` (1–10) messages, hiding them for `visibility` seconds
    /// (`None`: the queue's `VisibilityTimeout`). With messages available it returns
    /// at once; otherwise it waits up to `wait` (`None`: the queue's
    /// `ReceiveMessageWaitTimeSeconds`; at most 20 s) for one to arrive or become
    /// visible, and returns as soon as one does.
    pub async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility: Option<u32>,
        wait: Option<Duration>,
    ) -> Result<Vec<Received>, QueueError> {
        if !(1..=MAX_RECEIVE_MESSAGES).contains(&max) {
            return Err(QueueError::param(
                "MaxNumberOfMessages",
                max,
                "Must be between 1 and 10, if provided.",
            ));
        }
        if let Some(v) = visibility.filter(|v| *v > MAX_VISIBILITY_TIMEOUT) {
            return Err(QueueError::param(
                "VisibilityTimeout",
                v,
                "Must be between 0 and 43200, if provided.",
            ));
        }
        if let Some(w) = wait.filter(|w| *w > Duration::from_secs(MAX_WAIT_SECONDS.into())) {
            return Err(QueueError::param(
                "WaitTimeSeconds",
                w.as_secs(),
                "Must be >= 0 and <= 20, if provided.",
            ));
        }
        let notify = self.waiter(queue);
        let start = Instant::now();
        let mut deadline = wait.map(|w| start + w);
        loop {
            // Registered before looking, so a send between the look and the wait
            // still wakes this poll.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let attempt = self.receive_once(queue, max, visibility).await?;
            for dlq in &attempt.moved_to {
                self.wake(dlq);
            }
            if !attempt.messages.is_empty() {
                return Ok(attempt.messages);
            }
            let deadline =
                *deadline.get_or_insert(start + Duration::from_secs(attempt.wait_seconds.into()));
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut until = deadline;
            if let Some(at) = attempt.next_visible_ms {
                let ms = (at - self.clock.now_ms()).max(1) as u64;
                until = until.min(now + Duration::from_millis(ms));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn receive_once(
        &self,
        queue: &str,
        max: u32,
        visibility: Option<u32>,
    ) -> Result<Attempt, QueueError> {
        let (owned, identity, clock) =
            (queue.to_string(), self.identity.clone(), self.clock.clone());
        self.store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                let now = clock.now_ms();
                expire(c, &q, now)?;
                let mut job = ReceiveJob {
                    c,
                    identity: &identity,
                    q: &q,
                    now,
                    visibility: visibility.unwrap_or(q.config.visibility_timeout),
                    dlq: None,
                    attempt: Attempt {
                        wait_seconds: q.config.receive_wait_seconds,
                        ..Attempt::default()
                    },
                };
                if q.config.fifo {
                    job.fifo(max as usize)?;
                } else {
                    job.standard(max as usize)?;
                }
                let mut attempt = job.attempt;
                if attempt.messages.is_empty() {
                    attempt.next_visible_ms = c
                        .prepare_cached(
                            "SELECT MIN(visible_ms) FROM messages WHERE queue_id = ?1 AND visible_ms > ?2",
                        )?
                        .query_row(params![q.id, now], |r| r.get(0))?;
                }
                Ok::<_, QueueError>(attempt)
            })
            .await
    }

    /// Deletes a received message. Returns whether a message was deleted: `false`
    /// when it was already gone or `receipt_handle` is an older handle of a message
    /// received again since (SQS answers success in both cases).
    pub async fn delete(&self, queue: &str, receipt_handle: &str) -> Result<bool, QueueError> {
        let mut results = self
            .delete_batch(queue, vec![receipt_handle.to_string()])
            .await?;
        results.pop().unwrap_or(Ok(false))
    }

    /// Deletes several messages in one transaction, each on its own.
    pub async fn delete_batch(
        &self,
        queue: &str,
        receipt_handles: Vec<String>,
    ) -> Result<Vec<Result<bool, QueueError>>, QueueError> {
        let owned = queue.to_string();
        let (results, fifo) = self
            .store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                let mut out = Vec::with_capacity(receipt_handles.len());
                for handle in receipt_handles {
                    out.push(delete_one(c, &q, &handle));
                }
                Ok::<_, QueueError>((out, q.config.fifo))
            })
            .await?;
        if fifo {
            // The group of a deleted message may now yield its next one.
            self.wake(queue);
        }
        Ok(results)
    }

    /// Changes the visibility timeout of a received message, counted from now.
    pub async fn change_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        visibility: u32,
    ) -> Result<(), QueueError> {
        let mut results = self
            .change_visibility_batch(queue, vec![(receipt_handle.to_string(), visibility)])
            .await?;
        results.pop().unwrap_or(Ok(()))
    }

    /// Changes the visibility of several messages in one transaction, each on its own.
    pub async fn change_visibility_batch(
        &self,
        queue: &str,
        entries: Vec<(String, u32)>,
    ) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        let (owned, clock) = (queue.to_string(), self.clock.clone());
        let results = self
            .store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                let now = clock.now_ms();
                let mut out = Vec::with_capacity(entries.len());
                for (handle, visibility) in entries {
                    out.push(change_one(c, &q, &handle, visibility, now));
                }
                Ok::<_, QueueError>(out)
            })
            .await?;
        self.wake(queue);
        Ok(results)
    }

    /// Deletes every message of a queue.
    pub async fn purge(&self, queue: &str) -> Result<u64, QueueError> {
        let owned = queue.to_string();
        self.store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                let n = c.execute("DELETE FROM messages WHERE queue_id = ?1", [q.id])?;
                Ok::<_, QueueError>(n as u64)
            })
            .await
    }

    /// Message counts: visible, in flight, delayed.
    pub async fn depth(&self, queue: &str) -> Result<Depth, QueueError> {
        let (owned, clock) = (queue.to_string(), self.clock.clone());
        self.store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                depth_of(c, &q, clock.now_ms())
            })
            .await
    }

    /// Adds or replaces tags.
    pub async fn tag(&self, queue: &str, tags: &HashMap<String, String>) -> Result<(), QueueError> {
        validate_tags(tags)?;
        let (owned, tags) = (queue.to_string(), tags.clone());
        self.update_tags(owned, move |current| {
            current.extend(tags);
            validate_tags(current)
        })
        .await
    }

    /// Removes tags.
    pub async fn untag(&self, queue: &str, keys: &[String]) -> Result<(), QueueError> {
        let (owned, keys) = (queue.to_string(), keys.to_vec());
        self.update_tags(owned, move |current| {
            for k in &keys {
                current.remove(k);
            }
            Ok(())
        })
        .await
    }

    /// The queue's tags.
    pub async fn tags(&self, queue: &str) -> Result<HashMap<String, String>, QueueError> {
        let owned = queue.to_string();
        self.store
            .run(move |c| {
                let q = load_queue(c, &owned)?;
                read_tags(c, q.id)
            })
            .await
    }

    async fn update_tags(
        &self,
        queue: String,
        f: impl FnOnce(&mut HashMap<String, String>) -> Result<(), QueueError> + Send + 'static,
    ) -> Result<(), QueueError> {
        self.store
            .run(move |c| {
                let q = load_queue(c, &queue)?;
                let mut tags = read_tags(c, q.id)?;
                f(&mut tags)?;
                let text = serde_json::to_string(&tags).unwrap_or_else(|_| "{}".into());
                c.execute(
                    "UPDATE queues SET tags = ?2 WHERE id = ?1",
                    params![q.id, text],
                )?;
                Ok::<_, QueueError>(())
            })
            .await
    }
}

fn read_tags(c: &Connection, id: i64) -> Result<HashMap<String, String>, QueueError> {
    let text: String = c.query_row("SELECT tags FROM queues WHERE id = ?1", [id], |r| r.get(0))?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

fn validate_tags(tags: &HashMap<String, String>) -> Result<(), QueueError> {
    if tags.len() > MAX_TAGS {
        return Err(QueueError::InvalidParameters {
            reason: format!("A queue can have at most {MAX_TAGS} tags."),
        });
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(QueueError::param(
                "TagKey",
                k,
                "Tag keys are 1 to 128 characters.",
            ));
        }
        if v.chars().count() > 256 {
            return Err(QueueError::param(
                "TagValue",
                v,
                "Tag values are at most 256 characters.",
            ));
        }
    }
    Ok(())
}

fn depth_of(c: &Connection, q: &QueueRow, now: i64) -> Result<Depth, QueueError> {
    expire(c, q, now)?;
    let (visible, in_flight, delayed) = c
        .prepare_cached(
            "SELECT
                COALESCE(SUM(visible_ms <= ?2), 0),
                COALESCE(SUM(visible_ms > ?2 AND receive_count > 0), 0),
                COALESCE(SUM(visible_ms > ?2 AND receive_count = 0), 0)
             FROM messages WHERE queue_id = ?1",
        )?
        .query_row(params![q.id, now], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
    Ok(Depth {
        visible: visible as u64,
        in_flight: in_flight as u64,
        delayed: delayed as u64,
    })
}

fn delete_one(c: &Connection, q: &QueueRow, handle: &str) -> Result<bool, QueueError> {
    let (queue_id, row_id, token) = parse_handle(handle)?;
    if queue_id != q.id {
        return Err(QueueError::ReceiptHandleIsInvalid {
            handle: handle.to_string(),
        });
    }
    let n = c
        .prepare_cached(
            "DELETE FROM messages WHERE id = ?1 AND queue_id = ?2 AND receipt_token = ?3",
        )?
        .execute(params![row_id, q.id, token])?;
    Ok(n > 0)
}

fn change_one(
    c: &Connection,
    q: &QueueRow,
    handle: &str,
    visibility: u32,
    now: i64,
) -> Result<(), QueueError> {
    if visibility > MAX_VISIBILITY_TIMEOUT {
        return Err(QueueError::param(
            "VisibilityTimeout",
            visibility,
            "Must be between 0 and 43200.",
        ));
    }
    let (queue_id, row_id, token) = parse_handle(handle)?;
    if queue_id != q.id {
        return Err(QueueError::ReceiptHandleIsInvalid {
            handle: handle.to_string(),
        });
    }
    let row: Option<(Option<String>, i64, Option<i64>)> = c
        .prepare_cached(
            "SELECT receipt_token, visible_ms, last_receive_ms FROM messages WHERE id = ?1 AND queue_id = ?2",
        )?
        .query_row(params![row_id, q.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((current, visible_ms, last_receive_ms)) = row else {
        return Err(QueueError::param(
            "ReceiptHandle",
            handle,
            "Message does not exist or is not available for visibility timeout change.",
        ));
    };
    if current.as_deref() != Some(token.as_str()) || visible_ms <= now {
        return Err(QueueError::MessageNotInflight {
            handle: handle.to_string(),
        });
    }
    let limit = last_receive_ms.unwrap_or(now) + i64::from(MAX_VISIBILITY_TIMEOUT) * 1000;
    let until = now + i64::from(visibility) * 1000;
    if until > limit {
        return Err(QueueError::param(
            "VisibilityTimeout",
            visibility,
            "Total VisibilityTimeout for the message is beyond the limit [43200 seconds].",
        ));
    }
    c.prepare_cached("UPDATE messages SET visible_ms = ?2 WHERE id = ?1")?
        .execute(params![row_id, until])?;
    Ok(())
}

/// A redrive target must be a queue of this server, of the same type, other than
/// the source.
fn check_redrive_target(
    c: &Connection,
    identity: &Identity,
    source: &str,
    fifo: bool,
    policy: &RedrivePolicy,
) -> Result<(), QueueError> {
    let arn = &policy.dead_letter_target_arn;
    let bad = |reason: String| QueueError::param("RedrivePolicy", policy.to_json(), reason);
    let Some(name) = identity.name_from_arn(arn) else {
        return Err(bad(format!(
            "Dead letter target {arn} is not a queue ARN of this server (arn:aws:sqs:{}:{}:NAME).",
            identity.region, identity.account
        )));
    };
    if name == source {
        return Err(bad("A queue cannot be its own dead-letter queue.".into()));
    }
    let Some(target) = load_queue_opt(c, &name)? else {
        return Err(bad(format!("Dead letter target does not exist: {arn}.")));
    };
    if target.config.fifo != fifo {
        return Err(bad(
            "The dead-letter queue of a FIFO queue must be a FIFO queue, and of a standard queue a standard queue.".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::message::MessageAttribute;

    const T0: i64 = 1_700_000_000_000;
    const NOW: Option<Duration> = Some(Duration::ZERO);

    // Fields drop in order: the queues (closing the database) before the directory.
    struct Fixture {
        q: Arc<Queues>,
        clock: Arc<ManualClock>,
        _dir: tempfile::TempDir,
    }

    fn manual() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let q = Queues::open_with_clock(
            dir.path(),
            "http://127.0.0.1:9000/",
            "us-east-1",
            "123456789012",
            clock.clone(),
        )
        .unwrap();
        Fixture {
            _dir: dir,
            q,
            clock,
        }
    }

    fn real() -> (tempfile::TempDir, Arc<Queues>) {
        let dir = tempfile::tempdir().unwrap();
        let q = Queues::open(
            dir.path(),
            "http://localhost:1",
            "us-east-1",
            "000000000000",
        )
        .unwrap();
        (dir, q)
    }

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    async fn create(q: &Queues, name: &str, pairs: &[(&str, &str)]) {
        q.create_queue(name, &attrs(pairs), &HashMap::new())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn urls_and_arns() {
        let f = manual();
        assert_eq!(f.q.url("jobs"), "http://127.0.0.1:9000/123456789012/jobs");
        assert_eq!(f.q.arn("jobs"), "arn:aws:sqs:us-east-1:123456789012:jobs");
        assert_eq!(
            f.q.name_from_arn("arn:aws:sqs:us-east-1:123456789012:jobs")
                .as_deref(),
            Some("jobs")
        );
        assert_eq!(
            f.q.name_from_arn("arn:aws:sqs:eu-west-1:123456789012:jobs"),
            None
        );
        assert_eq!(
            f.q.name_from_arn("arn:aws:sns:us-east-1:123456789012:jobs"),
            None
        );
        for url in [
            "http://127.0.0.1:9000/123456789012/jobs",
            "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
            "http://other:1/prefix/123456789012/jobs/?x=1",
        ] {
            assert_eq!(f.q.name_from_url(url).unwrap(), "jobs", "{url}");
        }
        assert!(matches!(
            f.q.name_from_url("http://127.0.0.1:9000/999999999999/jobs"),
            Err(QueueError::QueueDoesNotExist { .. })
        ));
        assert!(matches!(
            f.q.name_from_url("jobs"),
            Err(QueueError::InvalidAddress { .. })
        ));
    }

    #[tokio::test]
    async fn send_receive_delete() {
        let f = manual();
        create(&f.q, "q", &[]).await;
        let sent =
            f.q.send(
                "q",
                "derp",
                MessageAttributes::from([(
                    "timestamp".to_string(),
                    MessageAttribute::number("1493147359900"),
                )]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(sent.md5_of_body, "58fd9edd83341c29f1aebba81c31e257");
        assert_eq!(
            sent.md5_of_message_attributes.as_deref(),
            Some("235c5c510d26fb653d073faed50ae77c")
        );
        assert_eq!(sent.message_id.len(), 36);
        f.clock.advance(Duration::from_millis(5));
        let got = f.q.receive("q", 10, None, NOW).await.unwrap();
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!(
            (m.message_id.as_str(), m.body.as_str()),
            (sent.message_id.as_str(), "derp")
        );
        assert_eq!(m.md5_of_body, sent.md5_of_body);
        assert_eq!(m.md5_of_message_attributes, sent.md5_of_message_attributes);
        assert_eq!(m.receive_count, 1);
        assert_eq!(m.sent_timestamp, T0);
        assert_eq!(m.first_receive_timestamp, T0 + 5);
        assert_eq!(m.attributes["SentTimestamp"], T0.to_string());
        assert_eq!(m.attributes["ApproximateReceiveCount"], "1");
        assert_eq!(
            m.attributes["ApproximateFirstReceiveTimestamp"],
            (T0 + 5).to_string()
        );
        assert_eq!(m.attributes["SenderId"], "123456789012");
        assert_eq!(
            f.q.depth("q").await.unwrap(),
            Depth {
                visible: 0,
                in_flight: 1,
                delayed: 0
            }
        );
        assert!(f.q.delete("q", &m.receipt_handle).await.unwrap());
        assert_eq!(f.q.depth("q").await.unwrap(), Depth::default());
        // Deleting again succeeds and deletes nothing, as in SQS.
        assert!(!f.q.delete("q", &m.receipt_handle).await.unwrap());
    }

    #[tokio::test]
    async fn visibility_timeout_hides_a_message_until_it_runs_out() {
        let f = manual();
        create(&f.q, "q", &[("VisibilityTimeout", "30")]).await;
        f.q.send("q", "m", MessageAttributes::new(), None)
            .await
            .unwrap();
        let first = f.q.receive("q", 1, None, NOW).await.unwrap().remove(0);
        assert!(f.q.receive("q", 1, None, NOW).await.unwrap().is_empty());
        f.clock.advance(Duration::from_secs(29));
        assert!(f.q.receive("q", 1, None, NOW).await.unwrap().is_empty());
        f.clock.advance(Duration::from_secs(1));
        let second = f.q.receive("q", 1, None, NOW).await.unwrap().remove(0);
        assert_eq!(second.message_id, first.message_id);
        assert_eq!(second.receive_count, 2);
        assert_eq!(second.attributes["ApproximateReceiveCount"], "2");
        assert_eq!(
            second.first_receive_timestamp,
            first.first_receive_timestamp
        );
        assert_ne!(second.receipt_handle, first.receipt_handle);
        // The older handle no longer deletes; the latest one does.
        assert!(!f.q.delete("q", &first.receipt_handle).await.unwrap());
        assert_eq!(f.q.depth("q").await.unwrap().in_flight, 1);
        assert!(f.q.delete("q", &second.receipt_handle).await.unwrap());
    }

    #[tokio::test]
    async fn per_receive_visibility_and_change_visibility() {
        let f = manual();
        create(&f.q, "q", &[]).await;
        f.q.send("q", "m", MessageAttributes::new(), None)
            .await
            .unwrap();
        f.q.receive("q", 1, Some(5), NOW).await.unwrap().remove(0);
        f.clock.advance(Duration::from_secs(5));
        let m = f.q.receive("q", 1, Some(100), NOW).await.unwrap().remove(0);
        assert_eq!(m.receive_count, 2);
        // Longer, then back to visible at once.
        f.q.change_visibility("q", &m.receipt_handle, 600)
            .await
            .unwrap();
        f.clock.advance(Duration::from_secs(200));
        assert!(f.q.receive("q", 1, None, NOW).await.unwrap().is_empty());
        let e =
            f.q.change_visibility("q", &m.receipt_handle, 43_200)
                .await
                .unwrap_err();
        assert!(e.to_string().contains("beyond the limit"), "{e}");
        f.q.change_visibility("q", &m.receipt_handle, 0)
            .await
            .unwrap();
        assert_eq!(f.q.depth("q").await.unwrap().visible, 1);
        // Not in flight any more.
        let e =
            f.q.change_visibility("q", &m.receipt_handle, 10)
                .await
                .unwrap_err();
        assert!(matches!(e, QueueError::MessageNotInflight { .. }), "{e}");
        let again = f.q.receive("q", 1, None, NOW).await.unwrap().remove(0);
        // An older handle of a message received again is not in flight either.
        let e =
            f.q.change_visibility("q", &m.receipt_handle, 10)
                .await
                .unwrap_err();
        assert!(matches!(e, QueueError::MessageNotInflight { .. }), "{e}");
        f.q.change_visibility("q", &again.receipt_handle, 10)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn zero_visibility_returns_the_message_again_at_once() {
        let f = manual();
        create(&f.q, "q", &[]).await;
        f.q.send("q", "m", MessageAttributes::new(), None)
            .await
            .unwrap();
        let a = f.q.receive("q", 10, Some(0), NOW).await.unwrap();
        assert_eq!(a.len(), 1, "one message, not repeated within a receive");
        let b = f.q.receive("q", 10, Some(0), NOW).await.unwrap();
        assert_eq!(b[0].receive_count, 2);
    }

    #[tokio::test]
    async fn receipt_handles_are_checked() {
        let f = manual();
        create(&f.q, "a", &[]).await;
        create(&f.q, "b", &[]).await;
        f.q.send("a", "m", MessageAttributes::new(), None)
            .await
            .unwrap();
        let m = f.q.receive("a", 1, None, NOW).await.unwrap().remove(0);
        for bad in ["garbage", "", "djE6MToxOnNob3J0"] {
            assert!(matches!(
                f.q.delete("a", bad).await,
                Err(QueueError::ReceiptHandleIsInvalid { .. })
            ));
        }
        assert!(matches!(
            f.q.delete("b", &m.receipt_handle).await,
            Err(QueueError::ReceiptHandleIsInvalid { .. })
        ));
        assert!(matches!(
            f.q.delete("nope", &m.receipt_handle).await,
            Err(QueueError::QueueDoesNotExist { .. })
        ));
    }

    #[tokio::test]
    async fn delays_per_queue_and_per_message() {
        let f = manual();
        create(&f.q, "q", &[("DelaySeconds", "10")]).await;
        f.q.send("q", "queue-delay", MessageAttributes::new(), None)
            .await
            .unwrap();
        f.q.send("q", "no-delay", MessageAttributes::new(), Some(0))
            .await
            .unwrap();
        f.q.send("q", "long-delay", MessageAttributes::new(), Some(900))
            .await
            .unwrap();
        assert_eq!(
            f.q.depth("q").await.unwrap(),
            Depth {
                visible: 1,
                in_flight: 0,
                delayed: 2
            }
        );
        let got = f.q.receive("q", 10, None, NOW).await.unwrap();
        assert_eq!(
            got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["no-delay"]
        );
        f.clock.advance(Duration::from_secs(10));
        let got = f.q.receive("q", 10, None, NOW).await.unwrap();
        assert_eq!(
            got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["queue-delay"]
        );
        assert!(matches!(
            f.q.send("q", "x", MessageAttributes::new(), Some(901))
                .await,
            Err(QueueError::InvalidParameterValue { .. })
        ));
    }

    #[tokio::test]
    async fn messages_past_retention_vanish() {
        let f = manual();
        create(&f.q, "q", &[("MessageRetentionPeriod", "60")]).await;
        f.q.send("q", "old", MessageAttributes::new(), None)
            .await
            .unwrap();
        f.clock.advance(Duration::from_secs(30));
        f.q.send("q", "young", MessageAttributes::new(), None)
            .await
            .unwrap();
        f.clock.advance(Duration::from_secs(30));
        assert_eq!(f.q.depth("q").await.unwrap().visible, 1);
        let got = f.q.receive("q", 10, None, NOW).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body, "young");
        // Even in flight, a message expires.
        f.clock.advance(Duration::from_secs(30));
        assert_eq!(f.q.depth("q").await.unwrap(), Depth::default());
    }

    #[tokio::test]
    async fn expired_messages_are_swept_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let open = |clock: Arc<ManualClock>| {
            Queues::open_with_clock(dir.path(), "http://h", "us-east-1", "1", clock).unwrap()
        };
        let q = open(clock.clone());
        create(&q, "q", &[("MessageRetentionPeriod", "60")]).await;
        q.send("q", "m", MessageAttributes::new(), None)
            .await
            .unwrap();
        drop(q);
        clock.advance(Duration::from_secs(61));
        let _q = open(clock);
        let conn = Connection::open(dir.path().join("queues.db")).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn redrive_moves_a_message_after_max_receives() {
        let f = manual();
        create(&f.q, "dlq", &[]).await;
        let policy = format!(
            r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":2}}"#,
            f.q.arn("dlq")
        );
        create(
            &f.q,
            "src",
            &[("RedrivePolicy", &policy), ("VisibilityTimeout", "1")],
        )
        .await;
        let sent =
            f.q.send(
                "src",
                "poison",
                MessageAttributes::from([("k".to_string(), MessageAttribute::string("v"))]),
                None,
            )
            .await
            .unwrap();
        for n in 1..=2 {
            let m = f.q.receive("src", 1, None, NOW).await.unwrap().remove(0);
            assert_eq!(m.receive_count, n);
            f.clock.advance(Duration::from_secs(1));
        }
        // The third attempt moves it instead of returning it.
        assert!(f.q.receive("src", 1, None, NOW).await.unwrap().is_empty());
        assert_eq!(f.q.depth("src").await.unwrap(), Depth::default());
        let m = f.q.receive("dlq", 1, None, NOW).await.unwrap().remove(0);
        assert_eq!(m.message_id, sent.message_id);
        assert_eq!(m.body, "poison");
        assert_eq!(m.receive_count, 1);
        assert_eq!(m.sent_timestamp, T0);
        assert_eq!(m.message_attributes["k"], MessageAttribute::string("v"));
        assert_eq!(m.attributes["DeadLetterQueueSourceArn"], f.q.arn("src"));
        assert_eq!(f.q.dead_letter_sources("dlq").await.unwrap(), ["src"]);
    }

    #[tokio::test]
    async fn redrive_targets_must_exist_and_match_the_queue_type() {
        let f = manual();
        let policy = |name: &str| {
            format!(
                r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":2}}"#,
                f.q.arn(name)
            )
        };
        let e =
            f.q.create_queue(
                "src",
                &attrs(&[("RedrivePolicy", &policy("missing"))]),
                &HashMap::new(),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        create(&f.q, "src", &[]).await;
        let e =
            f.q.set_attributes("src", &attrs(&[("RedrivePolicy", &policy("src"))]))
                .await
                .unwrap_err();
        assert!(e.to_string().contains("its own"), "{e}");
        create(&f.q, "d.fifo", &[("FifoQueue", "true")]).await;
        let e =
            f.q.set_attributes("src", &attrs(&[("RedrivePolicy", &policy("d.fifo"))]))
                .await
                .unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
    }

    #[tokio::test]
    async fn create_queue_is_idempotent_only_with_matching_attributes() {
        let f = manual();
        let url =
            f.q.create_queue("q", &attrs(&[("VisibilityTimeout", "60")]), &HashMap::new())
                .await
                .unwrap();
        assert_eq!(url, f.q.url("q"));
        let again =
            f.q.create_queue("q", &attrs(&[("VisibilityTimeout", "60")]), &HashMap::new())
                .await
                .unwrap();
        assert_eq!(again, url);
        f.q.create_queue("q", &HashMap::new(), &HashMap::new())
            .await
            .unwrap();
        let e =
            f.q.create_queue("q", &attrs(&[("VisibilityTimeout", "61")]), &HashMap::new())
                .await
                .unwrap_err();
        assert!(
            matches!(&e, QueueError::QueueNameExists { attribute, .. } if attribute == "VisibilityTimeout"),
            "{e}"
        );
        assert!(matches!(
            f.q.create_queue("bad name", &HashMap::new(), &HashMap::new())
                .await,
            Err(QueueError::InvalidParameterValue { .. })
        ));
    }

    #[tokio::test]
    async fn attributes_list_and_delete() {
        let f = manual();
        create(&f.q, "alpha", &[("DelaySeconds", "3")]).await;
        create(&f.q, "alpine", &[]).await;
        create(&f.q, "beta", &[]).await;
        assert_eq!(
            f.q.list_queues(Some("alp")).await.unwrap(),
            ["alpha", "alpine"]
        );
        assert_eq!(f.q.list_queues(None).await.unwrap().len(), 3);
        let all =
            f.q.get_attributes("alpha", &["All".to_string()])
                .await
                .unwrap();
        assert_eq!(all["DelaySeconds"], "3");
        assert_eq!(all["QueueArn"], f.q.arn("alpha"));
        assert_eq!(all["CreatedTimestamp"], (T0 / 1000).to_string());
        assert_eq!(all["ApproximateNumberOfMessages"], "0");
        assert!(!all.contains_key("RedrivePolicy"));
        f.clock.advance(Duration::from_secs(10));
        f.q.set_attributes("alpha", &attrs(&[("DelaySeconds", "0")]))
            .await
            .unwrap();
        let some =
            f.q.get_attributes(
                "alpha",
                &[
                    "DelaySeconds".to_string(),
                    "LastModifiedTimestamp".to_string(),
                ],
            )
            .await
            .unwrap();
        assert_eq!(some.len(), 2);
        assert_eq!(some["DelaySeconds"], "0");
        assert_eq!(some["LastModifiedTimestamp"], (T0 / 1000 + 10).to_string());
        assert!(matches!(
            f.q.get_attributes("alpha", &["Bogus".to_string()]).await,
            Err(QueueError::InvalidAttributeName { .. })
        ));
        f.q.delete_queue("alpha").await.unwrap();
        assert!(!f.q.exists("alpha").await.unwrap());
        assert!(matches!(
            f.q.send("alpha", "m", MessageAttributes::new(), None).await,
            Err(QueueError::QueueDoesNotExist { .. })
        ));
    }

    #[tokio::test]
    async fn tags() {
        let f = manual();
        f.q.create_queue("q", &HashMap::new(), &attrs(&[("team", "a")]))
            .await
            .unwrap();
        f.q.tag("q", &attrs(&[("env", "dev")])).await.unwrap();
        f.q.untag("q", &["team".to_string()]).await.unwrap();
        assert_eq!(f.q.tags("q").await.unwrap(), attrs(&[("env", "dev")]));
    }

    #[tokio::test]
    async fn batches_fail_entry_by_entry() {
        let f = manual();
        create(&f.q, "q", &[("MaximumMessageSize", "1024")]).await;
        let results =
            f.q.send_batch(
                "q",
                vec![
                    SendMessage::new("fine"),
                    SendMessage::new("x".repeat(1025)),
                    SendMessage::new("bad \u{0}"),
                    SendMessage::new("also fine"),
                ],
            )
            .await
            .unwrap();
        assert!(results[0].is_ok() && results[3].is_ok());
        assert!(matches!(
            results[1],
            Err(QueueError::InvalidParameters { .. })
        ));
        assert!(matches!(
            results[2],
            Err(QueueError::InvalidMessageContents { .. })
        ));
        assert_eq!(f.q.depth("q").await.unwrap().visible, 2);
        let got = f.q.receive("q", 10, None, NOW).await.unwrap();
        let mut handles: Vec<String> = got.iter().map(|m| m.receipt_handle.clone()).collect();
        handles.push("garbage".into());
        let deleted = f.q.delete_batch("q", handles).await.unwrap();
        assert!(matches!(
            deleted.as_slice(),
            [
                Ok(true),
                Ok(true),
                Err(QueueError::ReceiptHandleIsInvalid { .. })
            ]
        ));
    }

    #[tokio::test]
    async fn purge_deletes_everything() {
        let f = manual();
        create(&f.q, "q", &[]).await;
        for i in 0..5 {
            f.q.send("q", format!("m{i}"), MessageAttributes::new(), Some(i * 10))
                .await
                .unwrap();
        }
        f.q.receive("q", 1, None, NOW).await.unwrap();
        assert_eq!(f.q.purge("q").await.unwrap(), 5);
        assert_eq!(f.q.depth("q").await.unwrap(), Depth::default());
    }

    #[tokio::test]
    async fn sent_messages_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Queues::open(dir.path(), "http://h", "us-east-1", "1").unwrap();
        let q = open();
        create(&q, "q", &[]).await;
        q.send("q", "kept", MessageAttributes::new(), None)
            .await
            .unwrap();
        q.send("q", "in flight", MessageAttributes::new(), None)
            .await
            .unwrap();
        let m = q.receive("q", 1, Some(600), NOW).await.unwrap().remove(0);
        drop(q);
        let q = open();
        assert_eq!(
            q.depth("q").await.unwrap(),
            Depth {
                visible: 1,
                in_flight: 1,
                delayed: 0
            }
        );
        assert!(q.delete("q", &m.receipt_handle).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_poll_wakes_on_send() {
        let (_dir, q) = real();
        create(&q, "q", &[]).await;
        let poller = {
            let q = q.clone();
            tokio::spawn(
                async move { q.receive("q", 1, None, Some(Duration::from_secs(20))).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        q.send("q", "wake", MessageAttributes::new(), None)
            .await
            .unwrap();
        // Far less than the 20 s wait: the send woke the poll.
        let got = tokio::time::timeout(Duration::from_secs(10), poller)
            .await
            .expect("the long poll should end when a message arrives")
            .unwrap()
            .unwrap();
        assert_eq!(got[0].body, "wake");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_poll_wakes_when_a_delayed_message_becomes_visible() {
        let (_dir, q) = real();
        create(&q, "q", &[("ReceiveMessageWaitTimeSeconds", "20")]).await;
        q.send("q", "later", MessageAttributes::new(), Some(1))
            .await
            .unwrap();
        // wait = None: the queue's ReceiveMessageWaitTimeSeconds applies.
        let got = tokio::time::timeout(Duration::from_secs(10), q.receive("q", 1, None, None))
            .await
            .expect("the poll should end when the delay passes")
            .unwrap();
        assert_eq!(got[0].body, "later");
    }

    #[tokio::test]
    async fn long_poll_of_an_empty_queue_ends_empty_after_the_wait() {
        let (_dir, q) = real();
        create(&q, "q", &[]).await;
        let t = Instant::now();
        let got = q
            .receive("q", 1, None, Some(Duration::from_millis(300)))
            .await
            .unwrap();
        assert!(got.is_empty());
        assert!(t.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn receive_parameters_are_validated() {
        let f = manual();
        create(&f.q, "q", &[]).await;
        for (max, vis, wait) in [
            (0, None, NOW),
            (11, None, NOW),
            (1, Some(43_201), NOW),
            (1, None, Some(Duration::from_secs(21))),
        ] {
            assert!(matches!(
                f.q.receive("q", max, vis, wait).await,
                Err(QueueError::InvalidParameterValue { .. })
            ));
        }
    }

    #[tokio::test]
    async fn fifo_orders_within_groups_and_blocks_groups_in_flight() {
        let f = manual();
        create(&f.q, "f.fifo", &[("FifoQueue", "true")]).await;
        let send = |body: &'static str, group: &'static str| {
            let q = f.q.clone();
            async move {
                q.send_message(
                    "f.fifo",
                    SendMessage {
                        group_id: Some(group.into()),
                        deduplication_id: Some(body.into()),
                        ..SendMessage::new(body)
                    },
                )
                .await
                .unwrap()
            }
        };
        let a1 = send("a1", "A").await;
        send("a2", "A").await;
        send("b1", "B").await;
        assert!(a1.sequence_number.is_some());
        let first = f.q.receive("f.fifo", 1, None, NOW).await.unwrap().remove(0);
        assert_eq!(first.body, "a1");
        assert_eq!(first.attributes["MessageGroupId"], "A");
        // A is blocked while a1 is in flight; B is not.
        let next = f.q.receive("f.fifo", 10, None, NOW).await.unwrap();
        assert_eq!(
            next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["b1"]
        );
        f.q.delete("f.fifo", &first.receipt_handle).await.unwrap();
        let next = f.q.receive("f.fifo", 10, None, NOW).await.unwrap();
        assert_eq!(
            next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["a2"]
        );
    }

    #[tokio::test]
    async fn fifo_deduplicates_within_five_minutes() {
        let f = manual();
        create(
            &f.q,
            "f.fifo",
            &[("FifoQueue", "true"), ("ContentBasedDeduplication", "true")],
        )
        .await;
        let msg = || SendMessage {
            group_id: Some("g".into()),
            ..SendMessage::new("same body")
        };
        let a = f.q.send_message("f.fifo", msg()).await.unwrap();
        let b = f.q.send_message("f.fifo", msg()).await.unwrap();
        assert_eq!(a.message_id, b.message_id);
        assert_eq!(a.sequence_number, b.sequence_number);
        assert_eq!(f.q.depth("f.fifo").await.unwrap().visible, 1);
        f.clock.advance(DEDUPLICATION_WINDOW);
        let c = f.q.send_message("f.fifo", msg()).await.unwrap();
        assert_ne!(c.message_id, a.message_id);
        assert_eq!(f.q.depth("f.fifo").await.unwrap().visible, 2);
    }

    #[tokio::test]
    async fn fifo_rules() {
        let f = manual();
        create(&f.q, "f.fifo", &[("FifoQueue", "true")]).await;
        create(&f.q, "std", &[]).await;
        let e =
            f.q.send_message("f.fifo", SendMessage::new("x"))
                .await
                .unwrap_err();
        assert!(matches!(e, QueueError::MissingParameter { .. }), "{e}");
        let grouped = || SendMessage {
            group_id: Some("g".into()),
            ..SendMessage::new("x")
        };
        let e = f.q.send_message("f.fifo", grouped()).await.unwrap_err();
        assert!(e.to_string().contains("ContentBasedDeduplication"), "{e}");
        let e =
            f.q.send_message(
                "f.fifo",
                SendMessage {
                    delay_seconds: Some(5),
                    deduplication_id: Some("d".into()),
                    ..grouped()
                },
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("DelaySeconds"), "{e}");
        let e =
            f.q.send_message(
                "std",
                SendMessage {
                    deduplication_id: Some("d".into()),
                    ..SendMessage::new("x")
                },
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("MessageDeduplicationId"), "{e}");
    }

    #[tokio::test]
    async fn oversized_messages_are_rejected() {
        let f = manual();
        create(&f.q, "q", &[]).await;
        f.q.send("q", "x".repeat(1_048_576), MessageAttributes::new(), None)
            .await
            .unwrap();
        let e =
            f.q.send("q", "x".repeat(1_048_577), MessageAttributes::new(), None)
                .await
                .unwrap_err();
        assert!(e.to_string().contains("shorter than 1048576"), "{e}");
    }
}
