//! The gateway's request ids: a fresh one per request in the shape of the
//! API in front, stable ids derived from names (API and resource ids), and
//! the response headers that carry a request id.

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use rand::RngCore as _;

use crate::kind::RouteKind;
use crate::protocol::headers;

/// A new gateway request id: a UUID (REST APIs, function URLs), or the
/// 16-character form HTTP APIs use (`JWhV6jMsoAMEJjQ=`).
pub fn new_request_id(kind: RouteKind) -> String {
    match kind {
        RouteKind::HttpApi => short_id(),
        RouteKind::Rest | RouteKind::FunctionUrl => stratus_rules::uuid_v4(),
    }
}

/// A random 16-character base64 id: HTTP APIs' request ids, REST APIs'
/// `extendedRequestId`.
pub(crate) fn short_id() -> String {
    let mut bytes = [0u8; 11];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A deterministic id of `len` lower-case letters and digits derived from
/// `seed`, shaped like API Gateway's ids (10 characters for an API id, 6 for
/// a resource id), so the same service gets the same ids on every start.
pub fn stable_id(seed: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    // FNV-1a, re-mixed for each character.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in seed.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..len)
        .map(|i| {
            hash ^= i as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            let index = (hash >> 33) % ALPHABET.len() as u64;
            char::from(ALPHABET[index as usize])
        })
        .collect()
}

/// Sets the request id headers every gateway response carries:
/// `x-amzn-RequestId`, and for HTTP APIs also `apigw-requestid`.
pub fn stamp_request_id(kind: RouteKind, request_id: &str, headers: &mut HeaderMap) {
    let Ok(value) = HeaderValue::from_str(request_id) else {
        return;
    };
    if kind == RouteKind::HttpApi {
        headers.insert(
            HeaderName::from_static(headers::APIGW_REQUEST_ID),
            value.clone(),
        );
    }
    headers.insert(HeaderName::from_static(headers::AMZN_REQUEST_ID), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_aws_shapes() {
        let uuid = new_request_id(RouteKind::Rest);
        assert_eq!(uuid.len(), 36);
        assert_eq!(uuid.as_bytes()[14], b'4');
        let short = new_request_id(RouteKind::HttpApi);
        assert_eq!(short.len(), 16);
        assert!(short.ends_with('='));
        assert_ne!(new_request_id(RouteKind::HttpApi), short);
        let id = stable_id("my-service-dev", 10);
        assert_eq!(id.len(), 10);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_eq!(id, stable_id("my-service-dev", 10));
        assert_ne!(id, stable_id("my-service-prod", 10));
    }
}
