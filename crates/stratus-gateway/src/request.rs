//! What the server supplies about a request besides the request itself, and
//! the pieces of a request both payload versions read.
//!
//! Request bodies: an empty body is no body (`null` in 1.0, absent in 2.0).
//! Otherwise the body is passed as text when it is valid UTF-8 and its
//! `Content-Type` is textual — `text/*`; any `…/json`, `…+json`, `…/xml`,
//! `…+xml`; `application/javascript`, `application/x-javascript`,
//! `application/ecmascript`, `application/x-www-form-urlencoded`,
//! `application/graphql`, `application/yaml`, `application/x-yaml`,
//! `application/x-ndjson` — or absent. Anything else (images, `multipart/*`,
//! `application/octet-stream`, …) is base64 with `isBase64Encoded: true`, as
//! function URLs and HTTP APIs do. (A REST API on AWS base64-encodes only the
//! `binaryMediaTypes` it is configured with; Stratus applies the rule above to
//! REST APIs too, so binary uploads arrive intact.)
//!
//! Query strings: split on `&` and the first `=`, names and values
//! percent-decoded (`+` stays `+`, as API Gateway leaves it); a name without
//! `=` has the value `""`.

use std::net::IpAddr;

use base64::Engine as _;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::HeaderMap;
use percent_encoding::percent_decode_str;
use time::OffsetDateTime;

use crate::ids::short_id;
// Where the server and older callers found them.
pub use crate::ids::{new_request_id, stable_id};
use crate::kind::RouteKind;
use crate::protocol::REQUEST_TIME_FORMAT;

/// What the server knows about a request that the request does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    /// Address of the client (the TCP peer), for `sourceIp`.
    pub source_ip: IpAddr,
    /// The gateway's id of the request: `requestContext.requestId` and the
    /// `x-amzn-RequestId` / `apigw-requestid` response headers. Not the
    /// Lambda invocation's request id.
    pub request_id: String,
    /// REST APIs' `extendedRequestId`.
    pub extended_request_id: String,
    /// When the request arrived (`requestTime`/`time`, and their epochs).
    pub time: OffsetDateTime,
    /// `requestContext.accountId`: the account owning the function.
    pub account_id: String,
    /// `requestContext.apiId`: the REST or HTTP API's id, or the function
    /// URL's id (see [`stable_id`] for one derived from a name).
    pub api_id: String,
}

impl RequestMeta {
    /// Fresh ids (in the route kind's format) and the current time.
    pub fn new(
        kind: RouteKind,
        source_ip: IpAddr,
        account_id: impl Into<String>,
        api_id: impl Into<String>,
    ) -> RequestMeta {
        RequestMeta {
            source_ip,
            request_id: new_request_id(kind),
            extended_request_id: short_id(),
            time: OffsetDateTime::now_utc(),
            account_id: account_id.into(),
            api_id: api_id.into(),
        }
    }
}

/// Connection-level headers a proxy does not forward.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The request's headers as (lower-case name, value) pairs in arrival order
/// per name, without hop-by-hop headers. Values that are not UTF-8 are
/// converted lossily.
pub(crate) fn header_pairs(headers: &HeaderMap) -> Vec<(&str, String)> {
    headers
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .map(|(name, value)| {
            (
                name.as_str(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The request's query as decoded (name, value) pairs, in order.
pub(crate) fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The body as the event carries it: `(body, isBase64Encoded)`.
pub(crate) fn encode_body(headers: &HeaderMap, body: &[u8]) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if is_textual(content_type) {
        if let Ok(text) = std::str::from_utf8(body) {
            return (Some(text.to_string()), false);
        }
    }
    (
        Some(base64::engine::general_purpose::STANDARD.encode(body)),
        true,
    )
}

/// Whether a body of this content type is passed as text (see the module docs).
pub fn is_textual(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind == "text"
        || subtype == "json"
        || subtype.ends_with("+json")
        || subtype == "xml"
        || subtype.ends_with("+xml")
        || (kind == "application"
            && matches!(
                subtype,
                "javascript"
                    | "x-javascript"
                    | "ecmascript"
                    | "x-www-form-urlencoded"
                    | "graphql"
                    | "yaml"
                    | "x-yaml"
                    | "x-ndjson"
            ))
}

/// `(formatted time, epoch milliseconds)` in UTC.
pub(crate) fn request_time(time: OffsetDateTime) -> (String, i64) {
    let utc = time.to_offset(time::UtcOffset::UTC);
    let text = utc.format(REQUEST_TIME_FORMAT).unwrap_or_default();
    let millis = i64::try_from(utc.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    (text, millis)
}

/// The host the client addressed (`Host`, else the URI's authority, else
/// `localhost`), port included: `requestContext.domainName`.
pub(crate) fn domain_name(parts: &Parts) -> String {
    parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_string()))
        .unwrap_or_else(|| "localhost".to_string())
}

/// The first label of the domain name, without a port: `domainPrefix`.
pub(crate) fn domain_prefix(domain: &str) -> String {
    let host = domain.split(':').next().unwrap_or(domain);
    host.split('.').next().unwrap_or(host).to_string()
}

/// `HTTP/1.1`, `HTTP/2.0`.
pub(crate) fn protocol(parts: &Parts) -> String {
    format!("{:?}", parts.version)
}

pub(crate) fn user_agent(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(http::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The client address as AWS writes it (IPv4-mapped IPv6 as IPv4).
pub(crate) fn source_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_time_matches_aws_format() {
        // From the AWS docs: 1519166937665 is 20/Feb/2018:22:48:57 +0000.
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_519_166_937_665_000_000);
        let Ok(t) = t else { panic!("time") };
        assert_eq!(
            request_time(t),
            ("20/Feb/2018:22:48:57 +0000".to_string(), 1_519_166_937_665)
        );
        let offset = t.to_offset(time::macros::offset!(+2));
        assert_eq!(request_time(offset).0, "20/Feb/2018:22:48:57 +0000");
    }

    #[test]
    fn textual_content_types() {
        for ct in [
            None,
            Some("text/plain"),
            Some("text/html; charset=utf-8"),
            Some("application/json"),
            Some("application/vnd.api+json"),
            Some("application/xml"),
            Some("image/svg+xml"),
            Some("application/x-www-form-urlencoded"),
            Some("Application/JSON"),
            Some("application/javascript"),
        ] {
            assert!(is_textual(ct), "{ct:?}");
        }
        for ct in [
            Some("image/png"),
            Some("application/octet-stream"),
            Some("multipart/form-data; boundary=x"),
            Some("application/pdf"),
            Some("garbage"),
        ] {
            assert!(!is_textual(ct), "{ct:?}");
        }
    }

    #[test]
    fn bodies_are_text_or_base64() {
        let mut h = HeaderMap::new();
        assert_eq!(encode_body(&h, b""), (None, false));
        assert_eq!(encode_body(&h, b"a=1"), (Some("a=1".into()), false));
        // Not UTF-8: base64 whatever the type says.
        assert_eq!(encode_body(&h, b"\xff\x00"), (Some("/wA=".into()), true));
        h.insert(CONTENT_TYPE, http::HeaderValue::from_static("image/png"));
        assert_eq!(encode_body(&h, b"abc"), (Some("YWJj".into()), true));
    }

    #[test]
    fn query_strings_are_decoded_but_plus_stays() {
        assert_eq!(
            query_pairs("a=1&b=x%20y&a=2&flag&&c=d%2Be+f&e="),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("a".into(), "2".into()),
                ("flag".into(), "".into()),
                ("c".into(), "d+e+f".into()),
                ("e".into(), "".into()),
            ]
        );
        assert!(query_pairs("").is_empty());
    }

    #[test]
    fn hosts_and_addresses() {
        assert_eq!(
            domain_prefix("id.execute-api.us-east-1.amazonaws.com"),
            "id"
        );
        assert_eq!(domain_prefix("localhost:3000"), "localhost");
        let mapped: IpAddr = match "::ffff:10.0.0.1".parse() {
            Ok(ip) => ip,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(source_ip(mapped), "10.0.0.1");
    }
}
