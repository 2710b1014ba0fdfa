//! SQS event source mappings: `events: - sqs: {arn, batchSize, maximumBatchingWindow,
//! functionResponseType, enabled}` of deployed functions.
//!
//! Each enabled mapping has pollers that long-poll the built-in queue for up to
//! `batchSize` messages (at most 10 per receive, so larger batches gather several
//! receives within `maximumBatchingWindow`) and invoke the function synchronously
//! with Lambda's SQS event (`{"Records":[{messageId, receiptHandle, body, attributes,
//! messageAttributes, md5OfBody, eventSource:"aws:sqs", eventSourceARN, awsRegion}]}`).
//! Success deletes the batch; a function error (or a throttle) leaves it to become
//! visible again after the visibility timeout, so the queue's redrive policy decides
//! when a message is dead-lettered; with `ReportBatchItemFailures` only the messages
//! the function lists in `batchItemFailures` stay (the whole batch when that list
//! cannot be read, as Lambda does: see [`batch_item_failures`]). Pollers scale with the queue's
//! depth (one per full batch waiting, up to five per mapping), within the
//! function's concurrency limits (a throttled batch simply waits).
//!
//! In a cluster (queues in PostgreSQL) each mapping is polled by one node: the
//! owner that rendezvous hashing of the mapping's key picks among the healthy
//! nodes (`cluster::pollers`, which calls [`Mappings::set_members`] whenever that
//! list changes). A single node polls every mapping, as before.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{json, Value};
use stratus_manifest::model::Event;
use stratus_queue::{Queues, Received};
use stratus_scheduler::{InvokeRequest, Scheduler};
use tokio::task::JoinHandle;

use crate::model::new_uuid;
use crate::registry::Registry;
use crate::store::FunctionEvents;

/// Most pollers one mapping runs.
const MAX_POLLERS: usize = 5;

#[derive(Debug, Clone, PartialEq)]
struct Mapping {
    function: String,
    queue: String,
    queue_arn: String,
    batch_size: u32,
    window: Duration,
    report_failures: bool,
}

/// A mapping and the task running it.
type Running = (Mapping, Vec<JoinHandle<()>>);

/// The running pollers.
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    running: Arc<Mutex<HashMap<String, Running>>>,
    /// Cluster mode: this node's id and the healthy nodes the mappings are shared
    /// out over, and what the last reload wanted (re-applied when they change).
    shared: Arc<Mutex<Sharing>>,
}

/// What sharing the mappings out across nodes needs.
#[derive(Debug, Default)]
struct Sharing {
    /// This node's id and the healthy nodes (cluster mode; `None`: poll all).
    members: Option<(String, Vec<String>)>,
    /// The last reload's mappings (all of them, owned or not).
    last: Option<Reloaded>,
}

/// A reload's mappings and what starting their pollers takes.
#[derive(Debug, Clone)]
struct Reloaded {
    wanted: HashMap<String, Mapping>,
    registry: Arc<Registry>,
    queues: Arc<Queues>,
    scheduler: Scheduler,
}

impl Sharing {
    /// The mappings of `wanted` this node polls.
    fn owned(&self, wanted: HashMap<String, Mapping>) -> HashMap<String, Mapping> {
        let Some((me, members)) = &self.members else {
            return wanted;
        };
        wanted
            .into_iter()
            .filter(|(key, _)| crate::cluster::pollers::owner(key, members) == Some(me.as_str()))
            .collect()
    }
}

impl Mappings {
    /// How many mappings have pollers running.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running.lock().len()
    }

    /// Starts, keeps or stops pollers to match the deployed functions' `sqs`
    /// events and the mappings made through the Lambda API, both as
    /// `Triggers::reload` read them from the store.
    pub(crate) fn reload(
        &self,
        registry: &Arc<Registry>,
        all_events: &[FunctionEvents],
        api_mappings: &[Value],
        queues: &Arc<Queues>,
        scheduler: &Scheduler,
    ) {
        let mut wanted = HashMap::new();
        for (function, events, _) in all_events {
            for ev in events {
                let Event::Sqs(s) = ev else { continue };
                if !s.enabled {
                    continue;
                }
                let Some(arn) = s.arn.as_str() else { continue };
                // One account per server: an SQS ARN naming another region or account
                // id still means the queue of that name here.
                let queue = queues.name_from_arn(arn).or_else(|| {
                    arn.strip_prefix("arn:aws:sqs:")
                        .and_then(|r| r.rsplit(':').next())
                        .map(str::to_string)
                });
                let Some(queue) = queue else {
                    tracing::warn!(function, arn, "sqs event: not a queue of this server");
                    continue;
                };
                let m = Mapping {
                    function: function.clone(),
                    queue_arn: queues.arn(&queue),
                    queue,
                    batch_size: s.batch_size.max(1),
                    window: Duration::from_secs(u64::from(s.maximum_batching_window.unwrap_or(0))),
                    report_failures: s.function_response_type.as_deref()
                        == Some("ReportBatchItemFailures"),
                };
                wanted.insert(format!("{function}\0{arn}"), m);
            }
        }
        for m in api_mappings {
            if m["State"] != "Enabled" {
                continue;
            }
            let (Some(function), Some(arn)) =
                (m["FunctionName"].as_str(), m["EventSourceArn"].as_str())
            else {
                continue;
            };
            let Some(queue) = queues.name_from_arn(arn) else {
                continue;
            };
            let mapping = Mapping {
                function: function.to_string(),
                queue_arn: queues.arn(&queue),
                queue,
                batch_size: m["BatchSize"].as_u64().unwrap_or(10) as u32,
                window: Duration::from_secs(
                    m["MaximumBatchingWindowInSeconds"].as_u64().unwrap_or(0),
                ),
                report_failures: m["FunctionResponseTypes"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "ReportBatchItemFailures")),
            };
            wanted.insert(
                format!(
                    "{function}\0{arn}\0{}",
                    m["UUID"].as_str().unwrap_or_default()
                ),
                mapping,
            );
        }
        // Held while applying, so a membership change cannot interleave with a
        // reload and leave the pollers of the older of the two running.
        let mut shared = self.shared.lock();
        shared.last = Some(Reloaded {
            wanted: wanted.clone(),
            registry: registry.clone(),
            queues: queues.clone(),
            scheduler: scheduler.clone(),
        });
        let wanted = shared.owned(wanted);
        self.apply(
            wanted,
            registry,
            queues,
            scheduler,
            shared.members.is_some(),
        );
    }

    /// Cluster mode: from now on poll only the mappings that rendezvous hashing
    /// gives this node (`me`) among the healthy `members`; re-shares the last
    /// reload's mappings at once.
    pub(crate) fn set_members(&self, me: &str, members: Vec<String>) {
        let mut shared = self.shared.lock();
        shared.members = Some((me.to_string(), members));
        if let Some(last) = shared.last.clone() {
            let wanted = shared.owned(last.wanted);
            self.apply(wanted, &last.registry, &last.queues, &last.scheduler, true);
        }
    }

    /// Starts, keeps or stops pollers to match `wanted`.
    fn apply(
        &self,
        wanted: HashMap<String, Mapping>,
        registry: &Arc<Registry>,
        queues: &Arc<Queues>,
        scheduler: &Scheduler,
        // In a cluster, say which node polls what (operators and tests read it).
        shared: bool,
    ) {
        let mut running = self.running.lock();
        running.retain(|key, (m, handles)| {
            let keep = wanted.get(key) == Some(m);
            if !keep {
                for h in handles.iter() {
                    h.abort();
                }
                if shared {
                    tracing::info!(function = %m.function, queue = %m.queue, "sqs poller stopped on this node");
                }
            }
            keep
        });
        for (key, m) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            if shared {
                tracing::info!(function = %m.function, queue = %m.queue, "sqs poller started on this node");
            }
            let supervisor = tokio::spawn(supervise(
                m.clone(),
                registry.clone(),
                queues.clone(),
                scheduler.clone(),
            ));
            running.insert(key, (m, vec![supervisor]));
        }
    }
}

/// Runs one poller, adding more while full batches wait, removing them when idle.
async fn supervise(m: Mapping, registry: Arc<Registry>, queues: Arc<Queues>, scheduler: Scheduler) {
    // Dropped (and so every poller aborted) when this supervisor is aborted.
    let mut guard = AbortOnDrop(Vec::new());
    let pollers = &mut guard.0;
    loop {
        pollers.retain(|p| !p.is_finished());
        let depth = queues.depth(&m.queue).await.map(|d| d.visible).unwrap_or(0);
        let want = ((depth as usize).div_ceil(m.batch_size as usize)).clamp(1, MAX_POLLERS);
        while pollers.len() < want {
            pollers.push(tokio::spawn(poll(
                m.clone(),
                registry.clone(),
                queues.clone(),
                scheduler.clone(),
            )));
        }
        while pollers.len() > want {
            if let Some(p) = pollers.pop() {
                p.abort();
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if scheduler.is_shut_down() {
            return;
        }
    }
}

/// Aborts the pollers with their supervisor.
struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

async fn poll(m: Mapping, registry: Arc<Registry>, queues: Arc<Queues>, scheduler: Scheduler) {
    loop {
        if scheduler.is_shut_down() {
            return;
        }
        let batch = gather(&m, &queues).await;
        if batch.is_empty() {
            continue;
        }
        let resolved = match registry.resolve(&m.function, None) {
            Ok(r) => r,
            Err(e) => {
                // The batch becomes visible again after the visibility timeout.
                tracing::warn!(function = %m.function, error = %e.message, "sqs poller: cannot invoke");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let event = sqs_event(&m, &batch, &registry.identity.region);
        let req = InvokeRequest {
            request_id: Arc::from(new_uuid()),
            payload: Bytes::from(event.to_string()),
            invoked_arn: resolved.invoked_arn.clone(),
            client_context: None,
            tail: false,
            trace_id: None,
        };
        match scheduler.invoke(&resolved.spec, req).await {
            Ok(out) if !out.function_error => {
                let failed = if m.report_failures {
                    let ids: Vec<&str> = batch.iter().map(|msg| msg.message_id.as_str()).collect();
                    batch_item_failures(&out.payload, &ids).unwrap_or_else(|why| {
                        tracing::warn!(function = %m.function, why, "sqs poller: unreadable partial batch response, the whole batch is retried");
                        ids.iter().map(|id| id.to_string()).collect()
                    })
                } else {
                    Vec::new()
                };
                for msg in batch.iter().filter(|msg| !failed.contains(&msg.message_id)) {
                    if let Err(e) = queues.delete(&m.queue, &msg.receipt_handle).await {
                        tracing::warn!(error = %e, "cannot delete a processed message");
                    }
                }
            }
            // A function error or a throttle: the batch becomes visible again after
            // the visibility timeout; the redrive policy applies as for any consumer.
            Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Receives up to `batch_size` messages, waiting up to the batching window (or a
/// 20 s long poll for the first message).
async fn gather(m: &Mapping, queues: &Queues) -> Vec<Received> {
    let mut batch = Vec::new();
    let deadline = tokio::time::Instant::now() + m.window;
    loop {
        let want = (m.batch_size as usize - batch.len()).min(10) as u32;
        let wait = if batch.is_empty() {
            Duration::from_secs(20)
        } else {
            deadline.saturating_duration_since(tokio::time::Instant::now())
        };
        match queues.receive(&m.queue, want, None, Some(wait)).await {
            Ok(mut got) => {
                let empty = got.is_empty();
                batch.append(&mut got);
                if empty
                    || batch.len() >= m.batch_size as usize
                    || tokio::time::Instant::now() >= deadline
                {
                    return batch;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, queue = %m.queue, "cannot receive");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return batch;
            }
        }
    }
}

/// Lambda's SQS event.
fn sqs_event(m: &Mapping, batch: &[Received], region: &str) -> Value {
    let records: Vec<Value> = batch
        .iter()
        .map(|msg| {
            let attrs: serde_json::Map<String, Value> = msg
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            json!({
                "messageId": msg.message_id,
                "receiptHandle": msg.receipt_handle,
                "body": msg.body,
                "attributes": attrs,
                "messageAttributes": message_attributes(&msg.message_attributes),
                "md5OfBody": msg.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": m.queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Message attributes in the event's form (`stringValue`/`binaryValue` (base64),
/// `dataType`).
fn message_attributes(attrs: &stratus_queue::MessageAttributes) -> Value {
    use base64::Engine as _;
    let out: serde_json::Map<String, Value> = attrs
        .iter()
        .map(|(k, a)| {
            let mut o =
                json!({ "stringListValues": [], "binaryListValues": [], "dataType": a.data_type });
            match &a.value {
                stratus_queue::AttributeValue::String(s) => {
                    o["stringValue"] = Value::String(s.clone())
                }
                stratus_queue::AttributeValue::Binary(b) => {
                    o["binaryValue"] =
                        Value::String(base64::engine::general_purpose::STANDARD.encode(b))
                }
            }
            (k.clone(), o)
        })
        .collect();
    Value::Object(out)
}

/// The messages a `ReportBatchItemFailures` response
/// (`{"batchItemFailures":[{"itemIdentifier":"<messageId>"}]}`) leaves on the
/// queue, by Lambda's rules: none when it reports no failure (a result that is not
/// an object, or no, a null or an empty `batchItemFailures`); the ones listed. `Err`
/// (so the whole batch stays) when it cannot be read: not JSON,
/// `batchItemFailures` not a list, an entry without a non-empty string
/// `itemIdentifier`, or one naming no message of the batch (`ids`).
fn batch_item_failures(payload: &[u8], ids: &[&str]) -> Result<Vec<String>, String> {
    let v = serde_json::from_slice::<Value>(payload)
        .map_err(|e| format!("the response is not JSON: {e}"))?;
    let list = match v.get("batchItemFailures") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err("`batchItemFailures` is not a list".into()),
    };
    list.iter()
        .map(|f| match f.get("itemIdentifier") {
            Some(Value::String(id)) if ids.contains(&id.as_str()) => Ok(id.clone()),
            Some(Value::String(id)) if !id.is_empty() => {
                Err(format!("`{id}` is not a message of the batch"))
            }
            _ => Err(format!("{f} has no `itemIdentifier`")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_item_failures_are_read() {
        let ids = ["a", "b", "c"];
        let p = br#"{"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"b"}]}"#;
        assert_eq!(
            batch_item_failures(p, &ids),
            Ok(vec!["a".into(), "b".into()])
        );
        // No failure reported: every message is done.
        for ok in [
            "null",
            "{}",
            r#""done""#,
            r#"{"batchItemFailures":null}"#,
            r#"{"batchItemFailures":[]}"#,
        ] {
            assert_eq!(batch_item_failures(ok.as_bytes(), &ids), Ok(vec![]), "{ok}");
        }
        // Unreadable: the whole batch is retried, never silently deleted.
        for bad in [
            "not json",
            r#"{"batchItemFailures":"a"}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"itemId":"a"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":7}]}"#,
        ] {
            assert!(batch_item_failures(bad.as_bytes(), &ids).is_err(), "{bad}");
        }
    }
}
