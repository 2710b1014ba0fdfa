//! An HTTP request as the gateway receives it (`METHOD target`, header lines, a
//! blank line, the body) → `stratus_gateway::serve` over a route table with every
//! route shape (REST with a path parameter and a greedy path, HTTP API, `$default`,
//! function URL, CORS). The event handed to the function must be valid JSON carrying
//! the body exactly (as text or base64), and the answer a well-formed response.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stratus_fuzz::block_on;
use stratus_gateway::{CorsConfig, RouteSpec, RouteTable};

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        RouteTable::new([
            RouteSpec::rest("GET", "/users/{id}", "dev", "svc-dev-getUser")
                .with_cors(CorsConfig::serverless_default(["GET"])),
            RouteSpec::rest("ANY", "/admin/{proxy+}", "dev", "svc-dev-admin"),
            RouteSpec::http_api("POST", "/orders/{id}/items", "svc-dev-items"),
            RouteSpec::http_api("*", "*", "svc-dev-default"),
            RouteSpec::function_url("svc-dev-hook").with_qualifier("provisioned"),
        ])
        .unwrap_or_else(|e| panic!("{e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(request) = request(data) else { return };
    let sent_body = request.body().clone();
    let request = request.map(Full::new);
    let response = block_on(stratus_gateway::serve(
        table(),
        request,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "000000000000",
        |_route, payload| {
            let event: Value = serde_json::from_slice(&payload)
                .unwrap_or_else(|e| panic!("event is not JSON: {e}"));
            check_body(&event, &sent_body);
            std::future::ready(Ok(Bytes::from_static(
                br#"{"statusCode":201,"headers":{"x-a":"b"},"body":"ok"}"#,
            )))
        },
    ));
    let _ = response.status();
});

/// The event's body is the request body: text when it was given as text, else base64.
fn check_body(event: &Value, sent: &Bytes) {
    let b64 = event["isBase64Encoded"].as_bool().unwrap_or(false);
    match event.get("body").and_then(Value::as_str) {
        None => assert!(sent.is_empty(), "body dropped"),
        Some(text) if b64 => {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_or_else(|e| panic!("body is not base64: {e}"));
            assert_eq!(raw, sent.as_ref());
        }
        Some(text) => assert_eq!(text.as_bytes(), sent.as_ref()),
    }
}

/// `METHOD target\nname: value\n…\n\nbody`; `None` when http refuses a part (the
/// HTTP server would have refused it before the gateway saw it).
fn request(data: &[u8]) -> Option<Request<Bytes>> {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or((data, &[][..]), |i| (&data[..i], &data[i + 2..]));
    let (head, body) = split;
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.lines();
    let (method, target) = lines.next()?.split_once(' ')?;
    let mut builder = Request::builder().method(method).uri(target);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        builder = builder.header(name.trim(), value.trim());
    }
    builder.body(Bytes::copy_from_slice(body)).ok()
}
