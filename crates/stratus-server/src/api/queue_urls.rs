//! Queue URLs as an isolated environment can use them.
//!
//! Queue URLs are `{endpoint}/{account}/{name}` with the server's own endpoint. Inside
//! the `linux` sandbox a function reaches the API at
//! [`stratus_sandbox::STRATUS_API_ADDR`] (its `AWS_ENDPOINT_URL` is rewritten), not
//! at that endpoint; and the AWS SDK for JavaScript v3 sends SQS calls to the queue
//! URL's host. So for a request that came in on that address (its `Host`), the
//! `QueueUrl`/`QueueUrls` of CreateQueue, GetQueueUrl and ListQueues answers name
//! it too. Other answers and other clients are untouched; message bodies are never
//! rewritten (only those fields of those actions).

use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The actions whose answers carry queue URLs.
const ACTIONS: [&str; 3] = ["CreateQueue", "GetQueueUrl", "ListQueues"];

/// `resp` with its queue URLs rewritten for a client inside an isolated environment,
/// when the request came from one; else `resp` unchanged.
pub(super) async fn for_client(
    endpoint_url: &str,
    headers: &HeaderMap,
    target: &str,
    resp: Response,
) -> Response {
    let inner = stratus_sandbox::STRATUS_API_ADDR;
    let from_sandbox = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h == inner);
    let action = target.rsplit('.').next().unwrap_or_default();
    let outer = endpoint_url.trim_end_matches('/');
    let inner_url = format!("http://{inner}");
    if !from_sandbox
        || !ACTIONS.contains(&action)
        || outer == inner_url
        || !resp.status().is_success()
    {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "queue URL rewrite failed",
        )
            .into_response();
    };
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let fix = |s: &mut Value| {
        if let Some(rest) = s.as_str().and_then(|u| u.strip_prefix(outer)) {
            *s = Value::String(format!("{inner_url}{rest}"));
        }
    };
    if let Some(u) = v.get_mut("QueueUrl") {
        fix(u);
    }
    if let Some(Value::Array(urls)) = v.get_mut("QueueUrls") {
        urls.iter_mut().for_each(fix);
    }
    let out = serde_json::to_vec(&v).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(out))
}
