//! Payload format 1.0, what a REST API (`http` event) sends a function.
//!
//! Fields as AWS sends them, `null` where AWS puts `null` (no query, no path
//! parameters, no body, and always `stageVariables`):
//! `resource` (the route's template, `/users/{id}`), `path` (without the
//! stage, as received), `httpMethod`, `headers` (the last value of each
//! name), `multiValueHeaders` (every value), `queryStringParameters` (the last
//! value), `multiValueQueryStringParameters`, `pathParameters`,
//! `stageVariables`, `requestContext`, `body`, `isBase64Encoded`.
//!
//! Header names: AWS passes them as the client wrote them; the `http` crate
//! keeps them only in lower case, so Stratus writes them in the Title-Case
//! HTTP/1.1 clients send (`Content-Type`, `X-Amz-Date`), which is what
//! `event.headers['Content-Type']` expects. `Content-Length` and hop-by-hop
//! headers are not passed, as on AWS.

use std::collections::BTreeMap;

use http::request::Parts;
use serde::{Deserialize, Serialize};

use crate::ids::stable_id;
use crate::request::{
    domain_name, domain_prefix, encode_body, header_pairs, protocol, query_pairs, request_time,
    source_ip, user_agent, RequestMeta,
};
use crate::routes::Matched;

/// A format 1.0 event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyEventV1 {
    /// The route's path template, `/users/{id}`.
    pub resource: String,
    /// The request path without the stage.
    pub path: String,
    /// `GET`, `POST`, …
    pub http_method: String,
    /// Last value of each header.
    pub headers: Option<BTreeMap<String, String>>,
    /// Every value of each header.
    pub multi_value_headers: Option<BTreeMap<String, Vec<String>>>,
    /// Last value of each query parameter.
    pub query_string_parameters: Option<BTreeMap<String, String>>,
    /// Every value of each query parameter.
    pub multi_value_query_string_parameters: Option<BTreeMap<String, Vec<String>>>,
    /// Values of the template's parameters.
    pub path_parameters: Option<BTreeMap<String, String>>,
    /// Always `null`: Stratus has no stage variables.
    pub stage_variables: Option<BTreeMap<String, String>>,
    /// About the request.
    pub request_context: RequestContextV1,
    /// The body, text or base64.
    pub body: Option<String>,
    /// Whether `body` is base64.
    pub is_base64_encoded: bool,
}

/// `requestContext` of a format 1.0 event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContextV1 {
    /// Account owning the API.
    pub account_id: String,
    /// The API's id.
    pub api_id: String,
    /// The host the client addressed.
    pub domain_name: String,
    /// Its first label.
    pub domain_prefix: String,
    /// The gateway's extended request id.
    pub extended_request_id: String,
    /// `GET`, `POST`, …
    pub http_method: String,
    /// The caller.
    pub identity: Identity,
    /// The full request path, stage included: `/dev/users/1`.
    pub path: String,
    /// `HTTP/1.1`.
    pub protocol: String,
    /// The gateway's request id.
    pub request_id: String,
    /// `09/Apr/2015:12:34:56 +0000`.
    pub request_time: String,
    /// Milliseconds since the epoch.
    pub request_time_epoch: i64,
    /// The resource's id (stable per API and template).
    pub resource_id: String,
    /// The route's path template.
    pub resource_path: String,
    /// The stage.
    pub stage: String,
}

/// `requestContext.identity`: only the source address and user agent are
/// known without authorizers; the rest is `null`, as on AWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Always `null`.
    pub access_key: Option<String>,
    /// Always `null`.
    pub account_id: Option<String>,
    /// Always `null`.
    pub caller: Option<String>,
    /// Always `null`.
    pub cognito_authentication_provider: Option<String>,
    /// Always `null`.
    pub cognito_authentication_type: Option<String>,
    /// Always `null`.
    pub cognito_identity_id: Option<String>,
    /// Always `null`.
    pub cognito_identity_pool_id: Option<String>,
    /// Always `null`.
    pub principal_org_id: Option<String>,
    /// The client's address.
    pub source_ip: String,
    /// Always `null`.
    pub user: Option<String>,
    /// The `User-Agent` header, `null` without one.
    pub user_agent: Option<String>,
    /// Always `null`.
    pub user_arn: Option<String>,
}

pub(crate) fn build(
    matched: &Matched<'_>,
    parts: &Parts,
    body: &[u8],
    meta: &RequestMeta,
) -> ProxyEventV1 {
    let mut headers = BTreeMap::new();
    let mut multi_value_headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in header_pairs(&parts.headers) {
        if name == "content-length" {
            continue;
        }
        let name = title_case(name);
        headers.insert(name.clone(), value.clone());
        multi_value_headers.entry(name).or_default().push(value);
    }

    let mut query = BTreeMap::new();
    let mut multi_value_query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in query_pairs(parts.uri.query().unwrap_or_default()) {
        query.insert(name.clone(), value.clone());
        multi_value_query.entry(name).or_default().push(value);
    }

    let (body, is_base64_encoded) = encode_body(&parts.headers, body);
    let (request_time, request_time_epoch) = request_time(meta.time);
    let domain_name = domain_name(parts);
    let method = parts.method.as_str().to_string();

    ProxyEventV1 {
        resource: matched.resource.clone(),
        path: matched.path.clone(),
        http_method: method.clone(),
        headers: non_empty(headers),
        multi_value_headers: non_empty(multi_value_headers),
        query_string_parameters: non_empty(query),
        multi_value_query_string_parameters: non_empty(multi_value_query),
        path_parameters: non_empty(matched.path_parameters.clone()),
        stage_variables: None,
        request_context: RequestContextV1 {
            account_id: meta.account_id.clone(),
            api_id: meta.api_id.clone(),
            domain_prefix: domain_prefix(&domain_name),
            domain_name,
            extended_request_id: meta.extended_request_id.clone(),
            http_method: method,
            identity: Identity {
                access_key: None,
                account_id: None,
                caller: None,
                cognito_authentication_provider: None,
                cognito_authentication_type: None,
                cognito_identity_id: None,
                cognito_identity_pool_id: None,
                principal_org_id: None,
                source_ip: source_ip(meta.source_ip),
                user: None,
                user_agent: user_agent(parts),
                user_arn: None,
            },
            path: parts.uri.path().to_string(),
            protocol: protocol(parts),
            request_id: meta.request_id.clone(),
            request_time,
            request_time_epoch,
            resource_id: stable_id(&format!("{} {}", meta.api_id, matched.resource), 6),
            resource_path: matched.resource.clone(),
            stage: matched.stage.clone(),
        },
        body,
        is_base64_encoded,
    }
}

fn non_empty<V>(map: BTreeMap<String, V>) -> Option<BTreeMap<String, V>> {
    (!map.is_empty()).then_some(map)
}

/// `x-amz-date` → `X-Amz-Date`.
fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::routes::{RouteSpec, RouteTable};

    fn meta() -> RequestMeta {
        RequestMeta {
            source_ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            request_id: "req".into(),
            extended_request_id: "ext=".into(),
            time: time::OffsetDateTime::UNIX_EPOCH,
            account_id: "123456789012".into(),
            api_id: "abcdefghij".into(),
        }
    }

    fn event(table: &RouteTable, request: http::Request<&'static [u8]>) -> ProxyEventV1 {
        let (parts, body) = request.into_parts();
        let matched = match table.lookup(&parts.method, parts.uri.path()) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        build(&matched, &parts, body, &meta())
    }

    #[test]
    fn title_case_names() {
        assert_eq!(title_case("content-type"), "Content-Type");
        assert_eq!(title_case("x-amz-date"), "X-Amz-Date");
        assert_eq!(title_case("host"), "Host");
    }

    #[test]
    fn duplicates_keep_the_last_in_headers_and_all_in_multi_value() {
        let table = match RouteTable::new([RouteSpec::rest("GET", "/q", "dev", "f")]) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let request = http::Request::get("/dev/q?a=1&a=2&b=3")
            .header("accept", "text/html")
            .header("accept", "application/json")
            .header("content-length", "0")
            .header("connection", "keep-alive")
            .body(&b""[..]);
        let Ok(request) = request else {
            panic!("request")
        };
        let e = event(&table, request);
        let headers = e.headers.unwrap_or_default();
        assert_eq!(
            headers.get("Accept").map(String::as_str),
            Some("application/json")
        );
        assert!(!headers.contains_key("Content-Length"));
        assert!(!headers.contains_key("Connection"));
        let multi = e.multi_value_headers.unwrap_or_default();
        assert_eq!(multi["Accept"], vec!["text/html", "application/json"]);
        let query = e.query_string_parameters.unwrap_or_default();
        assert_eq!(query["a"], "2");
        let multi_query = e.multi_value_query_string_parameters.unwrap_or_default();
        assert_eq!(multi_query["a"], vec!["1", "2"]);
        assert_eq!(multi_query["b"], vec!["3"]);
        assert_eq!(e.body, None);
        assert_eq!(e.path_parameters, None);
        assert_eq!(e.request_context.request_time, "01/Jan/1970:00:00:00 +0000");
    }
}
