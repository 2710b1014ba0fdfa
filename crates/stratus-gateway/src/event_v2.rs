//! Payload format 2.0, what an HTTP API (`httpApi` event) or a function URL
//! sends a function.
//!
//! Fields as AWS sends them, empty optional fields left out: `version`
//! (`"2.0"`), `routeKey` (`GET /users/{id}`, or `$default`), `rawPath`,
//! `rawQueryString` (as received, without `?`), `cookies` (every `Cookie`
//! header split on `;`), `headers` (lower-case names, repeated headers joined
//! with `,`, no `cookie`), `queryStringParameters` (decoded, repeated names
//! joined with `,`), `requestContext`, `body`, `pathParameters`,
//! `isBase64Encoded`, `stageVariables` (never: Stratus has none).
//!
//! `rawPath` is the path decoded for HTTP APIs (as AWS does) and as received
//! for function URLs (after `/lambda-url/{name}`). `requestContext.stage` is
//! `$default`.

use std::collections::BTreeMap;

use http::request::Parts;
use serde::{Deserialize, Serialize};

use crate::request::{
    domain_name, domain_prefix, encode_body, header_pairs, protocol, query_pairs, request_time,
    source_ip, user_agent, RequestMeta,
};
use crate::routes::Matched;

/// A format 2.0 event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyEventV2 {
    /// Always `2.0`.
    pub version: String,
    /// `GET /users/{id}`, `ANY /{proxy+}`, or `$default`.
    pub route_key: String,
    /// The path the function sees.
    pub raw_path: String,
    /// The query as received, without `?`; empty when none.
    pub raw_query_string: String,
    /// Request cookies, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookies: Option<Vec<String>>,
    /// Headers, lower-case, repeated values joined with `,`.
    pub headers: BTreeMap<String, String>,
    /// Query parameters, repeated values joined with `,`; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_string_parameters: Option<BTreeMap<String, String>>,
    /// About the request.
    pub request_context: RequestContextV2,
    /// The body, text or base64; absent when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Values of the route's parameters; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_parameters: Option<BTreeMap<String, String>>,
    /// Whether `body` is base64.
    pub is_base64_encoded: bool,
    /// Never set: Stratus has no stage variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_variables: Option<BTreeMap<String, String>>,
}

/// `requestContext` of a format 2.0 event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContextV2 {
    /// Account owning the API or function.
    pub account_id: String,
    /// The API's or function URL's id.
    pub api_id: String,
    /// The host the client addressed.
    pub domain_name: String,
    /// Its first label.
    pub domain_prefix: String,
    /// The HTTP request.
    pub http: HttpContext,
    /// The gateway's request id.
    pub request_id: String,
    /// Same as the event's `routeKey`.
    pub route_key: String,
    /// `$default`.
    pub stage: String,
    /// `12/Mar/2020:19:03:58 +0000`.
    pub time: String,
    /// Milliseconds since the epoch.
    pub time_epoch: i64,
}

/// `requestContext.http`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpContext {
    /// `GET`, `POST`, …
    pub method: String,
    /// Same as `rawPath`.
    pub path: String,
    /// `HTTP/1.1`.
    pub protocol: String,
    /// The client's address.
    pub source_ip: String,
    /// The `User-Agent` header, empty without one.
    pub user_agent: String,
}

pub(crate) fn build(
    matched: &Matched<'_>,
    parts: &Parts,
    body: &[u8],
    meta: &RequestMeta,
) -> ProxyEventV2 {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in header_pairs(&parts.headers) {
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string),
            );
            continue;
        }
        headers
            .entry(name.to_string())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }

    let raw_query_string = parts.uri.query().unwrap_or_default().to_string();
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in query_pairs(&raw_query_string) {
        query
            .entry(name)
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }

    let (body, is_base64_encoded) = encode_body(&parts.headers, body);
    let (time, time_epoch) = request_time(meta.time);
    let domain_name = domain_name(parts);
    let route_key = matched.route.route_key();

    ProxyEventV2 {
        version: "2.0".to_string(),
        route_key: route_key.clone(),
        raw_path: matched.path.clone(),
        raw_query_string,
        cookies: (!cookies.is_empty()).then_some(cookies),
        headers,
        query_string_parameters: (!query.is_empty()).then_some(query),
        request_context: RequestContextV2 {
            account_id: meta.account_id.clone(),
            api_id: meta.api_id.clone(),
            domain_prefix: domain_prefix(&domain_name),
            domain_name,
            http: HttpContext {
                method: parts.method.as_str().to_string(),
                path: matched.path.clone(),
                protocol: protocol(parts),
                source_ip: source_ip(meta.source_ip),
                user_agent: user_agent(parts).unwrap_or_default(),
            },
            request_id: meta.request_id.clone(),
            route_key,
            stage: matched.stage.clone(),
            time,
            time_epoch,
        },
        body,
        path_parameters: (!matched.path_parameters.is_empty())
            .then(|| matched.path_parameters.clone()),
        is_base64_encoded,
        stage_variables: None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};

    use super::*;
    use crate::routes::{RouteSpec, RouteTable};

    #[test]
    fn empty_optional_fields_are_left_out() {
        let table = match RouteTable::new([RouteSpec::http_api("GET", "/ping", "f")]) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let Ok(request) = http::Request::get("/ping").body(()) else {
            panic!("request")
        };
        let (parts, ()) = request.into_parts();
        let Ok(matched) = table.lookup(&parts.method, "/ping") else {
            panic!("lookup")
        };
        let meta = RequestMeta {
            source_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            request_id: "id=".into(),
            extended_request_id: String::new(),
            time: time::OffsetDateTime::UNIX_EPOCH,
            account_id: "1".into(),
            api_id: "a".into(),
        };
        let event = build(&matched, &parts, b"", &meta);
        let json = match serde_json::to_value(&event) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        for absent in [
            "cookies",
            "queryStringParameters",
            "body",
            "pathParameters",
            "stageVariables",
        ] {
            assert!(
                json.get(absent).is_none(),
                "{absent} should be absent: {json}"
            );
        }
        assert_eq!(json["rawQueryString"], "");
        assert_eq!(json["isBase64Encoded"], false);
        assert_eq!(json["requestContext"]["http"]["sourceIp"], "::1");
        assert_eq!(json["requestContext"]["http"]["userAgent"], "");
        assert_eq!(json["requestContext"]["domainName"], "localhost");
        assert_eq!(json["routeKey"], "GET /ping");
    }
}
