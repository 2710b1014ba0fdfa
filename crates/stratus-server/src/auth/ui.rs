//! Sign-in for the web dashboard (`/ui`). A browser cannot sign requests with SigV4,
//! so the dashboard trades an access key id and its secret for a session cookie:
//!
//! - `POST /ui/login` `{"accessKeyId","secretAccessKey","durationSeconds"?}` checks
//!   the secret against the stored key (constant time) and sets `stratus_session`
//!   (`HttpOnly; SameSite=Strict; Path=/`, `Secure` on TLS, at most 12 hours): a
//!   value signed by `stratus_auth::session_cookie` under a random key of this run
//!   of the server, bound to the key's secret. Wrong credentials cost the caller
//!   [`FAILURE_DELAY`], and after [`MAX_FAILURES`] failures in [`FAILURE_WINDOW`]
//!   its address is refused (429) until the window passes.
//! - `POST /ui/logout` revokes that login and clears the cookie.
//! - [`from_cookie`]: the authentication middleware accepts the cookie in place of
//!   a signature only for the dashboard's read endpoints ([`DASHBOARD_READS`], GET)
//!   and only with `X-Stratus-UI: 1`, a header no cross-site form or link can send
//!   (CSRF). The session acts as its access key: the key's policies apply to every
//!   request, and deleting the key ends its sessions at once.
//!
//! Under `--no-auth` the dashboard needs no login (every request is the anonymous
//! admin). Sessions do not survive a restart (the signing key lives in memory).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use parking_lot::Mutex;
use serde::Deserialize;
use stratus_auth::session_cookie::{CookieError, CookieSigner};
use subtle::ConstantTimeEq as _;

use super::{Auth, Principal};

/// The session cookie's name.
pub(super) const COOKIE: &str = "stratus_session";
/// The header every dashboard request carries (`1`).
pub(super) const UI_HEADER: &str = "x-stratus-ui";
/// The longest (and default) session.
pub(super) const MAX_SESSION: Duration = Duration::from_secs(12 * 3600);
/// How long a failed login waits before it answers.
pub(super) const FAILURE_DELAY: Duration = Duration::from_millis(400);
/// Failed logins an address may make per [`FAILURE_WINDOW`].
pub(super) const MAX_FAILURES: u32 = 10;
/// See [`MAX_FAILURES`].
pub(super) const FAILURE_WINDOW: Duration = Duration::from_secs(300);

/// The GET endpoints the dashboard reads, the only ones a session cookie opens.
pub(super) const DASHBOARD_READS: &[&str] = &[
    "/stratus/v1/ui/overview",
    "/stratus/v1/logs",
    "/stratus/v1/dead-letters",
    "/stratus/v1/async",
    "/stratus/v1/metrics",
    "/stratus/v1/metrics/series",
    "/stratus/v1/autoscaling",
];

/// The dashboard's sessions: the signing key, logged-out sessions, failed logins.
#[derive(Debug, Default)]
pub(super) struct UiSessions {
    signer: CookieSigner,
    /// Nonces of sessions logged out → their expiry (kept until then).
    revoked: Mutex<HashMap<String, i64>>,
    /// Failed logins by client address: count and start of the window.
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// The routes open without a signature: the page and its assets, login, logout.
pub(super) fn is_public(parts: &Parts) -> bool {
    let path = parts.uri.path();
    match parts.method {
        Method::GET | Method::HEAD => {
            path == "/ui" || path == "/ui/" || path.starts_with("/ui/assets/")
        }
        Method::POST => path == "/ui/login" || path == "/ui/logout",
        _ => false,
    }
}

pub(super) fn routes(auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
        .layer(axum::extract::DefaultBodyLimit::max(8 * 1024))
        .with_state(auth)
}

/// What the cookie of a request decides.
pub(super) enum CookieAuth {
    /// No session cookie, a signed request, or not a dashboard read: the usual
    /// signature checks apply.
    NotPresented,
    /// A session cookie that cannot be used; the answer says why.
    Refused(Response),
    /// A valid session: the request acts as this key.
    Accepted(Principal),
}

fn now_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The value of cookie `name`, if sent.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Removes the dashboard's session cookie from a request the HTTP gateway hands to a
/// function. Browsers send cookies to every port of a host, so a page of the gateway
/// on the same host as the API would otherwise hand a signed-in operator's session
/// to function code.
pub(crate) fn strip_session_cookie(headers: &mut HeaderMap) {
    let values: Vec<HeaderValue> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .cloned()
        .collect();
    if !values
        .iter()
        .any(|v| v.to_str().map_or(true, |t| t.contains(COOKIE)))
    {
        return;
    }
    headers.remove(http::header::COOKIE);
    for v in values {
        // A value that is not text cannot be split safely; it is dropped whole.
        let Ok(text) = v.to_str() else { continue };
        let kept: Vec<&str> = text
            .split(';')
            .map(str::trim)
            .filter(|kv| !kv.is_empty())
            .filter(|kv| kv.split_once('=').map_or(*kv, |(k, _)| k).trim() != COOKIE)
            .collect();
        if kept.is_empty() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            headers.append(http::header::COOKIE, v);
        }
    }
}

fn has_ui_header(headers: &HeaderMap) -> bool {
    headers.get(UI_HEADER).is_some_and(|v| v.as_bytes() == b"1")
}

fn is_signed(parts: &Parts) -> bool {
    parts.headers.contains_key(http::header::AUTHORIZATION)
        || parts
            .uri
            .query()
            .is_some_and(|q| q.contains("X-Amz-Signature="))
}

fn is_dashboard_read(parts: &Parts) -> bool {
    (parts.method == Method::GET || parts.method == Method::HEAD)
        && DASHBOARD_READS.contains(&parts.uri.path())
}

/// A JSON error in the REST-JSON shape the rest of `/stratus/v1` answers.
fn error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let mut resp = (
        status,
        [("content-type", "application/json")],
        serde_json::json!({ "message": message }).to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(error_type) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

impl UiSessions {
    /// The claims of a valid, not logged-out session cookie value.
    fn verify(
        &self,
        auth: &Auth,
        value: &str,
    ) -> Result<stratus_auth::session_cookie::CookieClaims, CookieError> {
        let claims = self.signer.verify(value, now_s(), |id| {
            auth.keys.read().get(id).map(|k| k.stored.secret.clone())
        })?;
        if self.revoked.lock().contains_key(&claims.nonce) {
            return Err(CookieError::Expired);
        }
        Ok(claims)
    }

    fn revoke(&self, nonce: String, expires: i64) {
        let now = now_s();
        let mut revoked = self.revoked.lock();
        revoked.retain(|_, exp| *exp > now);
        revoked.insert(nonce, expires);
    }

    /// Seconds until `ip` may try again, when it has failed too often.
    fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let failures = self.failures.lock();
        let (n, since) = failures.get(&ip)?;
        let left = FAILURE_WINDOW.checked_sub(since.elapsed())?;
        (*n >= MAX_FAILURES).then(|| left.as_secs().max(1))
    }

    fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock();
        if failures.len() > 4096 {
            failures.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

/// Decides a request by its session cookie (see the module docs).
pub(super) fn from_cookie(auth: &Auth, parts: &Parts) -> CookieAuth {
    if is_signed(parts) || !is_dashboard_read(parts) {
        return CookieAuth::NotPresented;
    }
    let Some(value) = cookie(&parts.headers, COOKIE) else {
        return CookieAuth::NotPresented;
    };
    if !has_ui_header(&parts.headers) {
        return CookieAuth::Refused(error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "A dashboard session is accepted only with the header X-Stratus-UI: 1 (sent by the dashboard's own page, never by another site's form or link).",
        ));
    }
    match auth.ui.verify(auth, value) {
        Ok(claims) => match auth.keys.read().get(&claims.access_key_id) {
            Some(k) => CookieAuth::Accepted(k.principal.clone()),
            None => CookieAuth::Refused(session_refused(&CookieError::UnknownKey)),
        },
        Err(e) => CookieAuth::Refused(session_refused(&e)),
    }
}

fn session_refused(e: &CookieError) -> Response {
    tracing::debug!(reason = %e, "dashboard session refused");
    error(
        StatusCode::UNAUTHORIZED,
        "UnrecognizedClientException",
        &format!("{e}; sign in to the dashboard again."),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Login {
    access_key_id: String,
    secret_access_key: String,
    duration_seconds: Option<u64>,
}

/// `Set-Cookie` for `value` living `max_age` seconds (0 clears it).
fn set_cookie(headers: &HeaderMap, value: &str, max_age: u64) -> Option<HeaderValue> {
    // The listener marks TLS connections with `X-Forwarded-Proto: https`.
    let tls = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

async fn login(
    State(auth): State<Arc<Auth>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !has_ui_header(&headers) {
        return error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "Sign in from the dashboard's page (the request must carry X-Stratus-UI: 1).",
        );
    }
    if !auth.enabled() {
        return json_ok(serde_json::json!({ "auth": false, "user": "anonymous" }));
    }
    let ip = peer.map_or(
        IpAddr::from([0, 0, 0, 0]),
        |axum::Extension(ConnectInfo(a))| a.ip(),
    );
    if let Some(wait) = auth.ui.blocked(ip) {
        let mut resp = error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            &format!("Too many failed sign-ins from {ip}; try again in {wait} seconds."),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        return resp;
    }
    let req: Login = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                &format!(
                    "The sign-in request must be JSON {{\"accessKeyId\",\"secretAccessKey\"}}: {e}"
                ),
            )
        }
    };
    let max = MAX_SESSION.as_secs();
    let seconds = match req.duration_seconds {
        None => max,
        Some(s) if (1..=max).contains(&s) => s,
        Some(s) => {
            return error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                &format!("durationSeconds must be between 1 and {max}, not {s}."),
            )
        }
    };
    let id = req.access_key_id.trim();
    let found = auth
        .keys
        .read()
        .get(id)
        .map(|k| (k.stored.secret.clone(), k.stored.name.clone()));
    let ok = found.as_ref().is_some_and(|(secret, _)| {
        bool::from(secret.as_bytes().ct_eq(req.secret_access_key.as_bytes()))
    });
    let Some((secret, user)) = found.filter(|_| ok) else {
        auth.ui.failed(ip);
        tracing::info!(%ip, access_key_id = %id, "dashboard sign-in refused");
        tokio::time::sleep(FAILURE_DELAY).await;
        // One message for an unknown id and a wrong secret: which one is no one's
        // business but the key's owner.
        return error(
            StatusCode::UNAUTHORIZED,
            "UnrecognizedClientException",
            "The access key id or the secret access key is not correct.",
        );
    };
    let expires = now_s() + seconds as i64;
    let set = auth
        .ui
        .signer
        .issue(id, &secret, expires)
        .and_then(|value| set_cookie(&headers, &value, seconds));
    let Some(set) = set else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "cannot make a session",
        );
    };
    tracing::info!(%ip, access_key_id = %id, user = %user, "dashboard sign-in");
    let mut resp = json_ok(serde_json::json!({
        "auth": true,
        "user": user,
        "accessKeyId": id,
        "expires": expires,
    }));
    resp.headers_mut().insert(http::header::SET_COOKIE, set);
    resp
}

async fn logout(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> Response {
    if !has_ui_header(&headers) {
        return error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "Sign out from the dashboard's page (the request must carry X-Stratus-UI: 1).",
        );
    }
    if let Some(value) = cookie(&headers, COOKIE) {
        if let Ok(claims) = auth.ui.verify(&auth, value) {
            auth.ui.revoke(claims.nonce, claims.expires);
        }
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Some(clear) = set_cookie(&headers, "", 0) {
        resp.headers_mut().insert(http::header::SET_COOKIE, clear);
    }
    resp
}

fn json_ok(v: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_the_page_login_and_logout_are_public() {
        assert!(is_public(&parts("GET", "/ui", &[])));
        assert!(is_public(&parts("GET", "/ui/assets/app.js", &[])));
        assert!(is_public(&parts("POST", "/ui/login", &[])));
        assert!(!is_public(&parts("POST", "/ui", &[])));
        assert!(!is_public(&parts("GET", "/uix", &[])));
        assert!(!is_public(&parts("GET", "/stratus/v1/ui/overview", &[])));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let p = parts(
            "GET",
            "/",
            &[("cookie", "a=1; stratus_session=v1:X:2:3:4 ; b=2")],
        );
        assert_eq!(cookie(&p.headers, COOKIE), Some("v1:X:2:3:4"));
        assert_eq!(cookie(&p.headers, "c"), None);
    }

    #[test]
    fn the_gateway_never_passes_the_session_on() {
        let mut p = parts(
            "GET",
            "/",
            &[
                ("cookie", "a=1; stratus_session=v1:X:2:3:4; b=2"),
                ("cookie", "stratus_session=x"),
                ("cookie", "c=3"),
            ],
        );
        strip_session_cookie(&mut p.headers);
        let left: Vec<&str> = p
            .headers
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["a=1; b=2", "c=3"]);
        let mut q = parts("GET", "/", &[("cookie", "a=1")]);
        strip_session_cookie(&mut q.headers);
        assert_eq!(q.headers["cookie"], "a=1");
    }

    #[test]
    fn failed_logins_block_an_address_for_a_while() {
        let s = UiSessions::default();
        let ip: IpAddr = [127, 0, 0, 9].into();
        for _ in 0..MAX_FAILURES - 1 {
            s.failed(ip);
        }
        assert_eq!(s.blocked(ip), None);
        s.failed(ip);
        assert!(s.blocked(ip).is_some_and(|w| w <= FAILURE_WINDOW.as_secs()));
        assert_eq!(s.blocked([127, 0, 0, 8].into()), None);
    }
}
