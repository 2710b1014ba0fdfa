//! A function's result as an HTTP response, and the gateway's own errors.
//!
//! Format 1.0 (REST APIs): the result must be a JSON object with only the
//! fields `statusCode` (a number or numeric string, default 200), `headers`
//! (values strings or booleans), `multiValueHeaders` (arrays of those),
//! `body` (a string) and `isBase64Encoded` (a boolean); anything else is
//! "Malformed Lambda proxy response". A header named in both `headers` and
//! `multiValueHeaders` takes the multi-value values only. Without a
//! `Content-Type` the response is `application/json`.
//!
//! Format 2.0 (HTTP APIs, function URLs): a JSON object with `statusCode` is
//! read like 1.0 plus `cookies` (each becomes a `Set-Cookie`), header values
//! may also be numbers, `multiValueHeaders` and unknown fields are ignored,
//! and a missing `Content-Type` is `text/plain; charset=utf-8`. Any other
//! JSON (an object without `statusCode`, a string, a number…) is the
//! simplified form: `200`, `content-type: application/json`, the result
//! itself, as returned, for body.
//!
//! A malformed result is answered like a function error, in the words of
//! the API in front (see [`GatewayError`]): a REST API `502 {"message":
//! "Internal server error"}`, an HTTP API `500 {"message":"Internal Server
//! Error"}`, a function URL `502 Internal Server Error`. Every response gets
//! the request id headers ([`stamp_request_id`]).

use base64::Engine as _;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use serde_json::{Map, Value};

// Re-exported where callers found it before it moved to `ids`.
pub use crate::ids::stamp_request_id;
use crate::kind::{PayloadVersion, RouteKind};
use crate::protocol::{headers, messages};

/// Why a function's result is not a valid proxy response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedResponse {
    /// Not JSON at all.
    #[error("the result is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object (format 1.0).
    #[error("the result is not a JSON object")]
    NotObject,
    /// A field format 1.0 does not have.
    #[error("`{0}` is not a field of a proxy response")]
    UnknownField(String),
    /// `statusCode` is not an HTTP status code.
    #[error("`statusCode` is not an HTTP status code: {0}")]
    StatusCode(String),
    /// `headers` or `multiValueHeaders` is not an object.
    #[error("`{0}` is not an object")]
    HeaderMap(&'static str),
    /// A header name or value that cannot be sent.
    #[error("header `{name}`: {reason}")]
    Header {
        /// The header name as given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `body` is not a string.
    #[error("`body` is not a string")]
    Body,
    /// `isBase64Encoded` is not a boolean.
    #[error("`isBase64Encoded` is not a boolean")]
    IsBase64Encoded,
    /// `isBase64Encoded` is true but `body` is not base64.
    #[error("`body` is not valid base64")]
    Base64,
    /// `cookies` is not an array of strings.
    #[error("`cookies` is not an array of strings")]
    Cookies,
}

/// An answer the gateway gives without a (valid) function response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// HTTP API (or function URL) route not found: 404 `Not Found`.
    #[error("not found")]
    NotFound,
    /// REST API resource or method not found: 403 `Missing Authentication Token`.
    #[error("missing authentication token (no such REST resource or method)")]
    MissingAuthenticationToken,
    /// Request body over the limit: 413 `Request Too Long`.
    #[error("request body too large")]
    RequestTooLarge,
    /// Throttled: 429 `Too Many Requests`.
    #[error("too many requests")]
    TooManyRequests,
    /// The function did not answer within the integration timeout: 504
    /// `Endpoint request timed out`.
    #[error("endpoint request timed out")]
    Timeout,
    /// The function failed (an error result, a crash, its own timeout):
    /// REST API 502 `Internal server error`, HTTP API 500 `Internal Server
    /// Error`, function URL 502 `Internal Server Error`.
    #[error("function error")]
    FunctionError,
    /// The function's result is not a valid proxy response: answered as
    /// [`GatewayError::FunctionError`].
    #[error("malformed function response: {0}")]
    MalformedResponse(#[from] MalformedResponse),
    /// The invocation could not be made at all (the server is shutting down,
    /// no environment could be started): 500, as API Gateway answers when
    /// Lambda refuses the invocation request.
    #[error("the function could not be invoked")]
    IntegrationFailure,
}

impl GatewayError {
    /// The HTTP status the API of `kind` answers with.
    pub fn status(&self, kind: RouteKind) -> StatusCode {
        match self {
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::MissingAuthenticationToken => StatusCode::FORBIDDEN,
            GatewayError::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::FunctionError | GatewayError::MalformedResponse(_) => match kind {
                RouteKind::Rest | RouteKind::FunctionUrl => StatusCode::BAD_GATEWAY,
                RouteKind::HttpApi => StatusCode::INTERNAL_SERVER_ERROR,
            },
            GatewayError::IntegrationFailure => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error text, as the API of `kind` words it.
    pub fn message(&self, kind: RouteKind) -> &'static str {
        match self {
            GatewayError::NotFound => messages::NOT_FOUND,
            GatewayError::MissingAuthenticationToken => messages::MISSING_AUTHENTICATION_TOKEN,
            GatewayError::RequestTooLarge => messages::REQUEST_TOO_LONG,
            GatewayError::TooManyRequests => messages::TOO_MANY_REQUESTS,
            GatewayError::Timeout => messages::ENDPOINT_REQUEST_TIMED_OUT,
            GatewayError::FunctionError
            | GatewayError::MalformedResponse(_)
            | GatewayError::IntegrationFailure => match kind {
                RouteKind::Rest => messages::INTERNAL_SERVER_ERROR,
                RouteKind::HttpApi | RouteKind::FunctionUrl => {
                    messages::INTERNAL_SERVER_ERROR_CAPITALISED
                }
            },
        }
    }

    /// Whether this is the failure of the function or its invocation (the
    /// 5xx answers other than a timeout).
    fn is_internal(&self) -> bool {
        matches!(
            self,
            GatewayError::FunctionError
                | GatewayError::MalformedResponse(_)
                | GatewayError::IntegrationFailure
        )
    }

    /// `x-amzn-ErrorType` of REST API errors, where AWS sends one.
    fn error_type(&self) -> Option<&'static str> {
        match self {
            GatewayError::MissingAuthenticationToken => Some("MissingAuthenticationTokenException"),
            GatewayError::RequestTooLarge => Some("BadRequestException"),
            GatewayError::FunctionError
            | GatewayError::MalformedResponse(_)
            | GatewayError::IntegrationFailure => Some("InternalServerErrorException"),
            GatewayError::NotFound | GatewayError::TooManyRequests | GatewayError::Timeout => None,
        }
    }

    /// The response: `{"message": "…"}` (REST APIs write a space after the
    /// colon, HTTP APIs do not; a function URL's function error is the bare
    /// text `Internal Server Error`), `application/json`, the request id
    /// headers, and for REST APIs `x-amzn-ErrorType` where AWS sends it.
    /// No CORS headers: see [`crate::Matched::apply_cors_to_error`].
    pub fn to_response(&self, kind: RouteKind, request_id: &str) -> Response<Bytes> {
        let message = self.message(kind);
        let body = match kind {
            RouteKind::Rest => format!(r#"{{"message": "{message}"}}"#),
            RouteKind::FunctionUrl if self.is_internal() => message.to_string(),
            RouteKind::HttpApi | RouteKind::FunctionUrl => format!(r#"{{"message":"{message}"}}"#),
        };
        let mut response = Response::new(Bytes::from(body));
        *response.status_mut() = self.status(kind);
        let h = response.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if kind == RouteKind::Rest {
            if let Some(error_type) = self.error_type() {
                h.insert(
                    HeaderName::from_static(headers::AMZN_ERROR_TYPE),
                    HeaderValue::from_static(error_type),
                );
            }
        }
        stamp_request_id(kind, request_id, h);
        response
    }
}

/// [`GatewayError::RequestTooLarge`] when a body of `len` bytes is over the
/// API's limit ([`RouteKind::max_request_bytes`]).
pub fn check_request_size(kind: RouteKind, len: usize) -> Result<(), GatewayError> {
    if len > kind.max_request_bytes() {
        Err(GatewayError::RequestTooLarge)
    } else {
        Ok(())
    }
}

/// The response for a function's result, in the route's payload version,
/// with the request id headers. `Err` when the result is malformed.
pub fn map_result(
    kind: RouteKind,
    payload: &[u8],
    request_id: &str,
) -> Result<Response<Bytes>, MalformedResponse> {
    let mut response = match kind.payload_version() {
        PayloadVersion::V1 => map_v1(payload)?,
        PayloadVersion::V2 => map_v2(payload)?,
    };
    stamp_request_id(kind, request_id, response.headers_mut());
    Ok(response)
}

/// [`map_result`], answering a malformed result as a function error.
pub fn function_response(kind: RouteKind, payload: &[u8], request_id: &str) -> Response<Bytes> {
    map_result(kind, payload, request_id)
        .unwrap_or_else(|e| GatewayError::from(e).to_response(kind, request_id))
}

const V1_FIELDS: [&str; 5] = [
    "statusCode",
    "headers",
    "multiValueHeaders",
    "body",
    "isBase64Encoded",
];

/// Format 1.0 result → response (without request id headers).
pub fn map_v1(payload: &[u8]) -> Result<Response<Bytes>, MalformedResponse> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| MalformedResponse::NotJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(MalformedResponse::NotObject);
    };
    if let Some(unknown) = obj.keys().find(|k| !V1_FIELDS.contains(&k.as_str())) {
        return Err(MalformedResponse::UnknownField(unknown.clone()));
    }
    let status = status_code(obj.get("statusCode"))?;
    let single = object_field(&obj, "headers")?;
    let multi = object_field(&obj, "multiValueHeaders")?;

    let mut headers = HeaderMap::new();
    if let Some(single) = single {
        for (name, value) in single {
            let shadowed = multi.is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(name)));
            if !shadowed {
                append(&mut headers, name, header_text(name, value, false)?)?;
            }
        }
    }
    if let Some(multi) = multi {
        for (name, values) in multi {
            match values {
                Value::Array(values) => {
                    for value in values {
                        append(&mut headers, name, header_text(name, value, false)?)?;
                    }
                }
                Value::Null => {}
                other => append(&mut headers, name, header_text(name, other, false)?)?,
            }
        }
    }
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let body = body(&obj)?;
    Ok(build(status, headers, body))
}

/// Format 2.0 result → response (without request id headers).
pub fn map_v2(payload: &[u8]) -> Result<Response<Bytes>, MalformedResponse> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| MalformedResponse::NotJson(e.to_string()))?;
    let obj = match value {
        Value::Object(obj) if obj.contains_key("statusCode") => obj,
        _ => {
            // The simplified form: the result itself is the JSON body.
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(build(
                StatusCode::OK,
                headers,
                Bytes::copy_from_slice(payload),
            ));
        }
    };
    let status = status_code(obj.get("statusCode"))?;
    let mut headers = HeaderMap::new();
    if let Some(single) = object_field(&obj, "headers")? {
        for (name, value) in single {
            append(&mut headers, name, header_text(name, value, true)?)?;
        }
    }
    match obj.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for cookie in cookies {
                let Value::String(cookie) = cookie else {
                    return Err(MalformedResponse::Cookies);
                };
                append(&mut headers, "set-cookie", cookie.clone())?;
            }
        }
        Some(_) => return Err(MalformedResponse::Cookies),
    }
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    let body = body(&obj)?;
    Ok(build(status, headers, body))
}

fn build(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A number or numeric string in 100–599; absent or null is 200.
fn status_code(value: Option<&Value>) -> Result<StatusCode, MalformedResponse> {
    let code = match value {
        None | Some(Value::Null) => return Ok(StatusCode::OK),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    code.and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| {
            MalformedResponse::StatusCode(value.map(Value::to_string).unwrap_or_default())
        })
}

fn object_field<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a Map<String, Value>>, MalformedResponse> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(MalformedResponse::HeaderMap(field)),
    }
}

/// A header value as text: strings and booleans, and in 2.0 numbers too.
fn header_text(name: &str, value: &Value, numbers: bool) -> Result<String, MalformedResponse> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) if numbers => Ok(n.to_string()),
        _ => Err(MalformedResponse::Header {
            name: name.to_string(),
            reason: if numbers {
                "the value is not a string, number or boolean"
            } else {
                "the value is not a string or boolean"
            },
        }),
    }
}

fn append(headers: &mut HeaderMap, name: &str, value: String) -> Result<(), MalformedResponse> {
    let header_name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| MalformedResponse::Header {
            name: name.to_string(),
            reason: "not a valid header name",
        })?;
    let header_value = HeaderValue::from_str(&value).map_err(|_| MalformedResponse::Header {
        name: name.to_string(),
        reason: "the value has characters a header cannot carry",
    })?;
    headers.append(header_name, header_value);
    Ok(())
}

fn body(obj: &Map<String, Value>) -> Result<Bytes, MalformedResponse> {
    let base64 = match obj.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(MalformedResponse::IsBase64Encoded),
    };
    let text = match obj.get("body") {
        None | Some(Value::Null) => return Ok(Bytes::new()),
        Some(Value::String(s)) => s,
        Some(_) => return Err(MalformedResponse::Body),
    };
    if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(|_| MalformedResponse::Base64)
    } else {
        Ok(Bytes::from(text.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(json: &str) -> Response<Bytes> {
        match map_v1(json.as_bytes()) {
            Ok(r) => r,
            Err(e) => panic!("{json}: {e}"),
        }
    }

    fn v2(json: &str) -> Response<Bytes> {
        match map_v2(json.as_bytes()) {
            Ok(r) => r,
            Err(e) => panic!("{json}: {e}"),
        }
    }

    fn values(r: &Response<Bytes>, name: &str) -> Vec<String> {
        r.headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn v1_status_headers_and_body() {
        let r = v1(
            r#"{"statusCode":201,"headers":{"X-Custom":"a","Content-Type":"text/html"},"body":"<p>hi</p>","isBase64Encoded":false}"#,
        );
        assert_eq!(r.status(), 201);
        assert_eq!(values(&r, "x-custom"), ["a"]);
        assert_eq!(values(&r, "content-type"), ["text/html"]);
        assert_eq!(r.body().as_ref(), b"<p>hi</p>");
    }

    #[test]
    fn v1_multi_value_headers_win_over_headers_of_the_same_name() {
        let r = v1(r#"{
            "statusCode": 200,
            "headers": {"Set-Cookie": "ignored=1", "X-Single": "s", "X-Flag": true},
            "multiValueHeaders": {"set-cookie": ["a=1", "b=2"], "X-Multi": ["m1", "m2"]},
            "body": ""
        }"#);
        assert_eq!(values(&r, "set-cookie"), ["a=1", "b=2"]);
        assert_eq!(values(&r, "x-multi"), ["m1", "m2"]);
        assert_eq!(values(&r, "x-single"), ["s"]);
        assert_eq!(values(&r, "x-flag"), ["true"]);
    }

    #[test]
    fn v1_defaults_status_200_and_json_content_type() {
        let r = v1(r#"{"body":"{}"}"#);
        assert_eq!(r.status(), 200);
        assert_eq!(values(&r, "content-type"), ["application/json"]);
        let r = v1(r#"{"statusCode":"404"}"#);
        assert_eq!(r.status(), 404);
        assert!(r.body().is_empty());
    }

    #[test]
    fn v1_base64_body_is_decoded() {
        let r = v1(
            r#"{"statusCode":200,"headers":{"content-type":"image/png"},"body":"iVBORw0KGgo=","isBase64Encoded":true}"#,
        );
        assert_eq!(r.body().as_ref(), b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn v1_malformed_results() {
        for (json, why) in [
            ("not json", "not JSON"),
            (r#""a string""#, "not an object"),
            ("null", "not an object"),
            (
                r#"{"statusCode":200,"body":"x","cookies":["a=1"]}"#,
                "unknown field",
            ),
            (r#"{"statusCode":"abc"}"#, "status text"),
            (r#"{"statusCode":200.5}"#, "fractional status"),
            (r#"{"statusCode":42}"#, "status out of range"),
            (r#"{"statusCode":true}"#, "boolean status"),
            (r#"{"statusCode":200,"body":{"a":1}}"#, "object body"),
            (r#"{"statusCode":200,"body":12}"#, "number body"),
            (
                r#"{"statusCode":200,"body":"%%%","isBase64Encoded":true}"#,
                "bad base64",
            ),
            (
                r#"{"statusCode":200,"isBase64Encoded":"yes"}"#,
                "string flag",
            ),
            (r#"{"statusCode":200,"headers":["a"]}"#, "headers array"),
            (r#"{"statusCode":200,"headers":{"X-N":5}}"#, "number header"),
            (
                r#"{"statusCode":200,"headers":{"X-O":{"a":1}}}"#,
                "object header",
            ),
            (
                r#"{"statusCode":200,"headers":{"Bad Name":"v"}}"#,
                "header name",
            ),
            (
                r#"{"statusCode":200,"headers":{"X-V":"a\nb"}}"#,
                "header value",
            ),
            (
                r#"{"statusCode":200,"multiValueHeaders":{"X-M":[1]}}"#,
                "number in multi",
            ),
        ] {
            assert!(map_v1(json.as_bytes()).is_err(), "{why}: {json}");
            let r = function_response(RouteKind::Rest, json.as_bytes(), "rid");
            assert_eq!(r.status(), 502, "{why}");
            assert_eq!(
                r.body().as_ref(),
                br#"{"message": "Internal server error"}"#,
                "{why}"
            );
            assert_eq!(values(&r, "x-amzn-requestid"), ["rid"]);
        }
    }

    #[test]
    fn v2_cookies_become_set_cookie_headers() {
        let r = v2(r#"{
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-Count": 3},
            "cookies": ["Cookie_1=Value1; Expires=21 Oct 2021 07:48 GMT", "Cookie_2=Value2; Max-Age=78000"],
            "body": "{\"message\":\"Hello, world!\"}",
            "isBase64Encoded": false
        }"#);
        assert_eq!(r.status(), 201);
        assert_eq!(
            values(&r, "set-cookie"),
            [
                "Cookie_1=Value1; Expires=21 Oct 2021 07:48 GMT",
                "Cookie_2=Value2; Max-Age=78000"
            ]
        );
        assert_eq!(values(&r, "x-count"), ["3"]);
        assert_eq!(r.body().as_ref(), br#"{"message":"Hello, world!"}"#);
    }

    #[test]
    fn v2_simplified_results_are_json_bodies() {
        for result in [
            r#""Hello, world!""#,
            r#"{ "message": "Hello from Lambda!" }"#,
            "42",
            "[1,2]",
            "null",
            r#"{"body":"not a proxy response without statusCode"}"#,
        ] {
            let r = v2(result);
            assert_eq!(r.status(), 200, "{result}");
            assert_eq!(values(&r, "content-type"), ["application/json"]);
            assert_eq!(r.body().as_ref(), result.as_bytes(), "{result}");
        }
    }

    #[test]
    fn v2_defaults_and_ignored_fields() {
        let r =
            v2(r#"{"statusCode":200,"body":"plain","multiValueHeaders":{"X-M":["a"]},"extra":1}"#);
        assert_eq!(values(&r, "content-type"), ["text/plain; charset=utf-8"]);
        assert!(values(&r, "x-m").is_empty());
        let r = v2(r#"{"statusCode":200,"body":"aGk=","isBase64Encoded":true}"#);
        assert_eq!(r.body().as_ref(), b"hi");
    }

    #[test]
    fn v2_malformed_results() {
        for (json, why) in [
            ("{oops", "not JSON"),
            ("", "empty"),
            (r#"{"statusCode":"two hundred"}"#, "status text"),
            (r#"{"statusCode":[200]}"#, "status array"),
            (r#"{"statusCode":200,"body":{"a":1}}"#, "object body"),
            (
                r#"{"statusCode":200,"body":"@@","isBase64Encoded":true}"#,
                "bad base64",
            ),
            (r#"{"statusCode":200,"cookies":"a=1"}"#, "cookies string"),
            (r#"{"statusCode":200,"cookies":[1]}"#, "cookie number"),
            (r#"{"statusCode":200,"headers":{"X":null}}"#, "null header"),
        ] {
            assert!(map_v2(json.as_bytes()).is_err(), "{why}: {json}");
            let r = function_response(RouteKind::HttpApi, json.as_bytes(), "rid=");
            assert_eq!(r.status(), 500, "{why}");
            assert_eq!(r.body().as_ref(), br#"{"message":"Internal Server Error"}"#);
            let r = function_response(RouteKind::FunctionUrl, json.as_bytes(), "rid=");
            assert_eq!(r.status(), 502, "{why}");
            assert_eq!(r.body().as_ref(), b"Internal Server Error");
        }
    }

    #[test]
    fn every_response_carries_the_request_id() {
        let ok = r#"{"statusCode":200}"#.as_bytes();
        let r = function_response(RouteKind::HttpApi, ok, "JWhV6jMsoAMEJjQ=");
        assert_eq!(values(&r, "apigw-requestid"), ["JWhV6jMsoAMEJjQ="]);
        assert_eq!(values(&r, "x-amzn-requestid"), ["JWhV6jMsoAMEJjQ="]);
        let r = function_response(RouteKind::Rest, ok, "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
        assert_eq!(
            values(&r, "x-amzn-requestid"),
            ["c6af9ac6-7b61-11e6-9a41-93e8deadbeef"]
        );
        assert!(values(&r, "apigw-requestid").is_empty());
    }

    #[test]
    fn gateway_errors_have_aws_status_and_text() {
        for (error, status, text) in [
            (GatewayError::NotFound, 404, "Not Found"),
            (
                GatewayError::MissingAuthenticationToken,
                403,
                "Missing Authentication Token",
            ),
            (GatewayError::RequestTooLarge, 413, "Request Too Long"),
            (GatewayError::TooManyRequests, 429, "Too Many Requests"),
            (GatewayError::Timeout, 504, "Endpoint request timed out"),
        ] {
            let api = error.to_response(RouteKind::HttpApi, "id=");
            assert_eq!(api.status(), status);
            assert_eq!(
                api.body().as_ref(),
                format!(r#"{{"message":"{text}"}}"#).as_bytes()
            );
            assert_eq!(values(&api, "content-type"), ["application/json"]);
            assert_eq!(values(&api, "apigw-requestid"), ["id="]);
            let rest = error.to_response(RouteKind::Rest, "uuid");
            assert_eq!(rest.status(), status);
            assert_eq!(
                rest.body().as_ref(),
                format!(r#"{{"message": "{text}"}}"#).as_bytes()
            );
            assert_eq!(values(&rest, "x-amzn-requestid"), ["uuid"]);
        }
        let r = GatewayError::MissingAuthenticationToken.to_response(RouteKind::Rest, "u");
        assert_eq!(
            values(&r, "x-amzn-errortype"),
            ["MissingAuthenticationTokenException"]
        );
    }

    #[test]
    fn internal_errors_are_worded_by_the_api_in_front() {
        // (error, API, status, body)
        for (error, kind, status, body) in [
            (
                GatewayError::FunctionError,
                RouteKind::Rest,
                502,
                r#"{"message": "Internal server error"}"#,
            ),
            (
                GatewayError::FunctionError,
                RouteKind::HttpApi,
                500,
                r#"{"message":"Internal Server Error"}"#,
            ),
            (
                GatewayError::FunctionError,
                RouteKind::FunctionUrl,
                502,
                "Internal Server Error",
            ),
            (
                GatewayError::IntegrationFailure,
                RouteKind::Rest,
                500,
                r#"{"message": "Internal server error"}"#,
            ),
            (
                GatewayError::IntegrationFailure,
                RouteKind::HttpApi,
                500,
                r#"{"message":"Internal Server Error"}"#,
            ),
            (
                GatewayError::IntegrationFailure,
                RouteKind::FunctionUrl,
                500,
                "Internal Server Error",
            ),
        ] {
            let r = error.to_response(kind, "id");
            assert_eq!(r.status(), status, "{error:?} behind {kind}");
            assert_eq!(
                r.body().as_ref(),
                body.as_bytes(),
                "{error:?} behind {kind}"
            );
            assert_eq!(values(&r, "x-amzn-requestid"), ["id"]);
            let error_type = values(&r, "x-amzn-errortype");
            if kind == RouteKind::Rest {
                assert_eq!(error_type, ["InternalServerErrorException"]);
            } else {
                assert!(error_type.is_empty(), "{kind}");
            }
        }
    }

    #[test]
    fn request_size_limits() {
        assert!(check_request_size(RouteKind::Rest, 10 * 1024 * 1024).is_ok());
        assert_eq!(
            check_request_size(RouteKind::HttpApi, 10 * 1024 * 1024 + 1),
            Err(GatewayError::RequestTooLarge)
        );
        assert_eq!(
            check_request_size(RouteKind::FunctionUrl, 6 * 1024 * 1024 + 1),
            Err(GatewayError::RequestTooLarge)
        );
    }
}
