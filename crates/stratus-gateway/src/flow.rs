//! A request through the gateway, start to end: [`serve`] runs the sequence
//! the server runs for every request, with the invocation handed in, so the
//! server and the tests drive one and the same code.
//!
//! The sequence:
//! 1. A CORS preflight ([`RouteTable::preflight`]) is answered here, without
//!    invoking anything.
//! 2. [`RouteTable::lookup`]; a request no route serves gets
//!    [`RouteTable::error_response`] (with the HTTP API's CORS headers, if it
//!    has CORS).
//! 3. The body is read up to the route's limit
//!    ([`max_request_bytes`](crate::RouteKind::max_request_bytes): 10 MB,
//!    6 MB for function URLs) and no further: past it, 413.
//! 4. [`RequestMeta::new`], [`build_event`], and the caller's `invoke` with
//!    the route and the JSON event.
//! 5. The result through [`map_result`], then
//!    [`apply_cors`](crate::Matched::apply_cors) with the request's `Origin`;
//!    or, for a gateway error (from `invoke`, or a malformed result),
//!    [`GatewayError::to_response`] then
//!    [`apply_cors_to_error`](crate::Matched::apply_cors_to_error).

use std::future::Future;
use std::net::IpAddr;

use bytes::Bytes;
use http::header::ORIGIN;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Limited};

use crate::event::build_event;
use crate::ids::{new_request_id, stable_id};
use crate::request::RequestMeta;
use crate::response::{map_result, GatewayError};
use crate::routes::{Route, RouteTable};

/// Answers `request`, which came from `peer`, with the routes of `table`.
/// `account_id` is the account the events name as owning the API.
///
/// `invoke` is called at most once, only for a request a route serves, with
/// that route (its function, qualifier and kind) and the event as the JSON
/// invocation payload; it returns the function's result payload, or the
/// gateway error to answer with: [`GatewayError::FunctionError`] when the
/// function failed, [`GatewayError::Timeout`] past the route's
/// [`RouteKind::integration_timeout`](crate::RouteKind::integration_timeout) (which `invoke` enforces: it owns the
/// clock), [`GatewayError::TooManyRequests`] when throttled,
/// [`GatewayError::IntegrationFailure`] when the invocation could not be
/// made, [`GatewayError::NotFound`] when the function does not exist.
///
/// A body that fails to arrive is answered like one over the limit (413):
/// either way the request cannot be passed on whole.
pub async fn serve<'t, B, F, Fut>(
    table: &'t RouteTable,
    request: Request<B>,
    peer: IpAddr,
    account_id: &str,
    invoke: F,
) -> Response<Bytes>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: FnOnce(&'t Route, Bytes) -> Fut,
    Fut: Future<Output = Result<Bytes, GatewayError>>,
{
    let (parts, body) = request.into_parts();
    let origin = parts
        .headers
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let origin = origin.as_deref();
    let path = parts.uri.path();
    if let Some(preflight) = table.preflight(&parts.method, path) {
        return preflight.response(origin, &new_request_id(preflight.kind));
    }
    let matched = match table.lookup(&parts.method, path) {
        Ok(m) => m,
        Err(e) => return table.error_response(&e, origin, &new_request_id(e.kind())),
    };
    let route = matched.route;
    let kind = route.kind();
    let meta = RequestMeta::new(kind, peer, account_id, stable_id(route.function(), 10));
    let error = |e: GatewayError| {
        let mut response = e.to_response(kind, &meta.request_id);
        matched.apply_cors_to_error(origin, response.headers_mut());
        response
    };

    // Limited stops reading at the limit, so an oversized body is never
    // held whole.
    let body = match Limited::new(body, kind.max_request_bytes()).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return error(GatewayError::RequestTooLarge),
    };
    let event = build_event(&matched, &parts, &body, &meta);
    let Ok(payload) = event.to_json() else {
        return error(GatewayError::IntegrationFailure);
    };
    let result = match invoke(route, Bytes::from(payload)).await {
        Ok(result) => result,
        Err(e) => return error(e),
    };
    let mut response = match map_result(kind, &result, &meta.request_id) {
        Ok(response) => response,
        Err(malformed) => {
            // API Gateway logs this as "Malformed Lambda proxy response"; the
            // client only sees the generic error.
            tracing::warn!(function = route.function(), error = %malformed, "malformed proxy response");
            return error(GatewayError::MalformedResponse(malformed));
        }
    };
    matched.apply_cors(origin, response.headers_mut());
    response
}
