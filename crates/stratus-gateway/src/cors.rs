//! CORS: the settings of a route, the gateway's answer to a preflight, and
//! the headers added to actual responses.
//!
//! What AWS does, and so Stratus:
//! - REST APIs (`http` events with `cors`): the Serverless Framework adds a
//!   mock `OPTIONS` method per path answering `200` with
//!   `Access-Control-Allow-Origin/-Headers/-Methods` (and `-Credentials`,
//!   `-Max-Age`, `Cache-Control` when set). On AWS the function itself must add
//!   `Access-Control-Allow-Origin` to actual responses; Stratus adds it when
//!   the function did not (it never overrides the function's own).
//! - HTTP APIs and function URLs (`cors` settings of the API or URL): the
//!   gateway answers preflights itself with `204` (HTTP API) or `200`
//!   (function URL), and sets the CORS headers on actual responses, replacing
//!   the function's. No CORS headers at all when the `Origin` is not allowed
//!   (an HTTP API drops the function's own then too).
//! - The gateway's own errors (404, 413, 429, 500/502, 504): an HTTP API with
//!   CORS adds its CORS headers to them and answers preflights to any path,
//!   even one without a route; Stratus does the same for function URLs. A
//!   REST API does neither: its default gateway responses carry no CORS
//!   headers (that needs `GatewayResponse` resources, which `cors: true` does
//!   not create), and an `OPTIONS` to a path without an `OPTIONS` method is a
//!   403 `Missing Authentication Token`.
//!
//! Origins: `*` allows any (and is sent as `*`); an entry with `*` inside
//! (`https://*.example.com`) is a wildcard pattern; others match exactly
//! (ASCII case-insensitive). A matching origin is echoed back.

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use crate::ids::stamp_request_id;
use crate::kind::RouteKind;

/// Request headers the Serverless Framework allows when `cors: true`.
pub const DEFAULT_ALLOW_HEADERS: [&str; 7] = [
    "Content-Type",
    "X-Amz-Date",
    "Authorization",
    "X-Api-Key",
    "X-Amz-Security-Token",
    "X-Amz-User-Agent",
    "X-Amzn-Trace-Id",
];

/// CORS settings of a route (an `http` event's `cors`, an HTTP API's
/// `provider.httpApi.cors`, or a function URL's `cors`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsConfig {
    /// Allowed origins: `*`, exact origins, or patterns with `*`.
    pub allow_origins: Vec<String>,
    /// Request headers a preflight allows.
    pub allow_headers: Vec<String>,
    /// Methods a preflight allows.
    pub allow_methods: Vec<String>,
    /// Response headers exposed to the page (`Access-Control-Expose-Headers`).
    pub expose_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age` of preflight answers, in seconds.
    pub max_age: Option<u32>,
    /// `Cache-Control` of REST preflight answers.
    pub cache_control: Option<String>,
}

impl CorsConfig {
    /// What `cors: true` means on an `http` event: origin `*`, the
    /// Serverless default headers, `OPTIONS` and the route's methods.
    pub fn serverless_default<I, S>(methods: I) -> CorsConfig
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut allow_methods = vec!["OPTIONS".to_string()];
        push_unique(
            &mut allow_methods,
            methods.into_iter().map(|m| m.as_ref().to_ascii_uppercase()),
        );
        CorsConfig {
            allow_origins: vec!["*".to_string()],
            allow_headers: DEFAULT_ALLOW_HEADERS
                .iter()
                .map(|h| h.to_string())
                .collect(),
            allow_methods,
            ..CorsConfig::default()
        }
    }

    /// Adds another route's settings on the same path: lists are united,
    /// credentials allowed if either allows them, the first max age and
    /// cache control kept.
    pub fn merge(&mut self, other: &CorsConfig) {
        push_unique(&mut self.allow_origins, other.allow_origins.iter().cloned());
        push_unique(&mut self.allow_headers, other.allow_headers.iter().cloned());
        push_unique(&mut self.allow_methods, other.allow_methods.iter().cloned());
        push_unique(
            &mut self.expose_headers,
            other.expose_headers.iter().cloned(),
        );
        self.allow_credentials |= other.allow_credentials;
        if self.max_age.is_none() {
            self.max_age = other.max_age;
        }
        if self.cache_control.is_none() {
            self.cache_control.clone_from(&other.cache_control);
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request with this
    /// `Origin` header: `*` when any origin is allowed, the origin itself when
    /// it is allowed, else `None`.
    pub fn allowed_origin(&self, origin: Option<&str>) -> Option<String> {
        if self.allow_origins.iter().any(|o| o == "*") {
            return Some("*".to_string());
        }
        let origin = origin?;
        self.allow_origins
            .iter()
            .any(|pattern| {
                if pattern.contains('*') {
                    wildcard_match(pattern, origin)
                } else {
                    pattern.eq_ignore_ascii_case(origin)
                }
            })
            .then(|| origin.to_string())
    }

    /// Adds the CORS headers of an actual (non-preflight) response.
    pub fn apply(&self, kind: RouteKind, origin: Option<&str>, headers: &mut HeaderMap) {
        if kind == RouteKind::HttpApi {
            // An HTTP API with CORS ignores the CORS headers its integration
            // returns, whether or not the origin is allowed.
            for name in [
                ACCESS_CONTROL_ALLOW_ORIGIN,
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                ACCESS_CONTROL_EXPOSE_HEADERS,
                ACCESS_CONTROL_ALLOW_HEADERS,
                ACCESS_CONTROL_ALLOW_METHODS,
                ACCESS_CONTROL_MAX_AGE,
            ] {
                headers.remove(name);
            }
        }
        let Some(allow) = self.allowed_origin(origin) else {
            return;
        };
        // REST: the function's own headers win; HTTP API and URLs: the gateway's.
        let keep_own = kind == RouteKind::Rest;
        let mut set = |name: HeaderName, value: &str| {
            if keep_own && headers.contains_key(&name) {
                return;
            }
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set(ACCESS_CONTROL_ALLOW_ORIGIN, &allow);
        if self.allow_credentials {
            set(ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
        if !self.expose_headers.is_empty() {
            set(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                &self.expose_headers.join(","),
            );
        }
    }

    /// Headers of the answer to a preflight from this `Origin`.
    pub fn preflight_headers(&self, kind: RouteKind, origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let allow = self.allowed_origin(origin);
        if allow.is_none() && kind != RouteKind::Rest {
            return headers;
        }
        let mut set = |name: HeaderName, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        if let Some(allow) = &allow {
            set(ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        }
        if !self.allow_headers.is_empty() {
            set(ACCESS_CONTROL_ALLOW_HEADERS, &self.allow_headers.join(","));
        }
        if !self.allow_methods.is_empty() {
            set(ACCESS_CONTROL_ALLOW_METHODS, &self.allow_methods.join(","));
        }
        if self.allow_credentials {
            set(ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
        if let Some(max_age) = self.max_age {
            set(ACCESS_CONTROL_MAX_AGE, &max_age.to_string());
        }
        if kind == RouteKind::Rest {
            if let Some(cache_control) = &self.cache_control {
                set(CACHE_CONTROL, cache_control);
            }
        }
        headers
    }
}

/// A preflight the gateway answers itself (from [`crate::RouteTable::preflight`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// The API answering.
    pub kind: RouteKind,
    /// The CORS settings of the path, merged over its routes.
    pub cors: CorsConfig,
}

impl Preflight {
    /// The answer: `200` (REST API, function URL) or `204` (HTTP API) with
    /// an empty body, the CORS headers, and the request id headers.
    pub fn response(&self, origin: Option<&str>, request_id: &str) -> Response<Bytes> {
        let status = match self.kind {
            RouteKind::HttpApi => StatusCode::NO_CONTENT,
            RouteKind::Rest | RouteKind::FunctionUrl => StatusCode::OK,
        };
        let mut response = Response::new(Bytes::new());
        *response.status_mut() = status;
        let headers = response.headers_mut();
        *headers = self.cors.preflight_headers(self.kind, origin);
        if self.kind == RouteKind::Rest {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if status != StatusCode::NO_CONTENT {
            headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        stamp_request_id(self.kind, request_id, headers);
        response
    }
}

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !list.iter().any(|x| x.eq_ignore_ascii_case(&item)) {
            list.push(item);
        }
    }
}

/// `*` in `pattern` matches any run of characters; ASCII case-insensitive.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let text = text.to_ascii_lowercase();
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: exact.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn cors_true_is_the_serverless_default() {
        let c = CorsConfig::serverless_default(["get"]);
        assert_eq!(c.allow_origins, vec!["*"]);
        assert_eq!(c.allow_methods, vec!["OPTIONS", "GET"]);
        assert_eq!(c.allow_headers.len(), 7);
        assert!(c.allow_headers.contains(&"X-Amzn-Trace-Id".to_string()));
    }

    #[test]
    fn rest_preflight_is_a_200_with_the_allowed_methods_and_headers() {
        let pf = Preflight {
            kind: RouteKind::Rest,
            cors: CorsConfig::serverless_default(["POST"]),
        };
        let r = pf.response(Some("https://app.example.com"), "req-1");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.body().is_empty());
        let h = r.headers();
        assert_eq!(header(h, "access-control-allow-origin"), Some("*"));
        assert_eq!(
            header(h, "access-control-allow-methods"),
            Some("OPTIONS,POST")
        );
        assert_eq!(
            header(h, "access-control-allow-headers"),
            Some("Content-Type,X-Amz-Date,Authorization,X-Api-Key,X-Amz-Security-Token,X-Amz-User-Agent,X-Amzn-Trace-Id")
        );
        assert_eq!(header(h, "x-amzn-requestid"), Some("req-1"));
        assert_eq!(header(h, "access-control-allow-credentials"), None);
    }

    #[test]
    fn http_api_preflight_is_a_204_and_echoes_an_allowed_origin() {
        let cors = CorsConfig {
            allow_origins: vec![
                "https://*.example.com".into(),
                "http://localhost:3000".into(),
            ],
            allow_headers: vec!["content-type".into()],
            allow_methods: vec!["GET".into(), "POST".into()],
            expose_headers: vec![],
            allow_credentials: true,
            max_age: Some(600),
            cache_control: None,
        };
        let pf = Preflight {
            kind: RouteKind::HttpApi,
            cors,
        };
        let r = pf.response(Some("https://app.example.com"), "abc=");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let h = r.headers();
        assert_eq!(
            header(h, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(header(h, "access-control-allow-credentials"), Some("true"));
        assert_eq!(header(h, "access-control-max-age"), Some("600"));
        assert_eq!(header(h, "access-control-allow-methods"), Some("GET,POST"));
        assert_eq!(header(h, "apigw-requestid"), Some("abc="));

        let denied = pf.response(Some("https://evil.test"), "abc=");
        assert_eq!(denied.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            header(denied.headers(), "access-control-allow-origin"),
            None
        );
        assert_eq!(
            header(denied.headers(), "access-control-allow-methods"),
            None
        );

        let exact = pf.response(Some("HTTP://LOCALHOST:3000"), "abc=");
        assert_eq!(
            header(exact.headers(), "access-control-allow-origin"),
            Some("HTTP://LOCALHOST:3000")
        );
    }

    #[test]
    fn actual_responses_get_the_allow_origin_header() {
        let cors = CorsConfig::serverless_default(["GET"]);
        let mut h = HeaderMap::new();
        cors.apply(RouteKind::Rest, Some("https://a.test"), &mut h);
        assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));

        // REST keeps the function's own value; HTTP APIs replace it.
        let mut own = HeaderMap::new();
        own.insert(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://mine.test"),
        );
        let mut rest = own.clone();
        cors.apply(RouteKind::Rest, Some("https://a.test"), &mut rest);
        assert_eq!(
            header(&rest, "access-control-allow-origin"),
            Some("https://mine.test")
        );
        let mut api = own;
        cors.apply(RouteKind::HttpApi, Some("https://a.test"), &mut api);
        assert_eq!(header(&api, "access-control-allow-origin"), Some("*"));

        let strict = CorsConfig {
            allow_origins: vec!["https://ok.test".into()],
            expose_headers: vec!["x-total".into(), "etag".into()],
            ..CorsConfig::default()
        };
        let mut h = HeaderMap::new();
        strict.apply(RouteKind::FunctionUrl, Some("https://other.test"), &mut h);
        assert!(h.is_empty());
        strict.apply(RouteKind::FunctionUrl, Some("https://ok.test"), &mut h);
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("https://ok.test")
        );
        assert_eq!(
            header(&h, "access-control-expose-headers"),
            Some("x-total,etag")
        );
        let mut none = HeaderMap::new();
        strict.apply(RouteKind::FunctionUrl, None, &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn http_apis_drop_the_functions_cors_headers_for_a_foreign_origin() {
        let strict = CorsConfig {
            allow_origins: vec!["https://ok.test".into()],
            ..CorsConfig::default()
        };
        let mut h = HeaderMap::new();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strict.apply(RouteKind::HttpApi, Some("https://other.test"), &mut h);
        assert_eq!(header(&h, "access-control-allow-origin"), None);
        assert_eq!(header(&h, "access-control-allow-credentials"), None);
        assert_eq!(header(&h, "content-type"), Some("text/plain"));
    }

    #[test]
    fn merge_unites_lists() {
        let mut a = CorsConfig::serverless_default(["GET"]);
        let mut b = CorsConfig::serverless_default(["post"]);
        b.allow_origins = vec!["https://x.test".into()];
        b.max_age = Some(60);
        b.allow_credentials = true;
        a.merge(&b);
        assert_eq!(a.allow_methods, vec!["OPTIONS", "GET", "POST"]);
        assert_eq!(a.allow_origins, vec!["*", "https://x.test"]);
        assert_eq!(a.allow_headers.len(), 7);
        assert_eq!(a.max_age, Some(60));
        assert!(a.allow_credentials);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match(
            "https://*.example.com",
            "https://a.b.example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "https://example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "https://a.example.com.evil"
        ));
        assert!(wildcard_match(
            "http://localhost:*",
            "http://localhost:5173"
        ));
        assert!(wildcard_match("*", "anything"));
    }
}
