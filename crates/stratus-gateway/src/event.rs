//! The event a matched request becomes, in the payload version of its route
//! ([`build_event`]). Above both payload modules, which read the request
//! through [`crate::request`] and know nothing of each other.

use http::request::Parts;
use serde::Serialize;

use crate::event_v1::{self, ProxyEventV1};
use crate::event_v2::{self, ProxyEventV2};
use crate::kind::PayloadVersion;
use crate::request::RequestMeta;
use crate::routes::Matched;

/// An event in either payload version; serializes as the bare payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ProxyEvent {
    /// Format 1.0.
    V1(Box<ProxyEventV1>),
    /// Format 2.0.
    V2(Box<ProxyEventV2>),
}

impl ProxyEvent {
    /// The JSON invocation payload.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// The event for a matched request, in the route's payload version.
pub fn build_event(
    matched: &Matched<'_>,
    parts: &Parts,
    body: &[u8],
    meta: &RequestMeta,
) -> ProxyEvent {
    match matched.route.kind().payload_version() {
        PayloadVersion::V1 => ProxyEvent::V1(Box::new(event_v1::build(matched, parts, body, meta))),
        PayloadVersion::V2 => ProxyEvent::V2(Box::new(event_v2::build(matched, parts, body, meta))),
    }
}
