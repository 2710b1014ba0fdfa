//! `provider.httpApi:` — the service's HTTP API, which serves its `httpApi`
//! events. Stratus uses `cors`; the Framework's other settings are accepted
//! and not used.
//!
//! ```yaml
//! provider:
//!   httpApi:
//!     cors: true                       # or:
//!     cors:
//!       allowedOrigins: [https://app.example.com]   # or one string
//!       allowedHeaders: [Content-Type, Authorization]
//!       allowedMethods: [GET, POST]
//!       allowCredentials: true
//!       exposedResponseHeaders: [x-total-count]
//!       maxAge: 600
//! ```

use crate::spanned::Node;

use super::cors::{cors_settings, CorsSettings, DEFAULT_CORS_HEADERS};
use super::reader::{Checker, Fields};

/// `provider.httpApi:` — settings of the service's HTTP API. Stratus uses
/// `cors`; `id`, `name`, `payload`, `disableDefaultEndpoint`, `metrics`,
/// `useProviderTags` and `authorizers` are accepted and not used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpApiConfig {
    /// `cors: true`, or a map of CORS settings for every route of the API;
    /// `false` or absent: no CORS.
    pub cors: Option<CorsSettings>,
}

/// Settings of the Serverless Framework's `provider.httpApi` that Stratus
/// accepts and does not use.
const IGNORED: &[&str] = &[
    "authorizers",
    "disableDefaultEndpoint",
    "id",
    "metrics",
    "name",
    "payload",
    "useProviderTags",
];

/// Reads `provider.httpApi`.
pub(super) fn http_api(c: &mut Checker, node: &Node, path: &str) -> HttpApiConfig {
    let mut out = HttpApiConfig::default();
    let Some(mut f) = Fields::new(c, node, path, "a map of HTTP API settings such as `cors`")
    else {
        return out;
    };
    if let Some(n) = f.get("cors") {
        out.cors = cors_settings(c, n, &f.path_of("cors"), DEFAULT_CORS_HEADERS);
    }
    f.finish(c, IGNORED);
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::model::{ApiCors, Event};
    use crate::{load_str, ManifestError, Options};

    /// Loads a service with one `GET /items` route and this `provider.httpApi`.
    fn load(http_api: &str) -> Result<Option<ApiCors>, ManifestError> {
        let text = format!(
            "service: svc\nprovider:\n  name: aws\n  httpApi:\n{http_api}\nfunctions:\n  f:\n    handler: h.f\n    events:\n      - httpApi: 'GET /items'\n"
        );
        let opts = Options {
            instance_id: Some("id".into()),
            ..Options::default()
        };
        let (service, _) = load_str(&text, "serverless.yml".into(), false, Path::new("."), &opts)?;
        match &service.functions["f"].events[..] {
            [Event::HttpApi(route)] => Ok(route.cors.clone()),
            other => panic!("unexpected events {other:?}"),
        }
    }

    #[test]
    fn false_or_absent_means_no_cors() {
        for http_api in [
            "    cors: false",
            "    cors: 'false'",
            "    id: abc",
            "    cors:",
        ] {
            assert_eq!(load(http_api).unwrap(), None, "{http_api}");
        }
    }

    #[test]
    fn true_allows_any_origin_and_the_routes_methods() {
        let cors = load("    cors: 'true'").unwrap().expect("cors");
        assert_eq!(cors.allowed_origins, ["*"]);
        assert_eq!(cors.allowed_methods, ["OPTIONS", "GET"]);
        assert_eq!(cors.allowed_headers.len(), 7);
        assert!(!cors.allow_credentials);
        assert_eq!(cors.max_age, None);
    }

    #[test]
    fn malformed_settings_say_what_was_expected_and_where() {
        let cases = [
            (
                "    cors: [true]",
                "serverless.yml:5:11: provider.httpApi.cors: expected true, false or a map of CORS settings, found a list",
            ),
            (
                "    cors:\n      maxAge: 86401",
                "serverless.yml:6:15: provider.httpApi.cors.maxAge: expected a whole number of seconds (0-86400), found 86401",
            ),
            (
                "    cors:\n      maxAge: 1.5",
                "serverless.yml:6:15: provider.httpApi.cors.maxAge: expected a whole number of seconds (0-86400), found 1.5",
            ),
            (
                "    cors:\n      allowedOrigins: [https://a.test, {x: y}]",
                "serverless.yml:6:40: provider.httpApi.cors.allowedOrigins[1]: expected a string, found a map",
            ),
        ];
        for (http_api, expected) in cases {
            let e = load(http_api).unwrap_err();
            assert_eq!(e.to_string(), expected, "{http_api}");
        }
        let e = load_str(
            "service: svc\nprovider:\n  name: aws\n  httpApi: true\n",
            "serverless.yml".into(),
            false,
            Path::new("."),
            &Options::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "serverless.yml:4:12: provider.httpApi: expected a map of HTTP API settings such as `cors`, found true"
        );
    }
}
