//! The HTTP gateway of Stratus, as logic without a socket: which function a
//! request goes to, the API Gateway event it receives, and the HTTP response
//! its result becomes. The server runs the listener and hands each request
//! to [`serve`] with a way to invoke a function; the tests hand the same
//! [`serve`] a stand-in.
//!
//! Modules, each depending only on those listed before it:
//! - [`protocol`]: names, limits and texts shared with AWS, in one place.
//! - [`kind`]: the route kinds ([`RouteKind`]: REST API, HTTP API, function
//!   URL) and what each fixes: payload version, body limit, timeout.
//! - [`ids`]: request ids in each API's shape, stable API ids, and the
//!   request id headers every response carries.
//! - [`cors`]: CORS settings, preflight answers and the headers added to
//!   actual responses.
//! - [`response`]: a function's result mapped to an HTTP response, and the
//!   gateway's own error responses ([`GatewayError`]) with AWS's texts.
//! - [`routes`]: the route table built from the manifest's `http`, `httpApi`
//!   and `url` settings ([`RouteSpec`]), and [`RouteTable::lookup`], which
//!   picks the most specific route for a method and path. URL layout: REST
//!   APIs under `/{stage}/…`, HTTP APIs at their own paths, function URLs
//!   under `/lambda-url/{function-name}/…`.
//! - [`request`]: what the server supplies about a request besides the
//!   request itself ([`RequestMeta`]: source IP, request id, time, account
//!   and API ids), and the parts of a request both payloads read.
//! - [`event_v1`] / [`event_v2`]: the payloads, format 1.0 (REST APIs) and
//!   2.0 (HTTP APIs and function URLs), field for field as AWS sends them.
//! - [`event`]: [`build_event`], which picks the payload version.
//! - [`flow`]: [`serve`], the whole sequence for one request.

pub mod cors;
pub mod event;
pub mod event_v1;
pub mod event_v2;
pub mod flow;
pub mod ids;
pub mod kind;
pub mod protocol;
pub mod request;
pub mod response;
pub mod routes;

pub use cors::{CorsConfig, Preflight};
pub use event::{build_event, ProxyEvent};
pub use event_v1::ProxyEventV1;
pub use event_v2::ProxyEventV2;
pub use flow::serve;
pub use kind::{PayloadVersion, RouteKind};
pub use request::RequestMeta;
pub use response::{GatewayError, MalformedResponse};
pub use routes::{Matched, Route, RouteError, RouteSpec, RouteTable, RouteTableError};
