//! What a runtime sends to the Runtime API: method and path (first line,
//! `METHOD /path`), the `Lambda-Runtime-Function-Error-Type` header (second line) and
//! the body (the rest) → `Route::parse` and `ErrorBody::parse`, the pure parsing the
//! listener does before anything reaches the scheduler. The error body handed to the
//! invoker must always be valid JSON of Lambda's shape.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use stratus_fuzz::first_line;
use stratus_runtime_api::{ErrorBody, Route};

fuzz_target!(|data: &[u8]| {
    let (request_line, rest) = first_line(data);
    let (header, body) = first_line(rest);
    let (method, path) = request_line
        .split_once(' ')
        .unwrap_or(("GET", &request_line));
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let route = Route::parse(&method, path);
    let id = match route {
        Route::Response { request_id } | Route::Error { request_id } => Some(request_id),
        _ => None,
    };
    if let Some(id) = id {
        assert!(!id.contains('/'), "request id {id:?} spans segments");
        assert!(path.contains(id));
    }
    let _ = route.body_limit();

    let header = (!header.is_empty()).then_some(header.as_str());
    let parsed = ErrorBody::parse(body, header);
    assert!(!parsed.error_type.is_empty(), "an error always has a type");
    let json = parsed.to_json();
    let back: ErrorBody = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {json:?}"));
    // Same type, message and frames. (Numbers inside frames may move by one ulp: the
    // workspace's serde_json parses floats fast, not round-trip exact.)
    assert_eq!(back.error_type, parsed.error_type);
    assert_eq!(back.error_message, parsed.error_message);
    assert_eq!(back.stack_trace.len(), parsed.stack_trace.len());
});
