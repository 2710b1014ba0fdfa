//! Snapshot tests: events built from requests modelled on the AWS
//! documentation's examples, compared with the payloads under
//! `tests/fixtures/` (see the README there for each example's source and the
//! documented differences). Request ids and times are injected so the
//! payloads are exact.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::net::IpAddr;

use serde_json::Value;
use stratus_gateway::{build_event, RequestMeta, RouteSpec, RouteTable};
use time::OffsetDateTime;

fn meta(
    source_ip: &str,
    request_id: &str,
    extended: &str,
    epoch_ms: i64,
    account: &str,
    api: &str,
) -> RequestMeta {
    let source_ip: IpAddr = match source_ip.parse() {
        Ok(ip) => ip,
        Err(e) => panic!("{source_ip}: {e}"),
    };
    let time = match OffsetDateTime::from_unix_timestamp_nanos(i128::from(epoch_ms) * 1_000_000) {
        Ok(t) => t,
        Err(e) => panic!("{epoch_ms}: {e}"),
    };
    RequestMeta {
        source_ip,
        request_id: request_id.to_string(),
        extended_request_id: extended.to_string(),
        time,
        account_id: account.to_string(),
        api_id: api.to_string(),
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => panic!("{path}: {e}"),
    };
    match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => panic!("{path}: {e}"),
    }
}

fn built(specs: Vec<RouteSpec>, request: http::Request<Vec<u8>>, meta: &RequestMeta) -> Value {
    let table = match RouteTable::new(specs) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let (parts, body) = request.into_parts();
    let matched = match table.lookup(&parts.method, parts.uri.path()) {
        Ok(m) => m,
        Err(e) => panic!("{} {}: {e}", parts.method, parts.uri),
    };
    let event = build_event(&matched, &parts, &body, meta);
    let bytes = match event.to_json() {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

fn assert_snapshot(name: &str, actual: &Value, expected: &Value) {
    if actual != expected {
        let pretty = serde_json::to_string_pretty(actual).unwrap_or_default();
        panic!("{name} differs; built:\n{pretty}");
    }
}

fn request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> http::Request<Vec<u8>> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    match builder.body(body.to_vec()) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

/// "Input format of a Lambda function for proxy integration" (REST API,
/// `POST /testStage/hello/world?name=me` on `ANY /{proxy+}`).
#[test]
fn v1_rest_proxy_post_matches_the_documented_payload() {
    let request = request(
        "POST",
        "/testStage/hello/world?name=me&multivalueName=you&multivalueName=me",
        &[
            ("Accept", "*/*"),
            ("Accept-Encoding", "gzip, deflate"),
            ("cache-control", "no-cache"),
            ("Content-Type", "application/json"),
            ("headerName", "headerValue"),
            ("Host", "gy415nuibc.execute-api.us-east-1.amazonaws.com"),
            ("Postman-Token", "9f583ef0-ed83-4a38-aef3-eb9ce3f7a57f"),
            ("User-Agent", "PostmanRuntime/2.4.5"),
            ("Content-Length", "14"),
        ],
        b"{\r\n\t\"a\": 1\r\n}",
    );
    let meta = meta(
        "192.168.196.186",
        "deef4878-7910-11e6-8f14-25afc3e9ae33",
        "ZJ0FtUEBIAMFqYw=",
        1_473_782_400_000,
        "12345678912",
        "gy415nuibc",
    );
    let actual = built(
        vec![RouteSpec::rest("ANY", "/{proxy+}", "testStage", "hello")],
        request,
        &meta,
    );
    assert_snapshot(
        "v1_rest_proxy_post.json",
        &actual,
        &fixture("v1_rest_proxy_post.json"),
    );
}

/// The `AWS_IAM` request context example (REST API, `GET /test/` on `/`),
/// without the IAM caller (Stratus has no authorizers).
#[test]
fn v1_rest_root_get_matches_the_documented_payload() {
    let request = request(
        "GET",
        "/test/",
        &[
            ("Host", "qr2gd9cfmf.execute-api.us-east-1.amazonaws.com"),
            ("User-Agent", "PostmanRuntime/7.1.1"),
        ],
        b"",
    );
    let meta = meta(
        "51.240.196.104",
        "3c3ecbaa-1690-11e8-ae31-8f39f1d24afd",
        "D1VZWHQ9IAMFTgA=",
        1_519_166_937_665,
        "123456789012",
        "qr2gd9cfmf",
    );
    let actual = built(
        vec![RouteSpec::rest("GET", "/", "test", "root")],
        request,
        &meta,
    );
    assert_snapshot(
        "v1_rest_root_get.json",
        &actual,
        &fixture("v1_rest_root_get.json"),
    );
}

/// "Payload format version" 2.0 example (HTTP API, `$default` route).
#[test]
fn v2_http_api_matches_the_documented_payload() {
    let request = request(
        "POST",
        "/my/path?parameter1=value1&parameter1=value2&parameter2=value",
        &[
            ("Cookie", "cookie1; cookie2"),
            ("Header1", "value1"),
            ("Header2", "value1"),
            ("Header2", "value2"),
            ("Host", "id.execute-api.us-east-1.amazonaws.com"),
            ("User-Agent", "agent"),
        ],
        b"Hello from Lambda",
    );
    let meta = meta(
        "192.0.2.1",
        "id",
        "",
        1_583_348_638_390,
        "123456789012",
        "api-id",
    );
    let actual = built(vec![RouteSpec::http_api("*", "*", "fn")], request, &meta);
    assert_snapshot("v2_http_api.json", &actual, &fixture("v2_http_api.json"));
}

/// "Request payload format" of function URLs, served at
/// `/lambda-url/{function}/my/path`.
#[test]
fn v2_function_url_matches_the_documented_payload() {
    let request = request(
        "POST",
        "/lambda-url/my-function/my/path?parameter1=value1&parameter1=value2&parameter2=value",
        &[
            ("cookie", "cookie1"),
            ("cookie", "cookie2"),
            ("header1", "value1"),
            ("header2", "value1"),
            ("header2", "value2"),
            ("host", "abcdefg.lambda-url.us-west-2.on.aws"),
            ("user-agent", "agent"),
        ],
        b"Hello from client!",
    );
    let meta = meta(
        "123.123.123.123",
        "id",
        "",
        1_631_055_022_677,
        "123456789012",
        "abcdefg",
    );
    let actual = built(vec![RouteSpec::function_url("my-function")], request, &meta);
    assert_snapshot(
        "v2_function_url.json",
        &actual,
        &fixture("v2_function_url.json"),
    );
}

#[test]
fn v2_route_with_parameters_and_a_binary_body() {
    let png = b"\x89PNG\r\n\x1a\n\x00\x00";
    let request = request(
        "PUT",
        "/uploads/my%20photo.png?tag=a&tag=b",
        &[("content-type", "image/png"), ("host", "localhost:3000")],
        png,
    );
    let meta = meta(
        "127.0.0.1",
        "JWhV6jMsoAMEJjQ=",
        "",
        0,
        "000000000000",
        "localapi01",
    );
    let actual = built(
        vec![RouteSpec::http_api("PUT", "/uploads/{name}", "upload")],
        request,
        &meta,
    );
    assert_eq!(actual["routeKey"], "PUT /uploads/{name}");
    assert_eq!(actual["requestContext"]["routeKey"], "PUT /uploads/{name}");
    assert_eq!(actual["rawPath"], "/uploads/my photo.png");
    assert_eq!(actual["rawQueryString"], "tag=a&tag=b");
    assert_eq!(actual["queryStringParameters"]["tag"], "a,b");
    assert_eq!(actual["pathParameters"]["name"], "my photo.png");
    assert_eq!(actual["isBase64Encoded"], true);
    assert_eq!(actual["body"], "iVBORw0KGgoAAA==");
    assert_eq!(actual["requestContext"]["domainName"], "localhost:3000");
    assert_eq!(actual["requestContext"]["domainPrefix"], "localhost");
    assert_eq!(
        actual["requestContext"]["time"],
        "01/Jan/1970:00:00:00 +0000"
    );
}

#[test]
fn v1_binary_body_is_base64() {
    let request = request(
        "POST",
        "/dev/files",
        &[("content-type", "application/octet-stream")],
        &[0, 1, 2, 255],
    );
    let meta = meta("10.0.0.2", "r", "e", 0, "000000000000", "localapi01");
    let actual = built(
        vec![RouteSpec::rest("POST", "/files", "dev", "f")],
        request,
        &meta,
    );
    assert_eq!(actual["isBase64Encoded"], true);
    assert_eq!(actual["body"], "AAEC/w==");
    assert_eq!(
        actual["requestContext"]["identity"]["userAgent"],
        Value::Null
    );
}
