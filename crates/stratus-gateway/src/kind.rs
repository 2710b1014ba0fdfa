//! The kinds of route (REST API, HTTP API, function URL) and what each kind
//! fixes: payload version, request size limit, integration timeout. A leaf
//! module: routing, CORS, events and responses all depend on it.

use std::fmt;
use std::time::Duration;

use crate::protocol;

/// Where a route comes from, which fixes its URL layout and payload version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    /// An `http` event: API Gateway REST API, payload 1.0.
    Rest,
    /// An `httpApi` event: API Gateway HTTP API, payload 2.0.
    HttpApi,
    /// A function URL, payload 2.0.
    FunctionUrl,
}

/// Version of the event payload and response format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadVersion {
    /// Format 1.0 (REST APIs).
    V1,
    /// Format 2.0 (HTTP APIs, function URLs).
    V2,
}

impl RouteKind {
    /// The payload format the function receives and must answer in.
    pub fn payload_version(self) -> PayloadVersion {
        match self {
            RouteKind::Rest => PayloadVersion::V1,
            RouteKind::HttpApi | RouteKind::FunctionUrl => PayloadVersion::V2,
        }
    }

    /// Largest request body accepted: 10 MB for API Gateway, 6 MB (Lambda's
    /// synchronous payload limit) for function URLs.
    pub fn max_request_bytes(self) -> usize {
        match self {
            RouteKind::Rest | RouteKind::HttpApi => protocol::MAX_API_REQUEST_BYTES,
            RouteKind::FunctionUrl => protocol::MAX_URL_REQUEST_BYTES,
        }
    }

    /// How long the gateway waits for the function before answering 504:
    /// 29 s for REST APIs, 30 s for HTTP APIs, none for function URLs (they
    /// wait for the function's own timeout).
    pub fn integration_timeout(self) -> Option<Duration> {
        match self {
            RouteKind::Rest => Some(protocol::REST_INTEGRATION_TIMEOUT),
            RouteKind::HttpApi => Some(protocol::HTTP_API_INTEGRATION_TIMEOUT),
            RouteKind::FunctionUrl => None,
        }
    }

    /// `http`, `httpApi` or `url`, as in `serverless.yml`.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Rest => "http",
            RouteKind::HttpApi => "httpApi",
            RouteKind::FunctionUrl => "url",
        }
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
