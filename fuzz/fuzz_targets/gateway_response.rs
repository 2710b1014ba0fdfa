//! A function's result (any bytes: functions return what they like) → the HTTP
//! response the gateway answers with, for each route kind (REST payload 1.0, HTTP API
//! and function URL payload 2.0). Malformed results must become the API's error
//! response, never a panic, and a mapped body must be what the result said.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stratus_gateway::response::function_response;
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
});
