//! Stratus's own API under `/stratus/v1`: health, logs for the CLI.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::{json, AppState};
use crate::error::ApiError;

/// `/stratus/v1/logs` in a cluster: every node's lines, merged.
#[path = "native_cluster.rs"]
mod cluster;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/stratus/v1/health", get(health))
        .route("/stratus/v1/logs", get(logs))
        .route("/stratus/v1/metrics", get(metrics))
        .route("/stratus/v1/dead-letters", get(dead_letters))
        .route("/stratus/v1/async", get(async_pending))
}

async fn health(State(s): State<AppState>) -> Response {
    let sandbox = s.scheduler.sandbox();
    json(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "environments": s.scheduler.total_envs(),
            "logLinesDropped": s.logs.dropped_total(),
            "sandbox": {
                "driver": sandbox.driver,
                "isolated": sandbox.isolated,
                "cgroup": sandbox.cgroup,
                "seccomp": sandbox.seccomp,
                "egress": sandbox.egress,
                "egressInUse": sandbox.egress_in_use,
                "pinnedEnvironments": sandbox.pinned,
            },
            "awsSdk": s.registry.runtimes().aws_sdk().map(|a| a.health()),
            "runtimes": s.registry.runtimes().interpreters().health(),
        }),
    )
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    /// Log group, e.g. `/aws/lambda/hello`; or `function` for the function's group.
    group: Option<String>,
    function: Option<String>,
    /// Return events with id greater than this (for tailing): the `nextToken` of
    /// the previous answer (a number on a single node, a cursor in a cluster).
    after: Option<String>,
    /// Epoch milliseconds.
    start: Option<i64>,
    filter: Option<String>,
    limit: Option<u32>,
    /// In a cluster: where each node's lines go on (the `cursor` of the previous
    /// answer), instead of `after`.
    cursor: Option<String>,
}

/// CloudWatch Logs' rule for group names: 1–512 of `[.\-_/#A-Za-z0-9]`.
fn is_log_group(name: &str) -> bool {
    (1..=512).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_/#".contains(&b))
}

async fn logs(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(mut q): Query<LogQuery>,
) -> Response {
    let group = match (q.group.take(), q.function.take()) {
        (Some(g), _) if !is_log_group(&g) => {
            return ApiError::validation(
                &g,
                "logGroupName",
                "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
            )
            .into_response()
        }
        (Some(g), _) => g,
        (None, Some(f)) => match crate::registry::parse_function_ref(&f) {
            Ok((name, _)) => format!("/aws/lambda/{name}"),
            Err(e) => return e.into_response(),
        },
        (None, None) => {
            return ApiError::invalid("give ?group=/aws/lambda/NAME or ?function=NAME")
                .into_response()
        }
    };
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    if s.peers.is_cluster() && !crate::cluster::peers::is_local(&headers) {
        return cluster::logs(s, group, q, limit).await;
    }
    let after = match q.after.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return ApiError::invalid("after: not the nextToken of an earlier answer (a number)")
                .into_response()
        }
    };
    let logs = s.logs.clone();
    let r = tokio::task::spawn_blocking(move || {
        logs.query(
            &group,
            after.unwrap_or(0),
            q.start,
            q.filter.as_deref(),
            limit,
        )
    })
    .await;
    match r {
        Ok(Ok(events)) => {
            let next = events.last().map(|e| e.id).or(after).unwrap_or(0);
            json(
                StatusCode::OK,
                &json!({ "events": events, "nextToken": next }),
            )
        }
        Ok(Err(e)) => ApiError::service(format!("cannot read logs: {e}")).into_response(),
        Err(e) => ApiError::service(format!("cannot read logs: {e}")).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct MetricsQuery {
    function: String,
}

/// Counters of one function since the server started.
async fn metrics(State(s): State<AppState>, Query(q): Query<MetricsQuery>) -> Response {
    json(StatusCode::OK, &s.scheduler.metrics(&q.function))
}

#[derive(Debug, Deserialize)]
struct FunctionQuery {
    function: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DeadLetterQuery {
    function: Option<String>,
    queue: Option<String>,
    limit: Option<u32>,
}

/// Events that failed asynchronous delivery (retries exhausted, too old, function
/// gone), or with `?queue=` the messages of an SQS dead-letter queue (`api/ui.rs`).
async fn dead_letters(State(s): State<AppState>, Query(q): Query<DeadLetterQuery>) -> Response {
    let function = match (q.function, q.queue) {
        (Some(_), Some(_)) => {
            return ApiError::invalid("give ?function=NAME or ?queue=NAME, not both")
                .into_response()
        }
        (None, Some(queue)) => return super::ui::queue_dead_letters(&s, &queue, q.limit).await,
        (Some(function), None) => function,
        (None, None) => {
            return ApiError::invalid(
                "give ?function=NAME (a function's failed async events) or ?queue=NAME (an SQS dead-letter queue's messages)",
            )
            .into_response()
        }
    };
    let events = s.events.clone();
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    match tokio::task::spawn_blocking(move || events.dead_letters(&function, limit)).await {
        Ok(Ok(list)) => json(StatusCode::OK, &json!({ "deadLetters": list })),
        Ok(Err(e)) => ApiError::service(format!("cannot read dead letters: {e}")).into_response(),
        Err(e) => ApiError::service(format!("cannot read dead letters: {e}")).into_response(),
    }
}

/// Asynchronous events waiting for delivery or a retry.
async fn async_pending(State(s): State<AppState>, Query(q): Query<FunctionQuery>) -> Response {
    match s.events.pending(q.function.as_deref()).await {
        Ok(n) => json(StatusCode::OK, &json!({ "pending": n })),
        Err(e) => ApiError::service(format!("cannot read the event queue: {e}")).into_response(),
    }
}
