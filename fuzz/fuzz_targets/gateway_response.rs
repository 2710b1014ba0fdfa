//! A function's result (any bytes: functions return what they like) → the HTTP
//! response the gateway answers with, for each route kind (REST payload 1.0, HTTP API
//! and function URL payload 2.0). Malformed results must become the API's error
//! response, never a panic, and a mapped body must be what the result said.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stratus_gateway::response::{function_response, map_v1, map_v2};
use stratus_gateway::RouteKind;

fuzz_target!(|data: &[u8]| {
    for kind in [RouteKind::Rest, RouteKind::HttpApi, RouteKind::FunctionUrl] {
        let response = function_response(kind, data, "fuzz-request-id");
        let status = response.status().as_u16();
        assert!((100..=599).contains(&status), "{kind:?}: status {status}");
        assert!(
            response.headers().contains_key("x-amzn-requestid"),
            "{kind:?}: no request id"
        );
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        assert!(map_v1(data).is_err(), "v1 took a result that is not JSON");
        return;
    };
    // A text body (not base64) is passed on byte for byte.
    let text_body = match &value {
        Value::Object(o) if o.get("isBase64Encoded") != Some(&Value::Bool(true)) => {
            o.get("body").and_then(Value::as_str).map(str::to_string)
        }
        _ => None,
    };
    if let (Some(text), Ok(r)) = (&text_body, map_v1(data)) {
        assert_eq!(r.body().as_ref(), text.as_bytes(), "v1 body");
    }
    match map_v2(data) {
        Ok(r) => match &value {
            Value::Object(o) if o.contains_key("statusCode") => {
                if let Some(text) = &text_body {
                    assert_eq!(r.body().as_ref(), text.as_bytes(), "v2 body");
                }
            }
            // The simplified form: the result itself is the body.
            _ => assert_eq!(r.body().as_ref(), data, "v2 simplified body"),
        },
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
