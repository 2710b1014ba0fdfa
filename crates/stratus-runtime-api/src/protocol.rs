//! Paths, headers, limits and body shapes of the Runtime API, in one place.

use serde::{Deserialize, Serialize};

/// Largest response a runtime may post (6 MB, as Lambda).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// Largest error or init-error body we accept from a runtime.
pub(crate) const MAX_ERROR_BYTES: usize = 1024 * 1024;

const PREFIX: &str = "/2018-06-01/runtime/";

/// What a Runtime API request asks for, read from its method and path alone (the
/// body is read afterwards, up to [`Route::body_limit`]). Pure, so it can be fuzzed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET invocation/next`.
    Next,
    /// `POST init/error`.
    InitError,
    /// `POST invocation/{id}/response`.
    Response {
        /// The `{id}` segment, as sent (checked against the invocation later).
        request_id: &'a str,
    },
    /// `POST invocation/{id}/error`.
    Error {
        /// The `{id}` segment, as sent.
        request_id: &'a str,
    },
    /// Anything else: 404.
    Unknown,
}

impl<'a> Route<'a> {
    /// The route of `method` and `path` (the request target's path, no query).
    pub fn parse(method: &http::Method, path: &'a str) -> Route<'a> {
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return Route::Unknown;
        };
        match (method, rest) {
            (&http::Method::GET, "invocation/next") => Route::Next,
            (&http::Method::POST, "init/error") => Route::InitError,
            (&http::Method::POST, r) => {
                let Some(tail) = r.strip_prefix("invocation/") else {
                    return Route::Unknown;
                };
                match tail.split_once('/') {
                    Some((request_id, "response")) => Route::Response { request_id },
                    Some((request_id, "error")) => Route::Error { request_id },
                    _ => Route::Unknown,
                }
            }
            _ => Route::Unknown,
        }
    }

    /// The largest body this route reads: 6 MB for a response, 1 MB for errors,
    /// none for the rest.
    pub fn body_limit(&self) -> usize {
        match self {
            Route::Response { .. } => MAX_RESPONSE_BYTES,
            Route::Error { .. } | Route::InitError => MAX_ERROR_BYTES,
            Route::Next | Route::Unknown => 0,
        }
    }
}

/// Header names of the Runtime API.
pub mod headers {
    /// Request id of the invocation.
    pub const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
    /// Deadline, epoch milliseconds.
    pub const DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
    /// ARN the caller used.
    pub const INVOKED_FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
    /// X-Ray trace header.
    pub const TRACE_ID: &str = "lambda-runtime-trace-id";
    /// Client context (JSON).
    pub const CLIENT_CONTEXT: &str = "lambda-runtime-client-context";
    /// Cognito identity (JSON).
    pub const COGNITO_IDENTITY: &str = "lambda-runtime-cognito-identity";
    /// Error type of a posted error, when the body lacks one.
    pub const FUNCTION_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
}

/// Lambda's error body: `{"errorMessage","errorType","stackTrace"}`, plus `cause`
/// (the exception's cause, same shape, nested) when Java's runtime sends one.
/// Runtimes send `stackTrace` (Python, Java, Rust) or `trace` (Node); both are kept
/// as `stackTrace`, and any other fields (such as `requestId`) are dropped.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// Human-readable message.
    #[serde(rename = "errorMessage", default)]
    pub error_message: String,
    /// Error type, e.g. `Runtime.ImportModuleError` or `TypeError`.
    #[serde(rename = "errorType", default)]
    pub error_type: String,
    /// Stack frames, when the runtime sent any.
    #[serde(
        rename = "stackTrace",
        alias = "trace",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "stack_lines"
    )]
    pub stack_trace: Vec<serde_json::Value>,
    /// The cause of a Java exception, as Lambda's Java runtime reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<serde_json::Value>,
}

fn stack_lines<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<serde_json::Value>, D::Error> {
    // Accept an array (of strings, or Python's [file, line, fn, text] lists) or a string.
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Null => Vec::new(),
        other => vec![other],
    })
}

impl ErrorBody {
    /// Parses what a runtime posted to `/error` or `/init/error`. A body that is not
    /// Lambda's JSON shape is kept as the message so the caller still sees it.
    pub fn parse(body: &[u8], header_type: Option<&str>) -> Self {
        let mut parsed = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => b,
            Err(_) if body.is_empty() => ErrorBody::default(),
            Err(_) => ErrorBody {
                error_message: String::from_utf8_lossy(body).into_owned(),
                ..ErrorBody::default()
            },
        };
        if parsed.error_type.is_empty() {
            parsed.error_type = header_type.unwrap_or("Unhandled").to_string();
        }
        parsed
    }

    /// A body with just a type and message.
    pub fn new(error_type: &str, message: impl Into<String>) -> Self {
        Self {
            error_message: message.into(),
            error_type: error_type.to_string(),
            stack_trace: Vec::new(),
            cause: None,
        }
    }

    /// The JSON bytes, as returned to an invoker.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_node_trace_and_python_stack() {
        let node = ErrorBody::parse(
            br#"{"errorType":"TypeError","errorMessage":"x","trace":["a","b"]}"#,
            None,
        );
        assert_eq!(node.stack_trace.len(), 2);
        let py = ErrorBody::parse(br#"{"errorType":"E","errorMessage":"m","stackTrace":[["f",1,"g","h"]],"requestId":"r"}"#, None);
        assert_eq!(py.stack_trace.len(), 1);
        assert_eq!(
            py.to_json(),
            br#"{"errorMessage":"m","errorType":"E","stackTrace":[["f",1,"g","h"]]}"#.to_vec()
        );
    }

    #[test]
    fn keeps_a_java_cause() {
        let java = ErrorBody::parse(
            br#"{"errorMessage":"An error occurred during JSON parsing","errorType":"java.lang.RuntimeException","stackTrace":[],"cause":{"errorMessage":"m","errorType":"java.lang.IllegalArgumentException","stackTrace":["a.B.c(B.java:1)"]}}"#,
            None,
        );
        assert_eq!(
            java.cause.as_ref().unwrap()["errorType"],
            "java.lang.IllegalArgumentException"
        );
        let back: serde_json::Value = serde_json::from_slice(&java.to_json()).unwrap();
        assert_eq!(back["cause"]["stackTrace"][0], "a.B.c(B.java:1)");
    }

    #[test]
    fn fuzzer_found_error_body_keeps_its_shape() {
        // Found by fuzz/fuzz_targets/runtime_api.rs: a frame holding a number past
        // f64's exact integers. The body handed on must stay Lambda's shape, with the
        // header's type since the body has none.
        let body = br#"{"erro@@@@rMe":"m","stackTrace":[[1111111111111111111111120,"g$,'{h"]],"requestId":"r"}"#;
        let e = ErrorBody::parse(body, Some("Ru.o$m"));
        assert_eq!(e.error_type, "Ru.o$m");
        assert_eq!(e.error_message, "");
        assert_eq!(e.stack_trace.len(), 1);
        let back: ErrorBody = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!((back.error_type, back.stack_trace.len()), (e.error_type, 1));
    }

    #[test]
    fn routes_from_method_and_path() {
        use http::Method;
        let p = |m: &Method, path: &'static str| Route::parse(m, path);
        assert_eq!(
            p(&Method::GET, "/2018-06-01/runtime/invocation/next"),
            Route::Next
        );
        assert_eq!(
            p(&Method::POST, "/2018-06-01/runtime/init/error"),
            Route::InitError
        );
        assert_eq!(
            p(&Method::POST, "/2018-06-01/runtime/invocation/abc/response"),
            Route::Response { request_id: "abc" }
        );
        assert_eq!(
            p(&Method::POST, "/2018-06-01/runtime/invocation/abc/error"),
            Route::Error { request_id: "abc" }
        );
        // Wrong method, extra segments, another prefix: all unknown, never a panic.
        for (m, path) in [
            (Method::POST, "/2018-06-01/runtime/invocation/next"),
            (Method::GET, "/2018-06-01/runtime/invocation/abc/response"),
            (
                Method::POST,
                "/2018-06-01/runtime/invocation/abc/response/x",
            ),
            (Method::POST, "/2018-06-01/runtime/invocation/"),
            (Method::POST, "/2018-06-01/runtime/invocation"),
            (Method::GET, "/2018-06-01/runtime"),
            (Method::GET, "/"),
        ] {
            assert_eq!(p(&m, path), Route::Unknown, "{m} {path}");
        }
        assert_eq!(Route::Next.body_limit(), 0);
        assert_eq!(
            Route::Response { request_id: "a" }.body_limit(),
            MAX_RESPONSE_BYTES
        );
    }

    #[test]
    fn empty_or_garbage_bodies_keep_what_was_said() {
        let e = ErrorBody::parse(b"", Some("Runtime.Custom"));
        assert_eq!(e.error_type, "Runtime.Custom");
        let g = ErrorBody::parse(b"not json", None);
        assert_eq!(g.error_message, "not json");
        assert_eq!(g.error_type, "Unhandled");
    }
}
