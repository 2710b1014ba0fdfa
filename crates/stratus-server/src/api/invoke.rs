//! The Invoke API: `POST /2015-03-31/functions/{name}/invocations`. Paths, headers
//! and limits of the Invoke API live here and nowhere else.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use stratus_scheduler::{InvokeError, InvokeRequest};

use super::{AppState, QualifierQuery};
use crate::error::ApiError;
use crate::model::new_uuid;

/// Largest synchronous request payload (6 MB).
pub(crate) const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// Largest decoded client context.
pub(super) const MAX_CLIENT_CONTEXT: usize = 3583;

mod h {
    pub(super) const INVOCATION_TYPE: &str = "x-amz-invocation-type";
    pub(super) const LOG_TYPE: &str = "x-amz-log-type";
    pub(super) const CLIENT_CONTEXT: &str = "x-amz-client-context";
    pub(super) const EXECUTED_VERSION: &str = "x-amz-executed-version";
    pub(super) const FUNCTION_ERROR: &str = "x-amz-function-error";
    pub(super) const LOG_RESULT: &str = "x-amz-log-result";
    pub(super) const REQUEST_ID: &str = "x-amzn-requestid";
    pub(super) const TRACE_ID: &str = "x-amzn-trace-id";
}

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/2015-03-31/functions/{name}/invocations", post(invoke))
}

async fn invoke(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: QualifierQuery,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let request_id: Arc<str> = Arc::from(new_uuid());
    let body = match read_payload(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match run(
        &s,
        &name,
        q.qualifier.as_deref(),
        &headers,
        body,
        &request_id,
    )
    .await
    {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

/// Reads the request payload, refusing it as soon as it passes the 6 MB limit: a
/// larger body (or a `Content-Length` announcing one) is never buffered whole.
async fn read_payload(body: Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt as _;
    match http_body_util::Limited::new(body, MAX_SYNC_PAYLOAD)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_content(format!(
            "Could not read the request body: {e}"
        ))),
    }
}

pub(crate) fn too_large() -> ApiError {
    ApiError::too_large(format!(
        "Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the InvokeFunction operation"
    ))
}

async fn run(
    s: &AppState,
    name: &str,
    qualifier: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
    request_id: &Arc<str>,
) -> Result<Response<Body>, ApiError> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let invocation_type = header(h::INVOCATION_TYPE).unwrap_or("RequestResponse");
    let tail = match header(h::LOG_TYPE) {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(ApiError::validation(
                other,
                "logType",
                "Member must satisfy enum value set: [None, Tail]",
            ))
        }
    };
    let resolved = s.registry.resolve(name, qualifier)?;
    // The caller's X-Ray trace, carried over (a new one when it sent none).
    let trace_id = header(h::TRACE_ID)
        .and_then(stratus_scheduler::trace::propagate)
        .unwrap_or_else(stratus_scheduler::trace::new_trace_id);
    match invocation_type {
        "RequestResponse" => {}
        "DryRun" => {
            return Ok(with_ids(
                Response::builder().status(StatusCode::NO_CONTENT),
                request_id,
                None,
            )
            .body(Body::empty())
            .unwrap_or_default())
        }
        "Event" => {
            if body.len() > crate::async_queue::MAX_ASYNC_PAYLOAD {
                return Err(ApiError::too_large(format!(
                    "Request must be smaller than {} bytes for the InvokeFunction operation",
                    crate::async_queue::MAX_ASYNC_PAYLOAD
                )));
            }
            let payload = validated_payload(body)?;
            let (name, q) = crate::registry::parse_function_ref(name)?;
            let qualifier = qualifier.map(str::to_string).or(q);
            s.events
                .enqueue_traced(
                    request_id.to_string(),
                    name,
                    qualifier,
                    payload,
                    Some(trace_id.to_string()),
                )
                .await
                .map_err(|e| ApiError::service(e.to_string()))?;
            return Ok(with_ids(
                Response::builder().status(StatusCode::ACCEPTED),
                request_id,
                None,
            )
            .body(Body::empty())
            .unwrap_or_default());
        }
        other => {
            return Err(ApiError::validation(
                other,
                "invocationType",
                "Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
            ))
        }
    }
    let payload = validated_payload(body)?;
    let client_context = match header(h::CLIENT_CONTEXT) {
        None => None,
        Some(b64) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| {
                    ApiError::invalid(format!("Client context is not valid base64: {e}"))
                })?;
            if raw.len() > MAX_CLIENT_CONTEXT {
                return Err(ApiError::invalid(format!(
                    "Client context must be at most {MAX_CLIENT_CONTEXT} bytes once decoded; got {}",
                    raw.len()
                )));
            }
            let text = String::from_utf8(raw)
                .map_err(|_| ApiError::invalid("Client context is not UTF-8 JSON"))?;
            Some(Arc::from(text))
        }
    };
    let req = InvokeRequest {
        request_id: request_id.clone(),
        payload,
        invoked_arn: resolved.invoked_arn.clone(),
        client_context,
        tail,
        trace_id: Some(trace_id.clone()),
    };
    let out = match &s.router {
        None => s.scheduler.invoke(&resolved.spec, req).await,
        // A cluster: a warm environment here, else on another node, else a new one.
        Some(router) => router.invoke(&s.scheduler, &resolved.spec, req).await?,
    };
    let out = out.map_err(|e| match e {
        InvokeError::Throttled(reason) => ApiError::throttled(reason.as_str()),
        InvokeError::ShuttingDown => ApiError::service("The Stratus server is shutting down"),
        InvokeError::Start(msg) => ApiError::runtime(msg),
    })?;
    let mut b = with_ids(
        Response::builder().status(StatusCode::OK),
        request_id,
        Some(&resolved.executed_version),
    )
    .header("content-type", "application/json");
    if let Ok(v) = HeaderValue::from_str(&trace_id) {
        b = b.header(h::TRACE_ID, v);
    }
    if out.function_error {
        b = b.header(h::FUNCTION_ERROR, "Unhandled");
    }
    if let Some(tail) = out.log_tail {
        b = b.header(
            h::LOG_RESULT,
            base64::engine::general_purpose::STANDARD.encode(tail),
        );
    }
    b.body(Body::from(out.payload))
        .map_err(|e| ApiError::service(e.to_string()))
}

fn with_ids(
    b: axum::http::response::Builder,
    request_id: &str,
    version: Option<&str>,
) -> axum::http::response::Builder {
    let mut b = b;
    if let Ok(v) = HeaderValue::from_str(request_id) {
        b = b.header(h::REQUEST_ID, v);
    }
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(v).ok()) {
        b = b.header(h::EXECUTED_VERSION, v);
    }
    b
}

/// The event: an empty body is `{}`; anything else must be JSON.
fn validated_payload(body: Bytes) -> Result<Bytes, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Bytes::from_static(b"{}"));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|e| {
        ApiError::bad_content(format!("Could not parse request body into json: {e}"))
    })?;
    Ok(body)
}
