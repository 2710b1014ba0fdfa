//! The route table: which function serves a method and path.
//!
//! All three kinds of route share one listener, so each lives at its own place
//! in the URL space:
//! - `http` events (REST API, payload 1.0) at `/{stage}{path}`, e.g.
//!   `GET /dev/users/{id}`; the function sees the path without the stage, as on
//!   AWS.
//! - `httpApi` events (HTTP API, payload 2.0) at `{path}` itself, stage
//!   `$default`; `$default` (or `*`) catches whatever no other route matches.
//! - function URLs (payload 2.0) at `/lambda-url/{function-name}{rest}`, any
//!   method; the function sees `{rest}` (at least `/`) as its path.
//!
//! Matching, for REST and HTTP API routes alike: a route matches when every
//! segment does (`users` literally, `{id}` any one non-empty segment,
//! `{proxy+}` one or more segments, last only) and its method is the request's
//! or `ANY`. Among matches the most specific path wins, segment by segment
//! from the left: a literal beats a parameter, which beats a greedy variable;
//! when one path is a prefix of the other, the longer wins. On equal paths an
//! exact method beats `ANY`. `$default` comes last. (This is the HTTP API rule;
//! Stratus applies it to REST APIs too.) Literal segments are compared with
//! the request's segments percent-decoded, and parameter values are decoded.
//! A trailing `/` on the request path is ignored.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use http::{HeaderMap, Method};
use percent_encoding::percent_decode_str;

use crate::cors::{CorsConfig, Preflight};
use crate::protocol::{self, DEFAULT_ROUTE, FUNCTION_URL_SEGMENT};
use crate::response::GatewayError;

// The route kinds live in their own module so that CORS and response mapping,
// which this module uses, need not depend on the route table.
pub use crate::kind::{PayloadVersion, RouteKind};

/// One route as the manifest describes it; the input of [`RouteTable::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Which API the route belongs to.
    pub kind: RouteKind,
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`, `OPTIONS`, or `ANY` /
    /// `*` for all (case-insensitive). Ignored for function URLs and `$default`.
    pub method: String,
    /// `/users/{id}`, `/files/{proxy+}`; for HTTP APIs also `$default` or `*`
    /// (the catch-all). Ignored for function URLs.
    pub path: String,
    /// The REST API's stage (the service's stage, `dev` by default): the first
    /// segment of its URLs. Ignored for HTTP APIs and function URLs (their
    /// stage is `$default`).
    pub stage: String,
    /// The deployed function name.
    pub function: String,
    /// Version or alias to invoke, when not `$LATEST`.
    pub qualifier: Option<String>,
    /// CORS, when enabled.
    pub cors: Option<CorsConfig>,
}

impl RouteSpec {
    /// An `http` event.
    pub fn rest(
        method: impl Into<String>,
        path: impl Into<String>,
        stage: impl Into<String>,
        function: impl Into<String>,
    ) -> Self {
        RouteSpec {
            kind: RouteKind::Rest,
            method: method.into(),
            path: path.into(),
            stage: stage.into(),
            function: function.into(),
            qualifier: None,
            cors: None,
        }
    }

    /// An `httpApi` event.
    pub fn http_api(
        method: impl Into<String>,
        path: impl Into<String>,
        function: impl Into<String>,
    ) -> Self {
        RouteSpec {
            kind: RouteKind::HttpApi,
            method: method.into(),
            path: path.into(),
            stage: DEFAULT_ROUTE.to_string(),
            function: function.into(),
            qualifier: None,
            cors: None,
        }
    }

    /// A function URL.
    pub fn function_url(function: impl Into<String>) -> Self {
        RouteSpec {
            kind: RouteKind::FunctionUrl,
            method: "ANY".to_string(),
            path: "/".to_string(),
            stage: DEFAULT_ROUTE.to_string(),
            function: function.into(),
            qualifier: None,
            cors: None,
        }
    }

    /// With CORS settings.
    pub fn with_cors(mut self, cors: CorsConfig) -> Self {
        self.cors = Some(cors);
        self
    }

    /// Invoking a version or alias.
    pub fn with_qualifier(mut self, qualifier: impl Into<String>) -> Self {
        self.qualifier = Some(qualifier.into());
        self
    }
}

/// Problems that keep a route table from being built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteTableError {
    /// Two routes would serve the same requests.
    #[error("{first} and {second} serve the same requests")]
    Conflict {
        /// The route listed first.
        first: String,
        /// The route listed later.
        second: String,
    },
    /// A path template API Gateway would reject.
    #[error("{route}: invalid path: {reason}")]
    InvalidPath {
        /// The route.
        route: String,
        /// What is wrong.
        reason: String,
    },
    /// A method API Gateway does not route.
    #[error("{route}: `{method}` is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, ANY")]
    InvalidMethod {
        /// The route.
        route: String,
        /// The method as given.
        method: String,
    },
    /// A REST stage or function name that cannot be one URL segment.
    #[error("{route}: `{name}` cannot be a URL segment (it must be non-empty, without `/`)")]
    InvalidSegment {
        /// The route.
        route: String,
        /// The stage or function name.
        name: String,
    },
}

/// Why a request matched no route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No route's path matches.
    #[error("no route matches the path")]
    NotFound {
        /// The API whose URL space the path is in: `Rest` when its first
        /// segment is a REST stage; `None` otherwise.
        kind: Option<RouteKind>,
    },
    /// Routes match the path, but none the method.
    #[error("no route for this method; allowed: {}", allowed.join(", "))]
    MethodNotAllowed {
        /// The API of the routes that match the path.
        kind: RouteKind,
        /// Methods that would match, sorted.
        allowed: Vec<String>,
    },
}

impl RouteError {
    /// The error AWS answers with: a REST API answers 403 `Missing
    /// Authentication Token` for an unknown resource or method, an HTTP API
    /// 404 `Not Found`. Neither ever answers 405.
    pub fn gateway_error(&self) -> GatewayError {
        match self.kind() {
            RouteKind::Rest => GatewayError::MissingAuthenticationToken,
            RouteKind::HttpApi | RouteKind::FunctionUrl => GatewayError::NotFound,
        }
    }

    /// The API the answer comes from (HTTP API when unknown).
    pub fn kind(&self) -> RouteKind {
        match self {
            RouteError::NotFound { kind } => kind.unwrap_or(RouteKind::HttpApi),
            RouteError::MethodNotAllowed { kind, .. } => *kind,
        }
    }

    /// The full HTTP response for this error.
    pub fn response(&self, request_id: &str) -> http::Response<Bytes> {
        self.gateway_error().to_response(self.kind(), request_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

impl Segment {
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 0,
            Segment::Param(_) => 1,
            Segment::Greedy(_) => 2,
        }
    }

    /// Equal up to parameter names.
    fn same_shape(&self, other: &Segment) -> bool {
        match (self, other) {
            (Segment::Literal(a), Segment::Literal(b)) => a == b,
            (Segment::Param(_), Segment::Param(_)) | (Segment::Greedy(_), Segment::Greedy(_)) => {
                true
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// HTTP API `$default`.
    Default,
    /// A function URL: `/lambda-url/{function}/…`.
    Url,
    /// REST or HTTP API route; `full` includes the REST stage segment.
    Template {
        full: Vec<Segment>,
        resource: String,
    },
}

/// A route of the table: the spec, checked and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    spec: RouteSpec,
    /// `None` for any method.
    method: Option<Method>,
    pattern: Pattern,
}

impl Route {
    /// The spec the route was built from.
    pub fn spec(&self) -> &RouteSpec {
        &self.spec
    }

    /// Which API the route belongs to.
    pub fn kind(&self) -> RouteKind {
        self.spec.kind
    }

    /// The deployed function name.
    pub fn function(&self) -> &str {
        &self.spec.function
    }

    /// Version or alias to invoke.
    pub fn qualifier(&self) -> Option<&str> {
        self.spec.qualifier.as_deref()
    }

    /// CORS settings, when enabled.
    pub fn cors(&self) -> Option<&CorsConfig> {
        self.spec.cors.as_ref()
    }

    /// The method, or `None` when the route takes any.
    pub fn method(&self) -> Option<&Method> {
        self.method.as_ref()
    }

    /// The path template without the stage (`/users/{id}`), or `$default`
    /// for HTTP API catch-alls and function URLs.
    pub fn resource(&self) -> &str {
        match &self.pattern {
            Pattern::Template { resource, .. } => resource,
            Pattern::Default | Pattern::Url => DEFAULT_ROUTE,
        }
    }

    /// The v2.0 `routeKey`: `GET /users/{id}`, `ANY /{proxy+}` or `$default`.
    pub fn route_key(&self) -> String {
        match &self.pattern {
            Pattern::Template { resource, .. } => format!("{} {resource}", self.method_name()),
            Pattern::Default | Pattern::Url => DEFAULT_ROUTE.to_string(),
        }
    }

    /// Where the route is served on the gateway, for listings:
    /// `/dev/users/{id}`, `/users/{id}`, `/lambda-url/my-fn/`, or `/*` for
    /// `$default`.
    pub fn public_path(&self) -> String {
        match (&self.pattern, self.spec.kind) {
            (Pattern::Template { resource, .. }, RouteKind::Rest) => {
                if resource == "/" {
                    format!("/{}", self.spec.stage)
                } else {
                    format!("/{}{resource}", self.spec.stage)
                }
            }
            (Pattern::Template { resource, .. }, _) => resource.clone(),
            (Pattern::Url, _) => {
                format!("{}{}/", protocol::FUNCTION_URL_PREFIX, self.spec.function)
            }
            (Pattern::Default, _) => "/*".to_string(),
        }
    }

    /// `GET`, or `ANY`.
    pub fn method_name(&self) -> &str {
        self.method.as_ref().map_or("ANY", Method::as_str)
    }

    fn matches_method(&self, method: &Method) -> bool {
        match &self.method {
            None => true,
            Some(m) => m == method,
        }
    }

    fn describe(&self) -> String {
        match self.pattern {
            Pattern::Url => format!("the function URL of `{}`", self.spec.function),
            _ => format!(
                "`{}` route `{} {}` of `{}`",
                self.spec.kind,
                self.method_name(),
                self.public_path(),
                self.spec.function
            ),
        }
    }
}

/// A request's route, with what the path gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'a> {
    /// The route.
    pub route: &'a Route,
    /// Values of `{name}` and `{name+}` segments, percent-decoded.
    pub path_parameters: BTreeMap<String, String>,
    /// The path template without the stage (`/users/{id}`), or `$default`.
    pub resource: String,
    /// The REST stage, or `$default`.
    pub stage: String,
    /// The path the function sees: without the stage (REST, still
    /// percent-encoded as received), decoded (HTTP API, as AWS does), or after
    /// `/lambda-url/{name}` (function URLs, as received). At least `/`.
    pub path: String,
}

impl Matched<'_> {
    /// Adds the route's CORS headers, if it has CORS, to a response to a
    /// request with this `Origin`.
    pub fn apply_cors(&self, origin: Option<&str>, headers: &mut HeaderMap) {
        if let Some(cors) = self.route.cors() {
            cors.apply(self.route.kind(), origin, headers);
        }
    }

    /// Adds the route's CORS headers to an error the gateway made itself
    /// (413, 429, 500/502, 504) on this route. An HTTP API with CORS puts
    /// them on its own error responses too; so does Stratus for function
    /// URLs. A REST API does not: its default gateway responses carry no CORS
    /// headers unless `GatewayResponse` resources add them, which `cors: true`
    /// on an `http` event does not.
    pub fn apply_cors_to_error(&self, origin: Option<&str>, headers: &mut HeaderMap) {
        if self.route.kind() != RouteKind::Rest {
            self.apply_cors(origin, headers);
        }
    }
}

/// All routes of the deployed services, checked for conflicts.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    templates: Vec<Route>,
    urls: Vec<Route>,
    default: Option<Route>,
    rest_stages: BTreeSet<String>,
    /// The CORS settings of the HTTP API: those of its routes, merged. They
    /// answer preflights to paths no route serves and go on the API's 404s.
    http_api_cors: Option<CorsConfig>,
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

impl RouteTable {
    /// Checks and indexes the routes. Fails on the first invalid route or
    /// pair of conflicting routes.
    pub fn new(specs: impl IntoIterator<Item = RouteSpec>) -> Result<RouteTable, RouteTableError> {
        let mut table = RouteTable::default();
        for spec in specs {
            let route = parse(spec)?;
            if route.spec.kind == RouteKind::HttpApi {
                if let Some(cors) = route.cors() {
                    match &mut table.http_api_cors {
                        Some(all) => all.merge(cors),
                        None => table.http_api_cors = Some(cors.clone()),
                    }
                }
            }
            match &route.pattern {
                Pattern::Default => {
                    if let Some(other) = &table.default {
                        return Err(conflict(other, &route));
                    }
                    table.default = Some(route);
                }
                Pattern::Url => {
                    if let Some(other) = table
                        .urls
                        .iter()
                        .find(|u| u.spec.function == route.spec.function)
                    {
                        return Err(conflict(other, &route));
                    }
                    table.urls.push(route);
                }
                Pattern::Template { full, .. } => {
                    for other in &table.templates {
                        let Pattern::Template {
                            full: other_full, ..
                        } = &other.pattern
                        else {
                            continue;
                        };
                        let same_path = full.len() == other_full.len()
                            && full.iter().zip(other_full).all(|(a, b)| a.same_shape(b));
                        if same_path && route.method == other.method {
                            return Err(conflict(other, &route));
                        }
                    }
                    if route.spec.kind == RouteKind::Rest {
                        table.rest_stages.insert(route.spec.stage.clone());
                    }
                    table.templates.push(route);
                }
            }
        }
        Ok(table)
    }

    /// Every route: REST and HTTP API routes in the order given, then
    /// function URLs, then `$default`.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.templates
            .iter()
            .chain(&self.urls)
            .chain(self.default.as_ref())
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty() && self.urls.is_empty() && self.default.is_none()
    }

    /// The route for a request. `path` is the request URI's path, as
    /// received (percent-encoded, without the query).
    pub fn lookup(&self, method: &Method, path: &str) -> Result<Matched<'_>, RouteError> {
        let segments = split_path(path);
        if let Some(matched) = self.lookup_url(path, &segments) {
            return Ok(matched);
        }

        let mut best: Option<(&Route, Vec<(String, String)>)> = None;
        let mut path_kind = None;
        let mut allowed = BTreeSet::new();
        for route in &self.templates {
            let Some(params) = match_template(route, &segments) else {
                continue;
            };
            if !route.matches_method(method) {
                path_kind.get_or_insert(route.spec.kind);
                allowed.insert(route.method_name().to_string());
                continue;
            }
            let better = match &best {
                None => true,
                Some((current, _)) => compare(route, current) == Ordering::Less,
            };
            if better {
                best = Some((route, params));
            }
        }

        if let Some((route, params)) = best {
            return Ok(Matched {
                route,
                path_parameters: params.into_iter().collect(),
                resource: route.resource().to_string(),
                stage: stage_of(route),
                path: function_path(route, path),
            });
        }
        if let Some(route) = &self.default {
            return Ok(Matched {
                route,
                path_parameters: BTreeMap::new(),
                resource: DEFAULT_ROUTE.to_string(),
                stage: DEFAULT_ROUTE.to_string(),
                path: decode(path).into_owned(),
            });
        }
        if let Some(kind) = path_kind {
            return Err(RouteError::MethodNotAllowed {
                kind,
                allowed: allowed.into_iter().collect(),
            });
        }
        let in_rest = segments
            .first()
            .is_some_and(|s| self.rest_stages.contains(decode(s).as_ref()));
        Err(RouteError::NotFound {
            kind: in_rest.then_some(RouteKind::Rest),
        })
    }

    /// The CORS settings of the HTTP API (its routes', merged), if any.
    pub fn http_api_cors(&self) -> Option<&CorsConfig> {
        self.http_api_cors.as_ref()
    }

    /// The answer to a request that matched no route ([`RouteTable::lookup`]'s
    /// error): [`RouteError::response`], plus, for an HTTP API with CORS, its
    /// CORS headers, as API Gateway puts them on its own 404s.
    pub fn error_response(
        &self,
        error: &RouteError,
        origin: Option<&str>,
        request_id: &str,
    ) -> http::Response<Bytes> {
        let mut response = error.response(request_id);
        if error.kind() == RouteKind::HttpApi {
            if let Some(cors) = &self.http_api_cors {
                cors.apply(RouteKind::HttpApi, origin, response.headers_mut());
            }
        }
        response
    }

    /// A CORS preflight the gateway answers itself: an `OPTIONS` request to
    /// a path whose routes have CORS, unless a route takes `OPTIONS`
    /// explicitly (then the function answers). The CORS settings of all
    /// routes on the most specific matching path are merged, as the
    /// Serverless Framework merges them into one `OPTIONS` method per path.
    /// An HTTP API with CORS answers preflights to any path, even one no
    /// route serves (as API Gateway does), with its merged settings; a path
    /// under a REST stage is the REST API's, which does not.
    pub fn preflight(&self, method: &Method, path: &str) -> Option<Preflight> {
        if method != Method::OPTIONS {
            return None;
        }
        let segments = split_path(path);
        if let Some(matched) = self.lookup_url(path, &segments) {
            return matched.route.cors().map(|cors| Preflight {
                kind: RouteKind::FunctionUrl,
                cors: cors.clone(),
            });
        }

        let matching: Vec<&Route> = self
            .templates
            .iter()
            .filter(|r| match_template(r, &segments).is_some())
            .collect();
        if matching
            .iter()
            .any(|r| r.method.as_ref() == Some(&Method::OPTIONS))
        {
            return None;
        }
        let Some(best) = matching.iter().copied().min_by(|a, b| compare_paths(a, b)) else {
            if let Some(default) = &self.default {
                return default.cors().map(|cors| Preflight {
                    kind: default.spec.kind,
                    cors: cors.clone(),
                });
            }
            let in_rest = segments
                .first()
                .is_some_and(|s| self.rest_stages.contains(decode(s).as_ref()));
            if in_rest {
                return None;
            }
            return self.http_api_cors.as_ref().map(|cors| Preflight {
                kind: RouteKind::HttpApi,
                cors: cors.clone(),
            });
        };
        let mut merged: Option<CorsConfig> = None;
        for route in matching
            .iter()
            .filter(|r| compare_paths(r, best) == Ordering::Equal)
        {
            if let Some(cors) = route.cors() {
                match &mut merged {
                    Some(m) => m.merge(cors),
                    None => merged = Some(cors.clone()),
                }
            }
        }
        merged.map(|cors| Preflight {
            kind: best.spec.kind,
            cors,
        })
    }

    fn lookup_url<'a>(&'a self, path: &str, segments: &[&str]) -> Option<Matched<'a>> {
        if segments.first() != Some(&FUNCTION_URL_SEGMENT) {
            return None;
        }
        let name = segments.get(1)?;
        let route = self.urls.iter().find(|u| u.spec.function == *name)?;
        // The path after `/lambda-url/{name}`, as received.
        let prefix_len = 1 + FUNCTION_URL_SEGMENT.len() + 1 + name.len();
        let rest = path.get(prefix_len..).unwrap_or("");
        Some(Matched {
            route,
            path_parameters: BTreeMap::new(),
            resource: DEFAULT_ROUTE.to_string(),
            stage: DEFAULT_ROUTE.to_string(),
            path: if rest.is_empty() {
                "/".to_string()
            } else {
                rest.to_string()
            },
        })
    }
}

fn conflict(first: &Route, second: &Route) -> RouteTableError {
    RouteTableError::Conflict {
        first: first.describe(),
        second: second.describe(),
    }
}

fn label(spec: &RouteSpec) -> String {
    match spec.kind {
        RouteKind::FunctionUrl => format!("the function URL of `{}`", spec.function),
        kind => format!(
            "`{kind}` route `{} {}` of `{}`",
            spec.method, spec.path, spec.function
        ),
    }
}

fn parse(spec: RouteSpec) -> Result<Route, RouteTableError> {
    if spec.kind == RouteKind::FunctionUrl {
        if !is_segment(&spec.function) {
            return Err(RouteTableError::InvalidSegment {
                route: label(&spec),
                name: spec.function.clone(),
            });
        }
        return Ok(Route {
            spec,
            method: None,
            pattern: Pattern::Url,
        });
    }

    let method = parse_method(&spec)?;
    let path = spec.path.trim();
    if spec.kind == RouteKind::HttpApi && (path == "*" || path == DEFAULT_ROUTE) {
        // `$default` has no method on AWS; whatever method was written, it
        // catches every one.
        return Ok(Route {
            spec,
            method: None,
            pattern: Pattern::Default,
        });
    }

    let segments = parse_template(path).map_err(|reason| RouteTableError::InvalidPath {
        route: label(&spec),
        reason,
    })?;
    let resource = format!(
        "/{}",
        segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.clone(),
                Segment::Param(p) => format!("{{{p}}}"),
                Segment::Greedy(p) => format!("{{{p}+}}"),
            })
            .collect::<Vec<_>>()
            .join("/")
    );
    let mut full = Vec::with_capacity(segments.len() + 1);
    if spec.kind == RouteKind::Rest {
        if !is_segment(&spec.stage) {
            return Err(RouteTableError::InvalidSegment {
                route: label(&spec),
                name: spec.stage.clone(),
            });
        }
        full.push(Segment::Literal(spec.stage.clone()));
    }
    full.extend(segments);
    Ok(Route {
        spec,
        method,
        pattern: Pattern::Template { full, resource },
    })
}

fn parse_method(spec: &RouteSpec) -> Result<Option<Method>, RouteTableError> {
    let upper = spec.method.trim().to_ascii_uppercase();
    if upper == "ANY" || upper == "*" {
        return Ok(None);
    }
    if !METHODS.contains(&upper.as_str()) {
        return Err(RouteTableError::InvalidMethod {
            route: label(spec),
            method: spec.method.clone(),
        });
    }
    Method::from_bytes(upper.as_bytes())
        .map(Some)
        .map_err(|_| RouteTableError::InvalidMethod {
            route: label(spec),
            method: spec.method.clone(),
        })
}

fn parse_template(path: &str) -> Result<Vec<Segment>, String> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = trimmed.split('/').collect();
    let mut segments = Vec::with_capacity(parts.len());
    let mut names = BTreeSet::new();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err("empty segment (`//`)".to_string());
        }
        let segment = if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
        {
            let (name, greedy) = match inner.strip_suffix('+') {
                Some(name) => (name, true),
                None => (inner, false),
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return Err(format!(
                    "`{part}`: a parameter is `{{name}}` or `{{name+}}`, the name made of letters, digits, `_`, `-` and `.`"
                ));
            }
            if !names.insert(name.to_string()) {
                return Err(format!("parameter `{name}` appears twice"));
            }
            if greedy {
                if i + 1 != parts.len() {
                    return Err(format!("greedy `{part}` must be the last segment"));
                }
                Segment::Greedy(name.to_string())
            } else {
                Segment::Param(name.to_string())
            }
        } else if part.contains(['{', '}']) {
            return Err(format!(
                "`{part}`: a parameter must be a whole segment, `{{name}}` or `{{name+}}`"
            ));
        } else {
            Segment::Literal((*part).to_string())
        };
        segments.push(segment);
    }
    Ok(segments)
}

fn is_segment(s: &str) -> bool {
    !s.is_empty() && !s.contains('/')
}

/// The path's segments, raw; a trailing `/` is ignored.
fn split_path(path: &str) -> Vec<&str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Vec::new();
    }
    let mut segments: Vec<&str> = trimmed.split('/').collect();
    if segments.last() == Some(&"") {
        segments.pop();
    }
    segments
}

fn decode(s: &str) -> std::borrow::Cow<'_, str> {
    percent_decode_str(s).decode_utf8_lossy()
}

fn match_template(route: &Route, path: &[&str]) -> Option<Vec<(String, String)>> {
    let Pattern::Template { full, .. } = &route.pattern else {
        return None;
    };
    let mut params = Vec::new();
    for (i, segment) in full.iter().enumerate() {
        match segment {
            Segment::Literal(literal) => {
                if decode(path.get(i)?) != literal.as_str() {
                    return None;
                }
            }
            Segment::Param(name) => {
                let value = path.get(i)?;
                if value.is_empty() {
                    return None;
                }
                params.push((name.clone(), decode(value).into_owned()));
            }
            Segment::Greedy(name) => {
                let rest = path.get(i..)?;
                if rest.iter().all(|s| s.is_empty()) {
                    return None;
                }
                params.push((name.clone(), decode(&rest.join("/")).into_owned()));
                return Some(params);
            }
        }
    }
    (full.len() == path.len()).then_some(params)
}

/// `Less` when `a`'s path is more specific than `b`'s.
fn compare_paths(a: &Route, b: &Route) -> Ordering {
    let (Pattern::Template { full: fa, .. }, Pattern::Template { full: fb, .. }) =
        (&a.pattern, &b.pattern)
    else {
        return Ordering::Equal;
    };
    for (x, y) in fa.iter().zip(fb) {
        match x.rank().cmp(&y.rank()) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    // More segments: more specific.
    fb.len().cmp(&fa.len())
}

/// `Less` when `a` should serve rather than `b`: the more specific path,
/// then an exact method over `ANY`.
fn compare(a: &Route, b: &Route) -> Ordering {
    compare_paths(a, b).then_with(|| match (&a.method, &b.method) {
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    })
}

fn stage_of(route: &Route) -> String {
    match route.spec.kind {
        RouteKind::Rest => route.spec.stage.clone(),
        RouteKind::HttpApi | RouteKind::FunctionUrl => DEFAULT_ROUTE.to_string(),
    }
}

/// The path the function sees (see [`Matched::path`]).
fn function_path(route: &Route, path: &str) -> String {
    match route.spec.kind {
        RouteKind::Rest => {
            let after_slash = path.strip_prefix('/').unwrap_or(path);
            match after_slash.find('/') {
                Some(i) => after_slash[i..].to_string(),
                None => "/".to_string(),
            }
        }
        RouteKind::HttpApi | RouteKind::FunctionUrl => decode(path).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(specs: Vec<RouteSpec>) -> RouteTable {
        match RouteTable::new(specs) {
            Ok(t) => t,
            Err(e) => panic!("table: {e}"),
        }
    }

    fn hit<'a>(t: &'a RouteTable, method: Method, path: &str) -> Matched<'a> {
        match t.lookup(&method, path) {
            Ok(m) => m,
            Err(e) => panic!("{method} {path}: {e:?}"),
        }
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn literal_beats_parameter_beats_greedy() {
        let t = table(vec![
            RouteSpec::http_api("GET", "/pets/{proxy+}", "greedy"),
            RouteSpec::http_api("GET", "/pets/dog/{id}", "param"),
            RouteSpec::http_api("GET", "/pets/dog/1", "literal"),
        ]);
        assert_eq!(
            hit(&t, Method::GET, "/pets/dog/1").route.function(),
            "literal"
        );
        let m = hit(&t, Method::GET, "/pets/dog/2");
        assert_eq!(m.route.function(), "param");
        assert_eq!(m.path_parameters, params(&[("id", "2")]));
        assert_eq!(m.resource, "/pets/dog/{id}");
        let m = hit(&t, Method::GET, "/pets/cat/1");
        assert_eq!(m.route.function(), "greedy");
        assert_eq!(m.path_parameters, params(&[("proxy", "cat/1")]));
    }

    #[test]
    fn leftmost_difference_decides() {
        let t = table(vec![
            RouteSpec::http_api("GET", "/{a}/b", "param-first"),
            RouteSpec::http_api("GET", "/a/{b}", "literal-first"),
        ]);
        assert_eq!(
            hit(&t, Method::GET, "/a/b").route.function(),
            "literal-first"
        );
    }

    #[test]
    fn longer_greedy_prefix_wins() {
        let t = table(vec![
            RouteSpec::http_api("ANY", "/{proxy+}", "root"),
            RouteSpec::http_api("ANY", "/api/{proxy+}", "api"),
        ]);
        assert_eq!(hit(&t, Method::GET, "/api/x/y").route.function(), "api");
        assert_eq!(hit(&t, Method::GET, "/other").route.function(), "root");
    }

    #[test]
    fn greedy_needs_at_least_one_segment() {
        let t = table(vec![RouteSpec::http_api("GET", "/files/{proxy+}", "f")]);
        assert_eq!(
            t.lookup(&Method::GET, "/files"),
            Err(RouteError::NotFound { kind: None })
        );
        assert_eq!(
            t.lookup(&Method::GET, "/files/")
                .map(|m| m.route.function().to_string()),
            Err(RouteError::NotFound { kind: None })
        );
        let m = hit(&t, Method::GET, "/files/a/b/c.txt");
        assert_eq!(m.path_parameters, params(&[("proxy", "a/b/c.txt")]));
    }

    #[test]
    fn parameter_takes_one_segment_only() {
        let t = table(vec![RouteSpec::http_api("GET", "/users/{id}", "u")]);
        assert!(t.lookup(&Method::GET, "/users/1/posts").is_err());
        assert!(t.lookup(&Method::GET, "/users").is_err());
        assert_eq!(
            hit(&t, Method::GET, "/users/1/").path_parameters,
            params(&[("id", "1")])
        );
    }

    #[test]
    fn exact_method_beats_any_on_the_same_path() {
        let t = table(vec![
            RouteSpec::http_api("ANY", "/items", "any"),
            RouteSpec::http_api("POST", "/items", "post"),
        ]);
        assert_eq!(hit(&t, Method::POST, "/items").route.function(), "post");
        assert_eq!(hit(&t, Method::DELETE, "/items").route.function(), "any");
    }

    #[test]
    fn method_mismatch_falls_back_to_a_less_specific_route() {
        // As in the HTTP API docs: POST /pets/cat/1 goes to ANY /{proxy+}.
        let t = table(vec![
            RouteSpec::http_api("GET", "/pets/{proxy+}", "get-pets"),
            RouteSpec::http_api("*", "/{proxy+}", "any"),
        ]);
        assert_eq!(hit(&t, Method::POST, "/pets/cat/1").route.function(), "any");
        assert_eq!(
            hit(&t, Method::GET, "/pets/cat/1").route.function(),
            "get-pets"
        );
    }

    #[test]
    fn default_catches_the_rest_last() {
        let t = table(vec![
            RouteSpec::http_api("*", "*", "fallback"),
            RouteSpec::http_api("GET", "/users", "users"),
        ]);
        assert_eq!(hit(&t, Method::GET, "/users").route.function(), "users");
        let m = hit(&t, Method::POST, "/users");
        assert_eq!(m.route.function(), "fallback");
        assert_eq!(m.route.route_key(), "$default");
        assert_eq!(m.resource, "$default");
        let m = hit(&t, Method::GET, "/a%20b/c");
        assert_eq!(m.path, "/a b/c");
        assert_eq!(m.stage, "$default");
    }

    #[test]
    fn not_found_versus_method_not_allowed() {
        let t = table(vec![
            RouteSpec::http_api("GET", "/users/{id}", "get"),
            RouteSpec::http_api("DELETE", "/users/{id}", "delete"),
            RouteSpec::rest("POST", "/orders", "dev", "orders"),
        ]);
        assert_eq!(
            t.lookup(&Method::PUT, "/users/1"),
            Err(RouteError::MethodNotAllowed {
                kind: RouteKind::HttpApi,
                allowed: vec!["DELETE".into(), "GET".into()],
            })
        );
        assert_eq!(
            t.lookup(&Method::GET, "/nothing"),
            Err(RouteError::NotFound { kind: None })
        );
        // Under a REST stage: REST's answer (403 Missing Authentication Token).
        let err = t.lookup(&Method::GET, "/dev/nothing");
        assert_eq!(
            err,
            Err(RouteError::NotFound {
                kind: Some(RouteKind::Rest)
            })
        );
        let err = t.lookup(&Method::GET, "/dev/orders").map(|_| ());
        assert_eq!(
            err,
            Err(RouteError::MethodNotAllowed {
                kind: RouteKind::Rest,
                allowed: vec!["POST".into()],
            })
        );
    }

    #[test]
    fn route_errors_answer_as_aws_does() {
        let rest = RouteError::NotFound {
            kind: Some(RouteKind::Rest),
        }
        .response("r1");
        assert_eq!(rest.status(), 403);
        assert_eq!(
            rest.body().as_ref(),
            br#"{"message": "Missing Authentication Token"}"#
        );
        let api = RouteError::MethodNotAllowed {
            kind: RouteKind::HttpApi,
            allowed: vec!["GET".into()],
        }
        .response("r2");
        assert_eq!(api.status(), 404);
        assert_eq!(api.body().as_ref(), br#"{"message":"Not Found"}"#);
        assert_eq!(api.headers()["apigw-requestid"], "r2");
    }

    #[test]
    fn rest_routes_live_under_their_stage() {
        let t = table(vec![
            RouteSpec::rest("GET", "/users/{id}", "dev", "users"),
            RouteSpec::rest("GET", "/", "dev", "root"),
        ]);
        let m = hit(&t, Method::GET, "/dev/users/42");
        assert_eq!(m.route.function(), "users");
        assert_eq!(m.stage, "dev");
        assert_eq!(m.resource, "/users/{id}");
        assert_eq!(m.path, "/users/42");
        assert_eq!(m.path_parameters, params(&[("id", "42")]));
        assert!(t.lookup(&Method::GET, "/users/42").is_err());
        assert!(t.lookup(&Method::GET, "/prod/users/42").is_err());
        let root = hit(&t, Method::GET, "/dev");
        assert_eq!((root.route.function(), root.path.as_str()), ("root", "/"));
        let root = hit(&t, Method::GET, "/dev/");
        assert_eq!((root.resource.as_str(), root.path.as_str()), ("/", "/"));
        assert_eq!(
            t.routes().next().map(Route::public_path),
            Some("/dev/users/{id}".into())
        );
    }

    #[test]
    fn rest_path_stays_encoded_parameters_are_decoded() {
        let t = table(vec![RouteSpec::rest("GET", "/users/{email}", "dev", "u")]);
        let m = hit(&t, Method::GET, "/dev/users/a%2Bb%40example.com");
        assert_eq!(m.path, "/users/a%2Bb%40example.com");
        assert_eq!(m.path_parameters, params(&[("email", "a+b@example.com")]));
    }

    #[test]
    fn function_urls_take_any_method_and_path_under_their_prefix() {
        let t = table(vec![
            RouteSpec::function_url("svc-dev-hello").with_qualifier("provisioned"),
            RouteSpec::http_api("*", "*", "fallback"),
        ]);
        for (method, path, seen) in [
            (Method::GET, "/lambda-url/svc-dev-hello", "/"),
            (Method::POST, "/lambda-url/svc-dev-hello/", "/"),
            (
                Method::DELETE,
                "/lambda-url/svc-dev-hello/a/b%20c",
                "/a/b%20c",
            ),
        ] {
            let m = hit(&t, method, path);
            assert_eq!(m.route.function(), "svc-dev-hello");
            assert_eq!(m.route.qualifier(), Some("provisioned"));
            assert_eq!(m.route.kind(), RouteKind::FunctionUrl);
            assert_eq!(m.route.route_key(), "$default");
            assert_eq!(m.path, seen);
        }
        // Another name, or a name that merely starts the same, is not this URL.
        assert_eq!(
            hit(&t, Method::GET, "/lambda-url/svc-dev-hello2/x")
                .route
                .function(),
            "fallback"
        );
    }

    #[test]
    fn route_keys_and_public_paths() {
        let t = table(vec![
            RouteSpec::http_api("get", "/users/{id}", "a"),
            RouteSpec::http_api("ANY", "/{proxy+}", "b"),
            RouteSpec::function_url("c"),
            RouteSpec::http_api("*", "$default", "d"),
        ]);
        let keys: Vec<(String, String)> = t
            .routes()
            .map(|r| (r.route_key(), r.public_path()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("GET /users/{id}".to_string(), "/users/{id}".to_string()),
                ("ANY /{proxy+}".to_string(), "/{proxy+}".to_string()),
                ("$default".to_string(), "/lambda-url/c/".to_string()),
                ("$default".to_string(), "/*".to_string()),
            ]
        );
    }

    #[test]
    fn duplicate_routes_are_a_conflict_naming_both() {
        let err = RouteTable::new(vec![
            RouteSpec::http_api("GET", "/users/{id}", "first-fn"),
            RouteSpec::http_api("GET", "/users/{userId}", "second-fn"),
        ])
        .err();
        let Some(RouteTableError::Conflict { first, second }) = err else {
            panic!("expected a conflict, got {err:?}");
        };
        assert!(
            first.contains("first-fn") && first.contains("GET /users/{id}"),
            "{first}"
        );
        assert!(
            second.contains("second-fn") && second.contains("/users/{userId}"),
            "{second}"
        );

        // REST at /dev/x and HTTP API at /dev/x share the URL.
        assert!(matches!(
            RouteTable::new(vec![
                RouteSpec::rest("ANY", "/x", "dev", "a"),
                RouteSpec::http_api("*", "/dev/x", "b"),
            ]),
            Err(RouteTableError::Conflict { .. })
        ));
        assert!(matches!(
            RouteTable::new(vec![
                RouteSpec::function_url("f"),
                RouteSpec::function_url("f")
            ]),
            Err(RouteTableError::Conflict { .. })
        ));
        assert!(matches!(
            RouteTable::new(vec![
                RouteSpec::http_api("*", "*", "a"),
                RouteSpec::http_api("GET", "$default", "b"),
            ]),
            Err(RouteTableError::Conflict { .. })
        ));
        // Same path, different methods, or GET next to ANY: no conflict.
        assert!(RouteTable::new(vec![
            RouteSpec::http_api("GET", "/x/{id}", "a"),
            RouteSpec::http_api("DELETE", "/x/{other}", "b"),
            RouteSpec::http_api("ANY", "/x/{id}", "c"),
        ])
        .is_ok());
    }

    #[test]
    fn invalid_templates_and_methods_are_rejected() {
        for path in ["/a/{proxy+}/b", "/a//b", "/a/{}", "/a/x{id}", "/{id}/{id}"] {
            assert!(
                matches!(
                    RouteTable::new(vec![RouteSpec::http_api("GET", path, "f")]),
                    Err(RouteTableError::InvalidPath { .. })
                ),
                "{path}"
            );
        }
        assert!(matches!(
            RouteTable::new(vec![RouteSpec::http_api("FETCH", "/a", "f")]),
            Err(RouteTableError::InvalidMethod { .. })
        ));
        assert!(matches!(
            RouteTable::new(vec![RouteSpec::rest("GET", "/a", "", "f")]),
            Err(RouteTableError::InvalidSegment { .. })
        ));
    }

    #[test]
    fn an_http_api_with_cors_answers_preflights_and_errors_for_any_path() {
        let a = CorsConfig {
            allow_origins: vec!["https://a.test".into()],
            allow_methods: vec!["GET".into()],
            ..CorsConfig::default()
        };
        let b = CorsConfig {
            allow_origins: vec!["https://b.test".into()],
            allow_methods: vec!["POST".into()],
            ..CorsConfig::default()
        };
        let t = table(vec![
            RouteSpec::http_api("GET", "/a", "fa").with_cors(a),
            RouteSpec::http_api("POST", "/b", "fb").with_cors(b),
            RouteSpec::http_api("GET", "/plain", "fp"),
            RouteSpec::rest("GET", "/r", "dev", "fr")
                .with_cors(CorsConfig::serverless_default(["GET"])),
        ]);
        let Some(pf) = t.preflight(&Method::OPTIONS, "/no/route/here") else {
            panic!("no preflight for an unknown path")
        };
        assert_eq!(pf.kind, RouteKind::HttpApi);
        assert_eq!(
            pf.cors.allow_origins,
            vec!["https://a.test", "https://b.test"]
        );
        assert_eq!(pf.cors.allow_methods, vec!["GET", "POST"]);
        let r = pf.response(Some("https://b.test"), "id=");
        assert_eq!(r.status(), 204);
        assert_eq!(r.headers()["access-control-allow-origin"], "https://b.test");
        // A route without CORS keeps its own answer (the function's, or 404).
        assert!(t.preflight(&Method::OPTIONS, "/plain").is_none());

        // The HTTP API's 404 carries its CORS headers for an allowed origin.
        let Err(e) = t.lookup(&Method::GET, "/no/route/here") else {
            panic!("matched")
        };
        let r = t.error_response(&e, Some("https://a.test"), "id=");
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["access-control-allow-origin"], "https://a.test");
        let r = t.error_response(&e, Some("https://evil.test"), "id=");
        assert!(r.headers().get("access-control-allow-origin").is_none());
        // The REST API's 403 does not.
        let Err(e) = t.lookup(&Method::GET, "/dev/missing") else {
            panic!("matched")
        };
        let r = t.error_response(&e, Some("https://a.test"), "id");
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("access-control-allow-origin").is_none());

        // Gateway errors on a matched route: CORS behind the HTTP API, none
        // behind the REST API.
        let m = hit(&t, Method::GET, "/a");
        let mut h = HeaderMap::new();
        m.apply_cors_to_error(Some("https://a.test"), &mut h);
        assert_eq!(h["access-control-allow-origin"], "https://a.test");
        let m = hit(&t, Method::GET, "/dev/r");
        let mut h = HeaderMap::new();
        m.apply_cors_to_error(Some("https://a.test"), &mut h);
        assert!(h.is_empty());

        // Without any HTTP API CORS, unknown paths get no preflight.
        let t = table(vec![RouteSpec::http_api("GET", "/plain", "fp")]);
        assert!(t.preflight(&Method::OPTIONS, "/elsewhere").is_none());
        assert!(t.http_api_cors().is_none());
    }

    #[test]
    fn preflight_is_answered_for_cors_paths_only() {
        let t = table(vec![
            RouteSpec::rest("GET", "/users", "dev", "list")
                .with_cors(CorsConfig::serverless_default(["GET"])),
            RouteSpec::rest("POST", "/users", "dev", "create")
                .with_cors(CorsConfig::serverless_default(["POST"])),
            RouteSpec::rest("GET", "/private", "dev", "private"),
            RouteSpec::http_api("OPTIONS", "/own", "own-options"),
            RouteSpec::http_api("GET", "/own", "own-get")
                .with_cors(CorsConfig::serverless_default(["GET"])),
        ]);
        let pf = t.preflight(&Method::OPTIONS, "/dev/users");
        let Some(pf) = pf else { panic!("no preflight") };
        assert_eq!(pf.kind, RouteKind::Rest);
        assert_eq!(pf.cors.allow_methods, vec!["OPTIONS", "GET", "POST"]);
        assert!(t.preflight(&Method::GET, "/dev/users").is_none());
        assert!(t.preflight(&Method::OPTIONS, "/dev/private").is_none());
        // Under a REST stage, an unknown path is the REST API's: no preflight.
        assert!(t.preflight(&Method::OPTIONS, "/dev/nothing").is_none());
        // Elsewhere it is the HTTP API's, which has CORS (from `/own`).
        let Some(pf) = t.preflight(&Method::OPTIONS, "/nothing") else {
            panic!("the HTTP API answers preflights to any path")
        };
        assert_eq!(pf.kind, RouteKind::HttpApi);
        // An explicit OPTIONS route goes to its function.
        assert!(t.preflight(&Method::OPTIONS, "/own").is_none());
        assert_eq!(
            hit(&t, Method::OPTIONS, "/own").route.function(),
            "own-options"
        );
    }
}
