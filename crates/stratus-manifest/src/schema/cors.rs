//! `cors:` of `provider.httpApi` and of a function's `url` — `true`, `false` or
//! a map of settings, read into [`CorsSettings`] — and the headers that
//! `cors: true` allows on an HTTP API and on an `http` event.

use crate::spanned::{Node, Value};

use super::reader::{boolean, string_or_list, whole, Checker, Fields, Range};

/// `cors:` of `provider.httpApi` or of a function's `url` — `true`, or
/// `{allowedOrigins, allowedHeaders, allowedMethods, allowCredentials,
/// exposedResponseHeaders, maxAge}`. Each list is a list of strings or one
/// string. Keys left out take the values of `cors: true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsSettings {
    /// `allowedOrigins: [https://app.example.com, 'https://*.example.com']` —
    /// default `['*']`.
    pub allowed_origins: Vec<String>,
    /// `allowedHeaders: [Content-Type, Authorization]` — default the
    /// Serverless Framework's (`Content-Type`, `X-Amz-Date`, …).
    pub allowed_headers: Vec<String>,
    /// `allowedMethods: [GET, POST]`, upper-cased — `None` when not written (an
    /// HTTP API computes it when lowering; a function URL allows `*`).
    pub allowed_methods: Option<Vec<String>>,
    /// `allowCredentials: true` — default false.
    pub allow_credentials: bool,
    /// `exposedResponseHeaders: [x-total-count]` — default none.
    pub exposed_response_headers: Vec<String>,
    /// `maxAge: 600` — seconds browsers may cache a preflight answer, 0–86400.
    pub max_age: Option<u32>,
}

impl CorsSettings {
    /// What `cors: true` means, with these allowed headers.
    fn enabled(default_headers: &[&str]) -> Self {
        CorsSettings {
            allowed_origins: vec!["*".into()],
            allowed_headers: default_headers.iter().map(|h| h.to_string()).collect(),
            allowed_methods: None,
            allow_credentials: false,
            exposed_response_headers: Vec::new(),
            max_age: None,
        }
    }
}

/// `cors: true | false | {…}` of an HTTP API or a function URL.
pub(super) fn cors_settings(
    c: &mut Checker,
    node: &Node,
    path: &str,
    default_headers: &[&str],
) -> Option<CorsSettings> {
    // A bare string `true`/`false` is what a variable such as `${env:CORS}`
    // resolves to.
    let enabled = match &node.value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" || s == "false" => Some(s == "true"),
        _ => None,
    };
    if let Some(enabled) = enabled {
        return enabled.then(|| CorsSettings::enabled(default_headers));
    }
    let mut f = Fields::new(c, node, path, "true, false or a map of CORS settings")?;
    let mut cors = CorsSettings::enabled(default_headers);
    let mut list = |c: &mut Checker, key: &'static str| {
        let n = f.get(key)?;
        string_or_list(c, n, &f.path_of(key))
    };
    if let Some(v) = list(c, "allowedOrigins") {
        cors.allowed_origins = v;
    }
    if let Some(v) = list(c, "allowedHeaders") {
        cors.allowed_headers = v;
    }
    cors.allowed_methods = list(c, "allowedMethods")
        .map(|methods| methods.iter().map(|m| m.to_ascii_uppercase()).collect());
    if let Some(v) = list(c, "exposedResponseHeaders") {
        cors.exposed_response_headers = v;
    }
    if let Some(n) = f.get("allowCredentials") {
        cors.allow_credentials = boolean(c, n, &f.path_of("allowCredentials")).unwrap_or(false);
    }
    if let Some(n) = f.get("maxAge") {
        cors.max_age = whole(
            c,
            n,
            &f.path_of("maxAge"),
            "a whole number of seconds",
            Range::between(0, 86_400),
        );
    }
    f.finish(c, &[]);
    Some(cors)
}

/// Headers allowed by `cors: true` on an `http` event and by
/// `provider.httpApi.cors: true`, as in the Serverless Framework.
pub(super) const DEFAULT_CORS_HEADERS: &[&str] = &[
    "Content-Type",
    "X-Amz-Date",
    "Authorization",
    "X-Api-Key",
    "X-Amz-Security-Token",
    "X-Amz-User-Agent",
    "X-Amzn-Trace-Id",
];
