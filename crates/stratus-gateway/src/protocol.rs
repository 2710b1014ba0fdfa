//! Names, limits and texts the gateway shares with API Gateway and function
//! URLs, in one place: URL layout, header names, error messages, size limits,
//! timeouts and the time format of the request context.

use std::time::Duration;

/// Path prefix under which function URLs are served:
/// `/lambda-url/{function-name}/…`. The rest of the path (at least `/`) is what
/// the function sees as `rawPath`. On AWS each function URL has its own host
/// (`{url-id}.lambda-url.{region}.on.aws`); Stratus serves them all on the
/// gateway's one listener, so the function name takes the host's place.
pub const FUNCTION_URL_PREFIX: &str = "/lambda-url/";

/// The first path segment reserved for function URLs (see [`FUNCTION_URL_PREFIX`]).
pub const FUNCTION_URL_SEGMENT: &str = "lambda-url";

/// Route key and stage name of HTTP API catch-all routes and of function URLs.
pub const DEFAULT_ROUTE: &str = "$default";

/// Largest request body API Gateway accepts (10 MB, REST and HTTP APIs).
pub const MAX_API_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// Largest request body a function URL accepts: Lambda's synchronous payload
/// limit (6 MB), since the body goes into the invocation payload.
pub const MAX_URL_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// REST API integration timeout (29 s, API Gateway's default and maximum).
pub const REST_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);

/// HTTP API integration timeout (30 s, API Gateway's maximum).
pub const HTTP_API_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Response header names the gateway sets.
pub mod headers {
    /// Request id on every response (REST APIs, function URLs; and HTTP APIs in Stratus).
    pub const AMZN_REQUEST_ID: &str = "x-amzn-requestid";
    /// Request id on every HTTP API response.
    pub const APIGW_REQUEST_ID: &str = "apigw-requestid";
    /// Error type on REST API gateway errors.
    pub const AMZN_ERROR_TYPE: &str = "x-amzn-errortype";
}

/// Texts of the gateway's own error bodies (`{"message": …}`), as API Gateway
/// sends them.
pub mod messages {
    /// HTTP API (and function URL) request that matches no route: 404.
    pub const NOT_FOUND: &str = "Not Found";
    /// REST API request that matches no resource or method: 403. (REST APIs
    /// never answer 404 or 405 for an unknown route.)
    pub const MISSING_AUTHENTICATION_TOKEN: &str = "Missing Authentication Token";
    /// Request body over the limit: 413.
    pub const REQUEST_TOO_LONG: &str = "Request Too Long";
    /// Throttled: 429.
    pub const TOO_MANY_REQUESTS: &str = "Too Many Requests";
    /// Integration timed out: 504.
    pub const ENDPOINT_REQUEST_TIMED_OUT: &str = "Endpoint request timed out";
    /// REST API: function error or malformed function response (502), or
    /// an invocation Lambda refused (500). Lower-case "server error".
    pub const INTERNAL_SERVER_ERROR: &str = "Internal server error";
    /// HTTP API: function error, malformed function response or refused
    /// invocation (500); function URL: function error or malformed response
    /// (502). Capitalised, unlike the REST API's.
    pub const INTERNAL_SERVER_ERROR_CAPITALISED: &str = "Internal Server Error";
}

/// Format of `requestTime` (v1.0) and `time` (v2.0): `09/Apr/2015:12:34:56 +0000`.
pub(crate) const REQUEST_TIME_FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
);
