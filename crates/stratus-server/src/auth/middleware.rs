//! The authentication middleware in front of every route of the API listener:
//! Lambda management, Invoke, the SQS JSON protocol and `/stratus/v1`.
//!
//! Order of checks, cheapest and body-free first, so a stranger cannot make the
//! server buffer a body: signature present and well-formed → key known (and its
//! session token) → credential scope → clock. Then the payload: when the client
//! sent `X-Amz-Content-Sha256` the signature is checked before the body is read and
//! the body must hash to it; otherwise (botocore's Lambda and SQS clients) the body
//! is read through the route's size limit — Invoke's 6 MB, refused while it
//! arrives — hashed, and the signature checked. Then [`Auth::authorize`], once.
//!
//! Errors take the shape of the API called: REST-JSON (`x-amzn-ErrorType` and
//! `{"message"}`) for Lambda and the control API, JSON protocol (`__type`,
//! `message`) for SQS and CloudWatch Logs.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use stratus_auth::canonical::hex_sha256;
use stratus_auth::parse::presented;
use stratus_auth::AuthError;

use super::{Auth, Principal};
use crate::error::ApiError;

/// Puts the key routes and the authentication middleware around the API router.
pub fn layer(app: Router, auth: Arc<Auth>) -> Router {
    app.merge(super::routes::routes(auth.clone()))
        .merge(super::ui::routes(auth.clone()))
        .layer(axum::middleware::from_fn_with_state(auth, authenticate))
}

/// Which AWS API a request is for: its signing service and error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// Lambda (management and Invoke) and Stratus's `/stratus/v1`: REST-JSON errors.
    Lambda,
    /// The SQS JSON protocol (`POST /` with `X-Amz-Target: AmazonSQS.*`).
    Sqs,
    /// The CloudWatch metric API: AWS JSON 1.0 (`POST /` with `X-Amz-Target:
    /// GraniteServiceVersion20100801.*`) or RPC v2 CBOR (`POST /service/…`).
    CloudWatch(crate::api::CloudWatchWire),
    /// CloudWatch Logs, JSON 1.1 (`X-Amz-Target: Logs_20140328.*`).
    Logs,
    /// Application Auto Scaling (`X-Amz-Target: AnyScaleFrontendService.*`, JSON 1.1).
    AutoScaling,
}

impl Api {
    fn of(parts: &Parts) -> Self {
        let target = (parts.method == Method::POST && parts.uri.path() == "/")
            .then(|| parts.headers.get("x-amz-target"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if target.starts_with(stratus_queue::TARGET_PREFIX) {
            Self::Sqs
        } else if target.starts_with(stratus_iam::LOGS_TARGET_PREFIX) {
            Self::Logs
        } else if target.starts_with(stratus_iam::AUTOSCALING_TARGET_PREFIX) {
            Self::AutoScaling
        } else if target.starts_with(crate::api::CLOUDWATCH_TARGET_PREFIX) {
            Self::CloudWatch(crate::api::CloudWatchWire::Json)
        } else if parts.uri.path().starts_with(crate::api::CLOUDWATCH_PREFIX) {
            Self::CloudWatch(crate::api::CloudWatchWire::Cbor)
        } else if parts.method == Method::POST
            && parts.uri.path() == "/"
            && target.is_empty()
            && crate::api::is_form(&parts.headers)
        {
            // The query protocol (a form to `/`): only CloudWatch's here.
            Self::CloudWatch(crate::api::CloudWatchWire::Query)
        } else {
            Self::Lambda
        }
    }

    /// The service name credentials must be scoped to.
    fn service(self) -> &'static str {
        match self {
            Self::Lambda => "lambda",
            Self::Sqs => "sqs",
            Self::CloudWatch(_) => "monitoring",
            Self::Logs => "logs",
            Self::AutoScaling => "application-autoscaling",
        }
    }
}

/// Whether a request is the Invoke API (whose payload limit is 6 MB).
fn is_invoke(parts: &Parts) -> bool {
    let segs: Vec<&str> = parts.uri.path().split('/').collect();
    parts.method == Method::POST
        && matches!(segs.as_slice(), ["", "2015-03-31", "functions", name, "invocations"] if !name.is_empty())
}

/// Routes open without a signature: the health check (and the dashboard's page and
/// sign-in, `ui::is_public`).
fn is_open(parts: &Parts) -> bool {
    parts.method == Method::GET && parts.uri.path() == "/stratus/v1/health"
}

async fn authenticate(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    if is_open(&parts) || super::ui::is_public(&parts) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let api = Api::of(&parts);
    if !auth.enabled() {
        // --no-auth: everything passes as the anonymous admin; the hook still runs
        // so a policy engine sees every request the same way.
        let principal = auth.anonymous();
        let (parts, body) = match read_and_authorize(&auth, api, &principal, parts, body).await {
            Ok(ok) => ok,
            Err(resp) => return resp,
        };
        return next.run(with_principal(parts, body, principal)).await;
    }
    // The dashboard's session cookie, for its read endpoints only (auth/ui.rs).
    match super::ui::from_cookie(&auth, &parts) {
        super::ui::CookieAuth::NotPresented => {}
        super::ui::CookieAuth::Refused(resp) => return resp,
        super::ui::CookieAuth::Accepted(principal) => {
            let (parts, body) = match read_and_authorize(&auth, api, &principal, parts, body).await
            {
                Ok(ok) => ok,
                Err(resp) => return resp,
            };
            return next.run(with_principal(parts, body, principal)).await;
        }
    }
    let p = match presented(&parts.headers, parts.uri.query()) {
        Ok(Some(p)) => p,
        Ok(None) => return reject(api, &AuthError::Missing),
        Err(e) => return reject(api, &e),
    };
    let c = &p.credential;
    let Some((secret, principal)) = auth.lookup(&c.access_key_id, p.security_token.as_deref())
    else {
        tracing::debug!(access_key_id = %c.access_key_id, "request signed with an unknown key");
        return reject(api, &AuthError::UnknownKey);
    };
    if let Err(e) = p
        .check_scope(auth.region(), api.service())
        .and_then(|()| p.check_time(time::OffsetDateTime::now_utc()))
    {
        return reject(api, &e);
    }
    let key = auth
        .cache
        .get(&c.access_key_id, &secret, &c.date, &c.region, &c.service);
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let canonical = |payload_hash: &str| {
        p.canonical_request(
            &method,
            &path,
            query.as_deref(),
            &parts.headers,
            payload_hash,
        )
    };
    let claimed = match parts.headers.get("x-amz-content-sha256") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(stratus_auth::UNSIGNED_PAYLOAD) => {
                return reject(
                    api,
                    &AuthError::BadSignature(
                        "UNSIGNED-PAYLOAD is accepted by S3 only; this API needs the payload's SHA-256 in X-Amz-Content-Sha256 (or no such header).".into(),
                    ),
                )
            }
            Ok(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(h.to_ascii_lowercase())
            }
            _ => {
                return reject(
                    api,
                    &AuthError::Incomplete(
                        "X-Amz-Content-Sha256 must be the hex SHA-256 of the payload.".into(),
                    ),
                )
            }
        },
    };
    // A claimed hash lets the signature be checked before a byte of body is read.
    if let Some(h) = &claimed {
        if let Err(e) = p.verify(&key, &canonical(h)) {
            return reject(api, &e);
        }
    }
    let bytes = match read_body(&parts, body).await {
        Ok(b) => b,
        Err(e) => return reject_api(api, e),
    };
    let actual = if bytes.is_empty() {
        stratus_auth::EMPTY_SHA256.to_string()
    } else {
        hex_sha256(&bytes)
    };
    match &claimed {
        Some(h) if *h != actual => {
            return reject(
                api,
                &AuthError::BadSignature(
                    "The provided 'x-amz-content-sha256' header does not match what was computed."
                        .into(),
                ),
            )
        }
        Some(_) => {}
        None => {
            if let Err(e) = p.verify(&key, &canonical(&actual)) {
                tracing::debug!(access_key_id = %c.access_key_id, "signature mismatch");
                return reject(api, &e);
            }
        }
    }
    if let Err(denied) = auth.authorize(&principal, &parts, &bytes) {
        return *denied;
    }
    parts.extensions.insert(super::Presigner {
        auth: auth.clone(),
        access_key_id: c.access_key_id.clone(),
        session_token: p.security_token.clone(),
    });
    parts.extensions.insert(principal);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `--no-auth`: reads the body (same limits) so the hook sees it, and authorizes.
async fn read_and_authorize(
    auth: &Auth,
    api: Api,
    principal: &Principal,
    parts: Parts,
    body: Body,
) -> Result<(Parts, Body), Response> {
    let bytes = read_body(&parts, body)
        .await
        .map_err(|e| reject_api(api, e))?;
    auth.authorize(principal, &parts, &bytes).map_err(|d| *d)?;
    Ok((parts, Body::from(bytes)))
}

fn with_principal(mut parts: Parts, body: Body, principal: Principal) -> Request {
    parts.extensions.insert(principal);
    Request::from_parts(parts, body)
}

/// Reads the body through the route's limit, refusing it as soon as it passes the
/// limit (or when `Content-Length` announces more).
async fn read_body(parts: &Parts, body: Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt as _;
    let invoke = is_invoke(parts);
    let limit = if invoke {
        crate::api::MAX_SYNC_PAYLOAD
    } else {
        crate::api::MAX_BODY
    };
    let too_large = || {
        if invoke {
            crate::api::invoke_too_large()
        } else {
            ApiError::too_large(format!("Request must be smaller than {limit} bytes"))
        }
    };
    let announced = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = announced.filter(|n| *n > limit as u64) {
        // A client that announced its size is still writing it. Up to the largest body
        // any route takes, what it sends is read and dropped (never kept), so it reads
        // the 413 instead of a connection reset mid-write; beyond that, refused at once.
        if n <= crate::api::MAX_BODY as u64 {
            let mut body = body;
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    break;
                }
            }
        }
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_content(format!(
            "Could not read the request body: {e}"
        ))),
    }
}

/// An authentication error in the shape of `api`.
/// SQS answers with its query-protocol codes, in `__type` and in the
/// `x-amzn-query-error` header its SDKs read the code from.
fn reject(api: Api, e: &AuthError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
    if let Api::Sqs = api {
        let mut resp = error_response(api, status, e.query_code(), &e.to_string());
        let code = format!("{};Sender", e.query_code());
        if let Ok(v) = HeaderValue::from_str(&code) {
            resp.headers_mut().insert("x-amzn-query-error", v);
        }
        return resp;
    }
    error_response(api, status, e.error_type(), &e.to_string())
}

/// Any other error raised here (body limits, authorization) in the shape of `api`.
fn reject_api(api: Api, e: ApiError) -> Response {
    match api {
        Api::Lambda => e.into_response(),
        Api::Sqs | Api::Logs | Api::AutoScaling | Api::CloudWatch(_) => {
            error_response(api, e.status(), e.error_type(), &e.message)
        }
    }
}

fn error_response(api: Api, status: StatusCode, error_type: &str, message: &str) -> Response {
    if let Api::CloudWatch(wire) = api {
        return crate::api::cloudwatch_error(wire, status, error_type, error_type, message);
    }
    let (content_type, body) = match api {
        Api::Lambda => (
            "application/json",
            serde_json::json!({ "message": message }),
        ),
        Api::Sqs | Api::CloudWatch(_) => (
            "application/x-amz-json-1.0",
            serde_json::json!({
                "__type": format!("com.amazon.coral.service#{error_type}"),
                "message": message,
            }),
        ),
        Api::Logs | Api::AutoScaling => (
            "application/x-amz-json-1.1",
            serde_json::json!({ "__type": error_type, "message": message }),
        ),
    };
    let mut resp = (status, [("content-type", content_type)], body.to_string()).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(error_type) {
        h.insert("x-amzn-errortype", v);
    }
    if let Ok(id) = HeaderValue::from_str(&crate::model::new_uuid()) {
        h.insert("x-amzn-requestid", id);
    }
    resp
}
