//! The SQS JSON protocol (`awsJson1_0`, as current AWS SDKs and CLIs speak it):
//! `POST /` with `X-Amz-Target: AmazonSQS.<Action>` and a JSON body of AWS's
//! PascalCase fields. Each action parses into a typed request, calls [`Queues`],
//! and renders AWS's response shape. Every error leaves through [`SqsError`]: the
//! JSON `{"__type":"com.amazonaws.sqs#…","message":"…"}` plus the
//! `x-amzn-query-error: <legacy code>;Sender|Receiver` header from which SDKs read
//! the error code they used to get from the query protocol.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::QueueError;
use crate::message::{
    md5_of_attributes, message_size, select_attributes, AttributeValue, MessageAttribute,
    MessageAttributes,
};
use crate::queue::{new_uuid, Queues, Received, SendMessage};

/// `X-Amz-Target` values of this protocol start with this.
pub const TARGET_PREFIX: &str = "AmazonSQS.";
/// Content type of requests and responses.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// Most entries in a batch request.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Largest total of message sizes in one `SendMessageBatch`.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Most queue URLs one `ListQueues` returns.
const MAX_LIST_RESULTS: usize = 1000;

/// System attribute names a receive may ask for.
const SYSTEM_ATTRIBUTES: &[&str] = &[
    "All",
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageDeduplicationId",
    "MessageGroupId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
];

/// An SQS error as it goes on the wire.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct SqsError {
    /// HTTP status (400 for almost everything, as SQS).
    pub status: StatusCode,
    /// The body's `__type`, e.g. `com.amazonaws.sqs#QueueDoesNotExist`; SDKs map
    /// its last part to the modeled exception (`QueueDoesNotExist`).
    pub error_type: String,
    /// The legacy query-protocol code for `x-amzn-query-error`, e.g.
    /// `AWS.SimpleQueueService.NonExistentQueue`; SDKs report it as the error code.
    pub query_code: Option<String>,
    /// Human-readable text.
    pub message: String,
}

impl SqsError {
    fn sqs(status: StatusCode, shape: &str, query_code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type: format!("com.amazonaws.sqs#{shape}"),
            query_code: Some(query_code.to_string()),
            message: message.into(),
        }
    }

    fn coral(shape: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error_type: format!("com.amazon.coral.service#{shape}"),
            query_code: None,
            message: message.into(),
        }
    }

    fn batch(shape: &str, message: impl Into<String>) -> Self {
        Self::sqs(
            StatusCode::BAD_REQUEST,
            shape,
            &format!("AWS.SimpleQueueService.{shape}"),
            message,
        )
    }

    /// The error code SDKs report: the query code when there is one.
    pub fn code(&self) -> &str {
        self.query_code.as_deref().unwrap_or_else(|| {
            self.error_type
                .rsplit('#')
                .next()
                .unwrap_or(&self.error_type)
        })
    }

    fn sender_fault(&self) -> bool {
        !self.status.is_server_error()
    }
}

impl From<QueueError> for SqsError {
    fn from(e: QueueError) -> Self {
        use QueueError as E;
        const BAD: StatusCode = StatusCode::BAD_REQUEST;
        let (status, shape, code) = match &e {
            E::QueueDoesNotExist { .. } => (
                BAD,
                "QueueDoesNotExist",
                "AWS.SimpleQueueService.NonExistentQueue",
            ),
            E::QueueNameExists { .. } => (BAD, "QueueNameExists", "QueueAlreadyExists"),
            E::InvalidAddress { .. } => (StatusCode::NOT_FOUND, "InvalidAddress", "InvalidAddress"),
            E::InvalidAttributeName { .. } => (BAD, "InvalidAttributeName", "InvalidAttributeName"),
            E::InvalidAttributeValue { .. } => {
                (BAD, "InvalidAttributeValue", "InvalidAttributeValue")
            }
            E::InvalidParameterValue { .. } | E::InvalidParameters { .. } => (
                BAD,
                "InvalidParameterValueException",
                "InvalidParameterValue",
            ),
            E::MissingParameter { .. } => {
                (BAD, "MissingRequiredParameterException", "MissingParameter")
            }
            E::ReceiptHandleIsInvalid { .. } => (
                StatusCode::NOT_FOUND,
                "ReceiptHandleIsInvalid",
                "ReceiptHandleIsInvalid",
            ),
            E::MessageNotInflight { .. } => (
                BAD,
                "MessageNotInflight",
                "AWS.SimpleQueueService.MessageNotInflight",
            ),
            E::InvalidMessageContents { .. } => {
                (BAD, "InvalidMessageContents", "InvalidMessageContents")
            }
            E::UnsupportedOperation { .. } => (
                BAD,
                "UnsupportedOperation",
                "AWS.SimpleQueueService.UnsupportedOperation",
            ),
            E::Store(store) => {
                tracing::error!(error = %store, "queue store");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "InternalError",
                )
            }
        };
        Self::sqs(status, shape, code, e.to_string())
    }
}

impl IntoResponse for SqsError {
    fn into_response(self) -> Response {
        let body = json!({ "__type": self.error_type, "message": self.message }).to_string();
        let mut resp = (self.status, [("content-type", CONTENT_TYPE)], body).into_response();
        if let Some(code) = &self.query_code {
            let fault = if self.sender_fault() {
                "Sender"
            } else {
                "Receiver"
            };
            if let Ok(v) = HeaderValue::from_str(&format!("{code};{fault}")) {
                resp.headers_mut().insert("x-amzn-query-error", v);
            }
        }
        if let Ok(id) = HeaderValue::from_str(&new_uuid()) {
            resp.headers_mut().insert("x-amzn-requestid", id);
        }
        resp
    }
}

/// Answers one SQS request. `target` is the `X-Amz-Target` header (with or
/// without [`TARGET_PREFIX`]); `body` the request body. Every response carries
/// `x-amzn-RequestId`.
pub async fn handle(queues: &Arc<Queues>, target: &str, body: &[u8]) -> Response {
    let request_id = new_uuid();
    let action = target.strip_prefix(TARGET_PREFIX).unwrap_or(target);
    let mut resp = match dispatch(queues, action, body).await {
        Ok(value) => (
            StatusCode::OK,
            [("content-type", CONTENT_TYPE)],
            value.to_string(),
        )
            .into_response(),
        Err(e) => {
            tracing::debug!(action, code = e.code(), message = %e.message, "SQS request failed");
            e.into_response()
        }
    };
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", id);
    }
    resp
}

async fn dispatch(q: &Arc<Queues>, action: &str, body: &[u8]) -> Result<Value, SqsError> {
    match action {
        "CreateQueue" => create_queue(q, parse(body)?).await,
        "GetQueueUrl" => get_queue_url(q, parse(body)?).await,
        "ListQueues" => list_queues(q, parse(body)?).await,
        "DeleteQueue" => {
            let r: QueueRequest = parse(body)?;
            q.delete_queue(&queue_name(q, r.queue_url)?).await?;
            Ok(json!({}))
        }
        "PurgeQueue" => {
            let r: QueueRequest = parse(body)?;
            q.purge(&queue_name(q, r.queue_url)?).await?;
            Ok(json!({}))
        }
        "GetQueueAttributes" => get_queue_attributes(q, parse(body)?).await,
        "SetQueueAttributes" => set_queue_attributes(q, parse(body)?).await,
        "SendMessage" => send_message(q, parse(body)?).await,
        "SendMessageBatch" => send_message_batch(q, parse(body)?).await,
        "ReceiveMessage" => receive_message(q, parse(body)?).await,
        "DeleteMessage" => delete_message(q, parse(body)?).await,
        "DeleteMessageBatch" => delete_message_batch(q, parse(body)?).await,
        "ChangeMessageVisibility" => change_message_visibility(q, parse(body)?).await,
        "ChangeMessageVisibilityBatch" => change_message_visibility_batch(q, parse(body)?).await,
        "ListDeadLetterSourceQueues" => list_dead_letter_source_queues(q, parse(body)?).await,
        "TagQueue" => tag_queue(q, parse(body)?).await,
        "UntagQueue" => untag_queue(q, parse(body)?).await,
        "ListQueueTags" => {
            let r: QueueRequest = parse(body)?;
            let tags = q.tags(&queue_name(q, r.queue_url)?).await?;
            Ok(non_empty("Tags", json!(tags), !tags.is_empty()))
        }
        "AddPermission"
        | "RemovePermission"
        | "StartMessageMoveTask"
        | "CancelMessageMoveTask"
        | "ListMessageMoveTasks" => Err(QueueError::UnsupportedOperation {
            operation: action.to_string(),
        }
        .into()),
        other => Err(SqsError::coral(
            "UnknownOperationException",
            format!("Unknown operation {other}: X-Amz-Target must be {TARGET_PREFIX}<Action>."),
        )),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, SqsError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        SqsError::coral(
            "SerializationException",
            format!("Cannot parse the request body: {e}"),
        )
    })
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, SqsError> {
    value.ok_or_else(|| {
        QueueError::MissingParameter {
            name: name.to_string(),
        }
        .into()
    })
}

fn queue_name(q: &Queues, url: Option<String>) -> Result<String, SqsError> {
    Ok(q.name_from_url(&required(url, "QueueUrl")?)?)
}

/// An integer parameter within a range.
fn ranged(name: &str, value: Option<i64>, min: i64, max: i64) -> Result<Option<u32>, SqsError> {
    match value {
        None => Ok(None),
        Some(v) if (min..=max).contains(&v) => Ok(Some(v as u32)),
        Some(v) => Err(QueueError::param(
            name,
            v,
            format!("Must be between {min} and {max}, if provided."),
        )
        .into()),
    }
}

/// `{key: value}` when `present`, else `{}` (SQS leaves empty members out).
fn non_empty(key: &str, value: Value, present: bool) -> Value {
    let mut m = Map::new();
    if present {
        m.insert(key.to_string(), value);
    }
    Value::Object(m)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueueRequest {
    queue_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateQueueRequest {
    queue_name: Option<String>,
    #[serde(default)]
    attributes: HashMap<String, String>,
    #[serde(default, rename = "tags")]
    tags: HashMap<String, String>,
}

async fn create_queue(q: &Queues, r: CreateQueueRequest) -> Result<Value, SqsError> {
    let name = required(r.queue_name, "QueueName")?;
    let url = q.create_queue(&name, &r.attributes, &r.tags).await?;
    Ok(json!({ "QueueUrl": url }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetQueueUrlRequest {
    queue_name: Option<String>,
    #[serde(rename = "QueueOwnerAWSAccountId")]
    owner: Option<String>,
}

async fn get_queue_url(q: &Queues, r: GetQueueUrlRequest) -> Result<Value, SqsError> {
    let name = required(r.queue_name, "QueueName")?;
    let other_account = r.owner.is_some_and(|o| o != q.account());
    if other_account || !q.exists(&name).await? {
        return Err(QueueError::QueueDoesNotExist { name }.into());
    }
    Ok(json!({ "QueueUrl": q.url(&name) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRequest {
    queue_url: Option<String>,
    queue_name_prefix: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

/// One page of names: those after the token, at most `max_results`; a token for
/// the next page when `max_results` was given and more remain.
fn page(
    names: Vec<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
) -> Result<(Vec<String>, Option<String>), SqsError> {
    let max = ranged("MaxResults", max_results, 1, MAX_LIST_RESULTS as i64)?;
    let after = match next_token.filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            B64.decode(&t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| QueueError::param("NextToken", &t, "Invalid token."))?,
        ),
    };
    let mut rest: Vec<String> = names
        .into_iter()
        .filter(|n| match &after {
            Some(a) => n > a,
            None => true,
        })
        .collect();
    let limit = max.map(|m| m as usize).unwrap_or(MAX_LIST_RESULTS);
    let more = rest.len() > limit;
    rest.truncate(limit);
    let token = (more && max.is_some())
        .then(|| rest.last().map(|n| B64.encode(n)))
        .flatten();
    Ok((rest, token))
}

async fn list_queues(q: &Queues, r: ListRequest) -> Result<Value, SqsError> {
    let names = q.list_queues(r.queue_name_prefix.as_deref()).await?;
    let (names, token) = page(names, r.max_results, r.next_token)?;
    let urls: Vec<String> = names.iter().map(|n| q.url(n)).collect();
    let mut out = non_empty("QueueUrls", json!(urls), !urls.is_empty());
    if let Some(t) = token {
        out["NextToken"] = t.into();
    }
    Ok(out)
}

async fn list_dead_letter_source_queues(q: &Queues, r: ListRequest) -> Result<Value, SqsError> {
    let names = q.dead_letter_sources(&queue_name(q, r.queue_url)?).await?;
    let (names, token) = page(names, r.max_results, r.next_token)?;
    let urls: Vec<String> = names.iter().map(|n| q.url(n)).collect();
    let mut out = json!({ "queueUrls": urls });
    if let Some(t) = token {
        out["NextToken"] = t.into();
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributesRequest {
    queue_url: Option<String>,
    #[serde(default)]
    attribute_names: Vec<String>,
    attributes: Option<HashMap<String, String>>,
}

async fn get_queue_attributes(q: &Queues, r: AttributesRequest) -> Result<Value, SqsError> {
    let name = queue_name(q, r.queue_url)?;
    let attrs = q.get_attributes(&name, &r.attribute_names).await?;
    Ok(non_empty("Attributes", json!(attrs), !attrs.is_empty()))
}

async fn set_queue_attributes(q: &Queues, r: AttributesRequest) -> Result<Value, SqsError> {
    let name = queue_name(q, r.queue_url)?;
    let attrs = required(r.attributes, "Attributes")?;
    q.set_attributes(&name, &attrs).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagRequest {
    queue_url: Option<String>,
    tags: Option<HashMap<String, String>>,
    tag_keys: Option<Vec<String>>,
}

async fn tag_queue(q: &Queues, r: TagRequest) -> Result<Value, SqsError> {
    let name = queue_name(q, r.queue_url)?;
    q.tag(&name, &required(r.tags, "Tags")?).await?;
    Ok(json!({}))
}

async fn untag_queue(q: &Queues, r: TagRequest) -> Result<Value, SqsError> {
    let name = queue_name(q, r.queue_url)?;
    q.untag(&name, &required(r.tag_keys, "TagKeys")?).await?;
    Ok(json!({}))
}

/// `MessageAttributeValue` on the wire; binary values are base64.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireAttribute {
    data_type: Option<String>,
    string_value: Option<String>,
    binary_value: Option<String>,
    #[serde(default)]
    string_list_values: Vec<Value>,
    #[serde(default)]
    binary_list_values: Vec<Value>,
}

fn from_wire(
    attrs: HashMap<String, WireAttribute>,
    what: &str,
) -> Result<MessageAttributes, QueueError> {
    let mut out = MessageAttributes::new();
    for (name, a) in attrs {
        let bad = |reason: &str| QueueError::InvalidParameters {
            reason: format!("{what} '{name}' {reason}"),
        };
        if !a.string_list_values.is_empty() || !a.binary_list_values.is_empty() {
            return Err(bad("uses StringListValues or BinaryListValues, which SQS reserves and does not implement."));
        }
        let data_type = a.data_type.ok_or_else(|| bad("must contain a DataType."))?;
        let value = if data_type.starts_with("Binary") {
            let b64 = a.binary_value.unwrap_or_default();
            AttributeValue::Binary(
                B64.decode(b64.as_bytes())
                    .map_err(|_| bad("has a BinaryValue that is not base64."))?,
            )
        } else {
            AttributeValue::String(a.string_value.unwrap_or_default())
        };
        out.insert(name, MessageAttribute { data_type, value });
    }
    Ok(out)
}

fn to_wire(attrs: &MessageAttributes) -> Value {
    let m: Map<String, Value> = attrs
        .iter()
        .map(|(k, a)| {
            let v = match &a.value {
                AttributeValue::String(s) => json!({ "DataType": a.data_type, "StringValue": s }),
                AttributeValue::Binary(b) => {
                    json!({ "DataType": a.data_type, "BinaryValue": B64.encode(b) })
                }
            };
            (k.clone(), v)
        })
        .collect();
    Value::Object(m)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendEntry {
    id: Option<String>,
    message_body: Option<String>,
    delay_seconds: Option<i64>,
    #[serde(default)]
    message_attributes: HashMap<String, WireAttribute>,
    #[serde(default)]
    message_system_attributes: HashMap<String, WireAttribute>,
    message_deduplication_id: Option<String>,
    message_group_id: Option<String>,
}

impl SendEntry {
    fn into_message(self) -> Result<SendMessage, SqsError> {
        let body = required(self.message_body, "MessageBody")?;
        let delay_seconds = ranged("DelaySeconds", self.delay_seconds, 0, 900)?;
        Ok(SendMessage {
            body,
            attributes: from_wire(self.message_attributes, "Message attribute")?,
            system_attributes: from_wire(
                self.message_system_attributes,
                "Message system attribute",
            )?,
            delay_seconds,
            group_id: self.message_group_id,
            deduplication_id: self.message_deduplication_id,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendRequest {
    queue_url: Option<String>,
    #[serde(flatten)]
    entry: SendEntry,
}

fn sent_json(sent: &crate::queue::Sent, id: Option<&str>) -> Value {
    let mut v = json!({
        "MessageId": sent.message_id,
        "MD5OfMessageBody": sent.md5_of_body,
    });
    if let Some(id) = id {
        v["Id"] = id.into();
    }
    if let Some(m) = &sent.md5_of_message_attributes {
        v["MD5OfMessageAttributes"] = m.as_str().into();
    }
    if let Some(m) = &sent.md5_of_message_system_attributes {
        v["MD5OfMessageSystemAttributes"] = m.as_str().into();
    }
    if let Some(s) = &sent.sequence_number {
        v["SequenceNumber"] = s.as_str().into();
    }
    v
}

async fn send_message(q: &Queues, r: SendRequest) -> Result<Value, SqsError> {
    let name = queue_name(q, r.queue_url)?;
    let message = r.entry.into_message()?;
    let sent = q.send_message(&name, message).await?;
    Ok(sent_json(&sent, None))
}

/// Checks the entry ids of a batch: 1–10 entries, distinct, well-formed.
fn check_batch_ids<'a>(
    ids: impl ExactSizeIterator<Item = Option<&'a str>>,
    entry: &str,
) -> Result<(), SqsError> {
    let n = ids.len();
    if n == 0 {
        return Err(SqsError::batch(
            "EmptyBatchRequest",
            format!("There should be at least one {entry} in the request."),
        ));
    }
    if n > MAX_BATCH_ENTRIES {
        return Err(SqsError::batch(
            "TooManyEntriesInBatchRequest",
            format!(
                "Maximum number of entries per request are {MAX_BATCH_ENTRIES}. You have sent {n}."
            ),
        ));
    }
    let mut seen = HashSet::new();
    for id in ids {
        let id = required(id, "Id")?;
        let ok = !id.is_empty()
            && id.len() <= 80
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(SqsError::batch(
                "InvalidBatchEntryId",
                format!("A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long: '{id}'."),
            ));
        }
        if !seen.insert(id) {
            return Err(SqsError::batch(
                "BatchEntryIdsNotDistinct",
                format!("Id {id} repeated."),
            ));
        }
    }
    Ok(())
}

fn failed(id: &str, e: SqsError) -> Value {
    json!({
        "Id": id,
        "SenderFault": e.sender_fault(),
        "Code": e.code(),
        "Message": e.message,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendBatchRequest {
    queue_url: Option<String>,
    entries: Option<Vec<SendEntry>>,
}

async fn send_message_batch(q: &Queues, r: SendBatchRequest) -> Result<Value, SqsError> {
    let name = queue_name(q, r.queue_url)?;
    let entries = required(r.entries, "Entries")?;
    check_batch_ids(
        entries.iter().map(|e| e.id.as_deref()),
        "SendMessageBatchRequestEntry",
    )?;
    let mut ids = Vec::with_capacity(entries.len());
    let mut results: Vec<Option<Result<crate::queue::Sent, SqsError>>> = Vec::new();
    let mut to_send = Vec::new();
    for e in entries {
        ids.push(e.id.clone().unwrap_or_default());
        match e.into_message() {
            Ok(m) => {
                to_send.push(m);
                results.push(None);
            }
            Err(err) => results.push(Some(Err(err))),
        }
    }
    let total: usize = to_send
        .iter()
        .map(|m| message_size(&m.body, &m.attributes))
        .sum();
    if total > MAX_BATCH_BYTES {
        return Err(SqsError::batch(
            "BatchRequestTooLong",
            format!("Batch requests cannot be longer than {MAX_BATCH_BYTES} bytes. You have sent {total} bytes."),
        ));
    }
    let mut sent = q.send_batch(&name, to_send).await?.into_iter();
    let mut successful = Vec::new();
    let mut failures = Vec::new();
    for (id, slot) in ids.iter().zip(results) {
        let outcome = match slot {
            Some(r) => r,
            None => sent
                .next()
                .unwrap_or_else(|| {
                    Err(QueueError::InvalidParameters {
                        reason: "not sent".into(),
                    })
                })
                .map_err(SqsError::from),
        };
        match outcome {
            Ok(s) => successful.push(sent_json(&s, Some(id))),
            Err(e) => failures.push(failed(id, e)),
        }
    }
    Ok(json!({ "Successful": successful, "Failed": failures }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveRequest {
    queue_url: Option<String>,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
    #[serde(default)]
    message_attribute_names: Vec<String>,
    max_number_of_messages: Option<i64>,
    visibility_timeout: Option<i64>,
    wait_time_seconds: Option<i64>,
}

async fn receive_message(q: &Queues, r: ReceiveRequest) -> Result<Value, SqsError> {
    let name = queue_name(q, r.queue_url)?;
    let max = ranged("MaxNumberOfMessages", r.max_number_of_messages, 1, 10)?.unwrap_or(1);
    let visibility = ranged("VisibilityTimeout", r.visibility_timeout, 0, 43_200)?;
    let wait = ranged("WaitTimeSeconds", r.wait_time_seconds, 0, 20)?
        .map(|s| Duration::from_secs(s.into()));
    let mut system: Vec<String> = r.attribute_names;
    system.extend(r.message_system_attribute_names);
    if let Some(bad) = system
        .iter()
        .find(|n| !SYSTEM_ATTRIBUTES.contains(&n.as_str()) && !crate::attributes::is_known(n))
    {
        return Err(QueueError::InvalidAttributeName { name: bad.clone() }.into());
    }
    let messages = q.receive(&name, max, visibility, wait).await?;
    let rendered: Vec<Value> = messages
        .into_iter()
        .map(|m| render_message(m, &system, &r.message_attribute_names))
        .collect();
    Ok(non_empty("Messages", json!(rendered), !rendered.is_empty()))
}

/// A received message with the attributes the request asked for; the attribute
/// MD5 covers exactly the message attributes returned, as SQS computes it.
fn render_message(m: Received, system: &[String], wanted: &[String]) -> Value {
    let mut v = json!({
        "MessageId": m.message_id,
        "ReceiptHandle": m.receipt_handle,
        "MD5OfBody": m.md5_of_body,
        "Body": m.body,
    });
    let all = system.iter().any(|n| n == "All");
    let attrs: Map<String, Value> = m
        .attributes
        .into_iter()
        .filter(|(k, _)| all || system.contains(k))
        .map(|(k, val)| (k, Value::String(val)))
        .collect();
    if !attrs.is_empty() {
        v["Attributes"] = Value::Object(attrs);
    }
    let selected = select_attributes(&m.message_attributes, wanted);
    if let Some(md5) = md5_of_attributes(&selected) {
        v["MD5OfMessageAttributes"] = md5.into();
        v["MessageAttributes"] = to_wire(&selected);
    }
    v
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandleEntry {
    id: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandleRequest {
    queue_url: Option<String>,
    #[serde(flatten)]
    entry: HandleEntry,
    entries: Option<Vec<HandleEntry>>,
}

async fn delete_message(q: &Queues, r: HandleRequest) -> Result<Value, SqsError> {
    let name = queue_name(q, r.queue_url)?;
    let handle = required(r.entry.receipt_handle, "ReceiptHandle")?;
    q.delete(&name, &handle).await?;
    Ok(json!({}))
}

async fn change_message_visibility(q: &Queues, r: HandleRequest) -> Result<Value, SqsError> {
    let name = queue_name(q, r.queue_url)?;
    let handle = required(r.entry.receipt_handle, "ReceiptHandle")?;
    let timeout = required(
        ranged("VisibilityTimeout", r.entry.visibility_timeout, 0, 43_200)?,
        "VisibilityTimeout",
    )?;
    q.change_visibility(&name, &handle, timeout).await?;
    Ok(json!({}))
}

/// Runs a batch of receipt-handle entries: entries that fail their own checks
/// are reported without reaching the queue.
async fn handle_batch<F, Fut>(
    q: &Queues,
    r: HandleRequest,
    entry_name: &str,
    check: impl Fn(&HandleEntry) -> Result<(String, u32), SqsError>,
    run: F,
) -> Result<Value, SqsError>
where
    F: FnOnce(String, Vec<(String, u32)>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Result<(), QueueError>>, QueueError>>,
{
    let name = queue_name(q, r.queue_url)?;
    let entries = required(r.entries, "Entries")?;
    check_batch_ids(entries.iter().map(|e| e.id.as_deref()), entry_name)?;
    let mut slots = Vec::with_capacity(entries.len());
    let mut work = Vec::new();
    for e in &entries {
        match check(e) {
            Ok(w) => {
                work.push(w);
                slots.push(None);
            }
            Err(err) => slots.push(Some(err)),
        }
    }
    let mut done = run(name, work).await?.into_iter();
    let mut successful = Vec::new();
    let mut failures = Vec::new();
    for (e, slot) in entries.iter().zip(slots) {
        let id = e.id.as_deref().unwrap_or_default();
        let outcome = match slot {
            Some(err) => Err(err),
            None => done.next().unwrap_or(Ok(())).map_err(SqsError::from),
        };
        match outcome {
            Ok(()) => successful.push(json!({ "Id": id })),
            Err(err) => failures.push(failed(id, err)),
        }
    }
    Ok(json!({ "Successful": successful, "Failed": failures }))
}

async fn delete_message_batch(q: &Queues, r: HandleRequest) -> Result<Value, SqsError> {
    handle_batch(
        q,
        r,
        "DeleteMessageBatchRequestEntry",
        |e| Ok((required(e.receipt_handle.clone(), "ReceiptHandle")?, 0)),
        |name, work| async move {
            let handles = work.into_iter().map(|(h, _)| h).collect();
            Ok(q.delete_batch(&name, handles)
                .await?
                .into_iter()
                .map(|r| r.map(|_| ()))
                .collect())
        },
    )
    .await
}

async fn change_message_visibility_batch(q: &Queues, r: HandleRequest) -> Result<Value, SqsError> {
    handle_batch(
        q,
        r,
        "ChangeMessageVisibilityBatchRequestEntry",
        |e| {
            let handle = required(e.receipt_handle.clone(), "ReceiptHandle")?;
            let timeout = required(
                ranged("VisibilityTimeout", e.visibility_timeout, 0, 43_200)?,
                "VisibilityTimeout",
            )?;
            Ok((handle, timeout))
        },
        |name, work| async move { q.change_visibility_batch(&name, work).await },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_does_not_exist_has_the_documented_wire_shape() {
        let e: SqsError = QueueError::QueueDoesNotExist { name: "q".into() }.into();
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let h = resp.headers();
        assert_eq!(
            h.get("x-amzn-query-error").unwrap(),
            "AWS.SimpleQueueService.NonExistentQueue;Sender"
        );
        assert_eq!(h.get("content-type").unwrap(), CONTENT_TYPE);
        assert!(h.get("x-amzn-requestid").is_some());
    }

    #[test]
    fn store_failures_are_receiver_faults() {
        let e: SqsError = QueueError::Store(crate::store::StoreError::ShutDown).into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.sender_fault());
        let resp = e.into_response();
        assert_eq!(
            resp.headers().get("x-amzn-query-error").unwrap(),
            "InternalError;Receiver"
        );
    }

    #[test]
    fn pages_of_names() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let (p, t) = page(names.clone(), Some(2), None).unwrap();
        assert_eq!(p, ["a", "b"]);
        let (p, t) = page(names.clone(), Some(2), t).unwrap();
        assert_eq!(p, ["c"]);
        assert_eq!(t, None);
        let (p, t) = page(names.clone(), None, None).unwrap();
        assert_eq!((p.len(), t), (3, None));
        assert!(page(names, Some(0), None).is_err());
    }

    #[test]
    fn batch_ids_are_checked() {
        let check = |ids: &[&str]| {
            check_batch_ids(
                ids.iter().map(|s| Some(*s)).collect::<Vec<_>>().into_iter(),
                "E",
            )
            .map_err(|e| e.code().to_string())
        };
        assert_eq!(check(&["a", "b-1", "c_2"]), Ok(()));
        assert_eq!(
            check(&[]).unwrap_err(),
            "AWS.SimpleQueueService.EmptyBatchRequest"
        );
        assert_eq!(
            check(&["a"; 11]).unwrap_err(),
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
        );
        assert_eq!(
            check(&["a", "a"]).unwrap_err(),
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
        );
        assert_eq!(
            check(&["no spaces"]).unwrap_err(),
            "AWS.SimpleQueueService.InvalidBatchEntryId"
        );
    }
}
