//! HTTP routes. Each module turns one family of requests into typed calls on the
//! core (registry, scheduler, logs) and back; errors leave through [`ApiError`].
//! [`app`] assembles them, so tests can drive the router without a socket.

mod autoscaling;
mod cloudwatch;
mod cluster;
mod concurrency;
mod cwlogs;
mod event_config;
mod functions;
mod invoke;
pub mod limits;
mod mappings;
pub mod metrics;
mod native;
mod paging;
mod queue_urls;
mod services;
mod tags;
mod ui;

use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::de::DeserializeOwned;
use stratus_scheduler::Scheduler;

use crate::error::{blocking, ApiError};
use crate::logs::LogStore;
use crate::registry::Registry;

pub(crate) use cloudwatch::{
    error_response as cloudwatch_error, Wire as CloudWatchWire, CBOR_PREFIX as CLOUDWATCH_PREFIX,
    JSON_TARGET_PREFIX as CLOUDWATCH_TARGET_PREFIX,
};
pub(crate) use invoke::{too_large as invoke_too_large, MAX_SYNC_PAYLOAD};

/// The most any route accepts (CreateFunction/UpdateFunctionCode's zip in base64):
/// what the authentication layer reads before the signature is checked; each route
/// then holds its own, smaller limit (`limits`).
pub(crate) const MAX_BODY: usize = limits::CODE_UPLOAD_BODY_BYTES;

/// What every handler can reach: a handle on [`AppParts`] that clones with one
/// reference count (axum clones the state for every request and every layer that
/// takes it; cloning a dozen services' handles field by field cost ~3 % of the
/// server's CPU at 16 callers).
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    /// Wraps the parts.
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The services behind [`AppState`].
#[derive(Debug)]
pub struct AppParts {
    /// Provisioned-concurrency autoscaling (Application Auto Scaling).
    pub autoscaler: crate::autoscale::Autoscaler,
    /// Functions, versions, aliases and concurrency settings.
    pub registry: Arc<Registry>,
    /// Deployments and event sources (functions are the registry's).
    pub stores: crate::store::Stores,
    /// Environments, pools and limits.
    pub scheduler: Scheduler,
    /// Log lines (START/END/REPORT and the functions' own).
    pub logs: Arc<LogStore>,
    /// Accepted asynchronous events and their delivery.
    pub events: crate::async_queue::AsyncQueue,
    /// Schedules, gateway routes and queue pollers.
    pub triggers: crate::triggers::Triggers,
    /// The SQS-compatible queue service.
    pub queues: std::sync::Arc<stratus_queue::Queues>,
    /// Seals secrets stored at rest (the data dir's data keys): for any store
    /// that keeps secrets, e.g. access keys.
    pub sealer: stratus_seal::Sealer,
    /// Per-minute metric rollups (CloudWatch reads, Prometheus, the dashboard).
    pub metrics: stratus_metrics::MetricsStore,
    /// This node, and in cluster mode the others (`GET /stratus/v1/cluster`).
    pub membership: crate::cluster::Membership,
    /// In cluster mode: routes invocations to nodes with warm environments.
    pub router: Option<Arc<crate::cluster::forward::Router>>,
    /// The other nodes, for reads of their logs and metrics (none: single node).
    pub peers: crate::cluster::peers::Peers,
}

impl AppState {
    /// Runs a registry call that may touch the database on a blocking thread, so no
    /// async worker (and no invocation queued behind it) waits on SQLite.
    pub(crate) async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Registry) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let reg = self.registry.clone();
        blocking(move || f(&reg)).await
    }

    /// Re-reads every event source (schedules, routes, pollers) after a change, on a
    /// blocking thread (it reads the stores).
    pub(crate) async fn reload_triggers(&self) {
        let _ = self
            .off_async(|s| {
                // A failure is logged; the previous event sources stay.
                let _ = s.triggers.reload(&s.registry);
                Ok(())
            })
            .await;
    }

    /// Runs `f` — work that reads or writes the stores — on a blocking thread.
    pub(crate) async fn off_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let s = self.clone();
        blocking(move || f(&s)).await
    }
}

/// The whole API on one router: management, invoke, and `/stratus/v1`.
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
        .merge(functions::routes())
        .merge(concurrency::routes())
        .merge(event_config::routes())
        .merge(invoke::routes())
        .merge(native::routes())
        .merge(services::routes())
        .merge(mappings::routes())
        .merge(tags::routes())
        .merge(metrics::routes())
        .merge(autoscaling::routes())
        .merge(ui::routes())
        .merge(cluster::routes())
        .route("/", limits::limited_sqs(axum::routing::post(sqs)))
        .fallback(fallback);
    // Routes with a limit of their own (uploads, deployments, SQS) keep it; Invoke
    // reads its body through its own 6 MB limit.
    limits::default_limit(routes).with_state(state)
}

/// The SQS JSON protocol: `POST /` with `X-Amz-Target: AmazonSQS.<Action>`, on the
/// same listener as the Lambda APIs so one `AWS_ENDPOINT_URL` serves both clients.
async fn sqs(
    axum::extract::State(s): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        Some(target) if target.starts_with(stratus_queue::TARGET_PREFIX) => {
            let r = stratus_queue::handle(&s.queues, target, &body).await;
            queue_urls::for_client(&s.registry.identity.endpoint_url, &headers, target, r).await
        }
        Some(target) if target.starts_with(cwlogs::TARGET_PREFIX) => {
            cwlogs::handle(s, target, &headers, &body).await
        }
        Some(target) if target.starts_with(cloudwatch::JSON_TARGET_PREFIX) => {
            cloudwatch::handle_json(&s, &headers, target, &body).await
        }
        // A form without a target: the query protocol, which only CloudWatch speaks here.
        None if is_form(&headers) => cloudwatch::handle_query(&s, &headers, &body).await,
        Some(target) if target.starts_with(autoscaling::TARGET_PREFIX) => {
            autoscaling::handle(s, target.to_string(), body).await
        }
        _ => ApiError::unknown_operation("POST", "/ (without an X-Amz-Target this server serves)")
            .into_response(),
    }
}

/// Whether the body is a form (`application/x-www-form-urlencoded`).
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

async fn fallback(method: Method, uri: Uri) -> Response {
    ApiError::unknown_operation(method.as_str(), uri.path()).into_response()
}

/// Parses a JSON request body; an empty body is `{}`.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_content(format!("Could not parse request body into json: {e}")))
}

/// A JSON response with a status.
fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [("content-type", "application/json")], body).into_response(),
        Err(e) => ApiError::service(format!("cannot encode response: {e}")).into_response(),
    }
}

/// This server's base URL as the client reached it: the request's `Host` (with
/// `https` when a proxy says so in `X-Forwarded-Proto`), else the listen address.
/// URLs handed back to clients (such as `Code.Location`) are built on it, so they work
/// from wherever the client is.
fn base_url(headers: &HeaderMap, fallback: &str) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok());
    match host {
        Some(host) => {
            let https = headers
                .get("x-forwarded-proto")
                .and_then(|p| p.to_str().ok())
                .is_some_and(|p| p.eq_ignore_ascii_case("https"));
            format!("{}://{host}", if https { "https" } else { "http" })
        }
        None => fallback.trim_end_matches('/').to_string(),
    }
}

/// `?Qualifier=`: a version or alias name (Lambda's `(|[a-zA-Z0-9$_-]+)`, at most 128
/// characters), checked as it is extracted, so no handler sees `..`, `/` or NUL.
#[derive(Debug, Default)]
struct QualifierQuery {
    qualifier: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for QualifierQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(rename = "Qualifier")]
            qualifier: Option<String>,
        }
        let axum::extract::Query(raw) =
            axum::extract::Query::<Raw>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::validation("", "qualifier", &e.body_text()))?;
        match raw.qualifier {
            // An empty Qualifier is no qualifier, as Lambda's pattern allows.
            Some(q) if q.is_empty() => Ok(Self { qualifier: None }),
            Some(q) if !stratus_rules::is_qualifier(&q) => Err(ApiError::validation(
                &q,
                "qualifier",
                "Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)",
            )),
            qualifier => Ok(Self { qualifier }),
        }
    }
}
