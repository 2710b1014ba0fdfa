//! The web dashboard: its page and assets under `/ui` (embedded in the binary; plain
//! HTML, CSS and JavaScript, no build step) and the one endpoint made for it,
//! `GET /stratus/v1/ui/overview` (IAM action `stratus:GetDashboard`), which gathers
//! in one answer what the page shows of every function — versions, aliases,
//! concurrency (reserved, provisioned, in use), counters, environments — with the
//! async backlog, dead-letter counts and queue depths.
//!
//! The page reads everything else from the endpoints other tools use:
//! `/stratus/v1/logs`, `/stratus/v1/dead-letters` (a function's failed async events,
//! or with `?queue=` an SQS dead-letter queue's messages, answered here by
//! [`queue_dead_letters`]), `/stratus/v1/metrics/series` and
//! `/stratus/v1/autoscaling`. Sign-in and the session cookie are `auth/ui.rs`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use serde_json::json;

use super::{json, AppState};
use crate::error::ApiError;

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const APP_CSS: &str = include_str!("../../ui/app.css");
const ICON_SVG: &str = include_str!("../../ui/icon.svg");

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/assets/app.js", get(app_js))
        .route("/ui/assets/app.css", get(app_css))
        .route("/ui/assets/icon.svg", get(icon))
        .route("/stratus/v1/ui/overview", get(overview))
}

/// A static asset with headers that keep the page to its own origin: no inline or
/// foreign script, no framing (clickjacking), no content sniffing.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Assets change with the binary; a revalidation is cheap on loopback.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn icon() -> Response {
    asset("image/svg+xml", ICON_SVG)
}

/// Environments of one pool (a function version).
#[derive(Debug, Default, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
struct Envs {
    total: u32,
    idle: u32,
    busy: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Provisioned {
    qualifier: String,
    requested: u32,
    available: u32,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Version {
    version: String,
    code_sha256: String,
    last_modified: String,
    description: String,
    environments: Envs,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Alias {
    name: String,
    function_version: String,
    /// Extra versions and their weights (weighted aliases).
    additional_versions: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Function {
    name: String,
    arn: String,
    runtime: String,
    handler: String,
    memory_size: u32,
    timeout: u32,
    last_modified: String,
    /// Invocations, errors and throttles since the server started.
    invocations: u64,
    errors: u64,
    throttles: u64,
    avg_duration_ms: Option<f64>,
    /// Concurrency: running now, the reserved ceiling, the provisioned floor.
    concurrent: u32,
    reserved: Option<u32>,
    provisioned_requested: u32,
    provisioned_available: u32,
    environments: Envs,
    versions: Vec<Version>,
    aliases: Vec<Alias>,
    provisioned: Vec<Provisioned>,
    async_pending: u64,
    dead_letters: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Queue {
    name: String,
    visible: u64,
    in_flight: u64,
    delayed: u64,
    /// The queues whose redrive policy sends their failures here.
    dead_letter_for: Vec<String>,
}

/// Pool keys are `{function}\0{version}\0{revision}`: environment counts by
/// (function, version).
fn envs_by_version(s: &AppState) -> BTreeMap<(String, String), Envs> {
    let mut out: BTreeMap<(String, String), Envs> = BTreeMap::new();
    for (key, (total, idle)) in s.scheduler.env_counts() {
        let mut parts = key.split('\0');
        let (Some(f), Some(v)) = (parts.next(), parts.next()) else {
            continue;
        };
        let e = out.entry((f.to_string(), v.to_string())).or_default();
        e.total += total;
        e.idle += idle;
        e.busy += total.saturating_sub(idle);
    }
    out
}

/// Everything the overview says of the functions (blocking: reads the stores).
fn functions(s: &AppState) -> Result<Vec<Function>, ApiError> {
    let envs = envs_by_version(s);
    let mut out = Vec::new();
    let mut latest = s.registry.list();
    latest.sort_by(|a, b| a.function_name.cmp(&b.function_name));
    for c in latest {
        let name = c.function_name.clone();
        // A function deleted while this runs is left out, not an error.
        let (Some(snap), Ok(versions)) = (s.registry.snapshot(&name), s.registry.versions(&name))
        else {
            continue;
        };
        let m = s.scheduler.metrics(&name);
        let mut fn_envs = Envs::default();
        let versions: Vec<Version> = versions
            .into_iter()
            .map(|v| {
                let e = envs
                    .get(&(name.clone(), v.version.clone()))
                    .copied()
                    .unwrap_or_default();
                fn_envs.total += e.total;
                fn_envs.idle += e.idle;
                fn_envs.busy += e.busy;
                Version {
                    version: v.version,
                    code_sha256: v.code_sha256,
                    last_modified: v.last_modified,
                    description: v.description,
                    environments: e,
                }
            })
            .collect();
        let aliases = snap
            .aliases
            .values()
            .map(|a| Alias {
                name: a.name.clone(),
                function_version: a.function_version.clone(),
                additional_versions: a
                    .routing_config
                    .as_ref()
                    .map(|r| r.additional_version_weights.clone().into_iter().collect())
                    .unwrap_or_default(),
            })
            .collect();
        let provisioned: Vec<Provisioned> = snap
            .provisioned
            .keys()
            .filter_map(|q| {
                let (st, _) = s.registry.get_provisioned(&name, Some(q)).ok()?;
                Some(Provisioned {
                    qualifier: q.clone(),
                    requested: st.requested,
                    available: st.available,
                    status: st.status,
                    reason: st.reason,
                })
            })
            .collect();
        // A blocking thread (see the caller): it may wait on the runtime.
        let async_pending = tokio::runtime::Handle::current()
            .block_on(s.events.pending(Some(&name)))
            .map_err(|e| ApiError::service(format!("cannot read the event queue: {e}")))?;
        let dead_letters = s
            .events
            .dead_letter_count(Some(&name))
            .map_err(|e| ApiError::service(format!("cannot read dead letters: {e}")))?;
        out.push(Function {
            arn: c.function_arn,
            runtime: c.runtime,
            handler: c.handler,
            memory_size: c.memory_size,
            timeout: c.timeout,
            last_modified: c.last_modified,
            invocations: m.invocations,
            errors: m.errors,
            throttles: m.throttles,
            avg_duration_ms: (m.invocations > 0)
                .then(|| m.duration_ms_total / m.invocations as f64),
            concurrent: m.concurrent,
            reserved: snap.reserved,
            provisioned_requested: provisioned.iter().map(|p| p.requested).sum(),
            provisioned_available: provisioned.iter().map(|p| p.available).sum(),
            environments: fn_envs,
            versions,
            aliases,
            provisioned,
            async_pending,
            dead_letters,
            name,
        });
    }
    Ok(out)
}

async fn queues(s: &AppState) -> Result<Vec<Queue>, ApiError> {
    let err = |e: stratus_queue::QueueError| ApiError::service(format!("cannot read queues: {e}"));
    let mut out = Vec::new();
    for name in s.queues.list_queues(None).await.map_err(err)? {
        // A queue deleted meanwhile is left out.
        let Ok(d) = s.queues.depth(&name).await else {
            continue;
        };
        let dead_letter_for = s
            .queues
            .dead_letter_sources(&name)
            .await
            .unwrap_or_default();
        out.push(Queue {
            name,
            visible: d.visible,
            in_flight: d.in_flight,
            delayed: d.delayed,
            dead_letter_for,
        });
    }
    Ok(out)
}

/// Messages one SQS dead-letter read returns unless `limit` says otherwise.
const QUEUE_DEAD_LETTERS: u32 = 20;

/// `GET /stratus/v1/dead-letters?queue=NAME[&limit=N]` (routed by `native.rs`; IAM
/// action `stratus:ListDeadLetters`, as for a function's dead letters): the oldest
/// messages of an SQS queue that some queue's redrive policy targets, read with
/// [`stratus_queue::Queues::peek`] — nothing is received, counted or moved.
pub(super) async fn queue_dead_letters(s: &AppState, queue: &str, limit: Option<u32>) -> Response {
    let limit = limit.unwrap_or(QUEUE_DEAD_LETTERS);
    if !(1..=stratus_queue::queue::MAX_PEEK_MESSAGES).contains(&limit) {
        return ApiError::validation(
            &limit.to_string(),
            "limit",
            &format!(
                "Member must be between 1 and {}",
                stratus_queue::queue::MAX_PEEK_MESSAGES
            ),
        )
        .into_response();
    }
    let read = async {
        let sources = s.queues.dead_letter_sources(queue).await?;
        if sources.is_empty() {
            return Ok(None);
        }
        let peek = s.queues.peek(queue, limit).await?;
        Ok::<_, stratus_queue::QueueError>(Some((sources, peek)))
    };
    let (sources, peek) = match read.await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return ApiError::invalid(format!(
                "Queue {queue} is not a dead-letter queue: no queue's RedrivePolicy names it as deadLetterTargetArn."
            ))
            .into_response()
        }
        Err(e @ stratus_queue::QueueError::QueueDoesNotExist { .. }) => {
            return ApiError::not_found(e.to_string()).into_response()
        }
        Err(e) => {
            return ApiError::service(format!("cannot read queue {queue}: {e}")).into_response()
        }
    };
    let messages: Vec<serde_json::Value> = peek.messages.iter().map(peeked_json).collect();
    json(
        StatusCode::OK,
        &json!({
            "queue": queue,
            "queueArn": s.queues.arn(queue),
            "deadLetterFor": sources,
            "visible": peek.depth.visible,
            "inFlight": peek.depth.in_flight,
            "delayed": peek.depth.delayed,
            "messages": messages,
        }),
    )
}

fn peeked_json(m: &stratus_queue::Peeked) -> serde_json::Value {
    use base64::Engine as _;
    let attributes: serde_json::Map<String, serde_json::Value> = m
        .message_attributes
        .iter()
        .map(|(name, a)| {
            let value = match &a.value {
                stratus_queue::AttributeValue::String(v) => {
                    json!({ "DataType": a.data_type, "StringValue": v })
                }
                stratus_queue::AttributeValue::Binary(b) => json!({
                    "DataType": a.data_type,
                    "BinaryValue": base64::engine::general_purpose::STANDARD.encode(b),
                }),
            };
            (name.clone(), value)
        })
        .collect();
    json!({
        "messageId": m.message_id,
        "body": m.body,
        "messageAttributes": attributes,
        "sentTimestamp": m.sent_timestamp,
        "receiveCount": m.receive_count,
        "firstReceiveTimestamp": m.first_receive_timestamp,
        "state": m.state.as_str(),
        "visibleFrom": m.visible_from,
        "deadLetterQueueSourceArn": m.dead_letter_source_arn,
        "messageGroupId": m.message_group_id,
    })
}

/// `GET /stratus/v1/ui/overview`.
async fn overview(
    State(s): State<AppState>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
) -> Response {
    let r = async {
        let fns = s.off_async(functions).await?;
        let queues = queues(&s).await?;
        let pending = s
            .events
            .pending(None)
            .await
            .map_err(|e| ApiError::service(format!("cannot read the event queue: {e}")))?;
        Ok::<_, ApiError>((fns, queues, pending))
    }
    .await;
    let (fns, queues, pending) = match r {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let settings = s.scheduler.settings();
    let in_use: u32 = fns.iter().map(|f| f.concurrent).sum();
    let reserved: u32 = fns.iter().filter_map(|f| f.reserved).sum();
    let who = principal.map(|axum::Extension(p)| p);
    json(
        StatusCode::OK,
        &json!({
            "generatedAt": time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
            "principal": {
                "user": who.as_ref().map_or("anonymous", |p| p.name.as_str()),
                "accessKeyId": who.as_ref().map(|p| p.access_key_id.as_str()).filter(|k| !k.is_empty()),
            },
            "account": {
                "concurrencyLimit": settings.account_concurrency,
                "unreservedMinimum": settings.unreserved_minimum,
                "reserved": reserved,
                "inUse": in_use,
                "environments": s.scheduler.total_envs(),
            },
            "asyncPending": pending,
            "functions": fns,
            "queues": queues,
        }),
    )
}
