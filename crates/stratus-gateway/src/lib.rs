//! The HTTP gateway of Stratus, as pure logic: which function a request goes
//! to, the API Gateway event it receives, and the HTTP response its result
//! becomes. No sockets and no invocation: the server runs the listener, asks
//! this crate what to do, invokes the function, and hands the result back.
//!
//! Module boundaries:
//! - [`routes`]: the route table built from the manifest's `http`, `httpApi`
//!   and `url` settings ([`RouteSpec`]), and [`RouteTable::lookup`], which picks
//!   the most specific route for a method and path. URL layout: REST APIs under
//!   `/{stage}/…`, HTTP APIs at their own paths, function URLs under
//!   `/lambda-url/{function-name}/…`.
//! - [`request`]: what the server supplies about a request besides the
//!   request itself ([`RequestMeta`]: source IP, request id, time, account and
//!   API ids) and [`build_event`], which picks the payload version.
//! - [`event_v1`] / [`event_v2`]: the payloads, format 1.0 (REST APIs) and 2.0
//!   (HTTP APIs and function URLs), field for field as AWS sends them.
//! - [`response`]: a function's result mapped to an HTTP response, and the
//!   gateway's own error responses ([`GatewayError`]) with AWS's texts.
//! - [`cors`]: CORS settings, preflight answers and the headers added to
//!   actual responses.
//! - [`protocol`]: names, limits and texts shared with AWS, in one place.
//!
//! A request through the gateway, as the server drives it (see
//! `tests/flow.rs`):
//! 1. [`RouteTable::preflight`]: a CORS preflight is answered here
//!    ([`Preflight::response`]) without invoking anything.
//! 2. [`RouteTable::lookup`]: on error, answer [`RouteTable::error_response`]
//!    (with the HTTP API's CORS headers, if it has CORS).
//! 3. [`response::check_request_size`] for the route's kind (413 past 10 MB,
//!    6 MB for function URLs; stop reading a body past 10 MB anyway).
//! 4. [`RequestMeta::new`], [`build_event`], [`ProxyEvent::to_json`], then
//!    invoke `matched.route.function()` (qualified by
//!    `matched.route.qualifier()`), within [`RouteKind::integration_timeout`].
//! 5. [`response::function_response`] on the result, then
//!    [`Matched::apply_cors`] with the request's `Origin`; or, for a
//!    function error, throttle or timeout, [`GatewayError::to_response`] then
//!    [`Matched::apply_cors_to_error`].

pub mod cors;
pub mod event_v1;
pub mod event_v2;
pub mod protocol;
pub mod request;
pub mod response;
pub mod routes;

pub use cors::{CorsConfig, Preflight};
pub use event_v1::ProxyEventV1;
pub use event_v2::ProxyEventV2;
pub use request::{build_event, ProxyEvent, RequestMeta};
pub use response::{GatewayError, MalformedResponse};
pub use routes::{
    Matched, PayloadVersion, Route, RouteError, RouteKind, RouteSpec, RouteTable, RouteTableError,
};
