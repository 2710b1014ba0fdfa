//! How large a request body each route reads, in one place. Every route has a limit:
//! the management calls a small one (their JSON is configuration), code uploads
//! Lambda's own, and the routes with their own rules (Invoke's 6 MB, enforced while
//! reading) below. A body over its limit is never buffered whole: axum stops reading
//! at the limit, and [`limited`] turns its plain-text 413 into the API's error shape.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware::map_response_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::AppState;
use crate::error::ApiError;

/// Management calls (JSON configuration: functions, aliases, concurrency, tags,
/// mappings, event invoke configs, rollbacks): 1 MiB, far above any valid one
/// (environment variables are at most 4 KB).
pub const MANAGEMENT_BODY_BYTES: usize = 1024 * 1024;

/// CreateFunction and UpdateFunctionCode: Lambda's request limit for them, which
/// holds a 50 MB zip in base64 plus the rest of the request.
pub const CODE_UPLOAD_BODY_BYTES: usize = 70_167_211;

/// A raw code package uploaded by `stratus deploy`: Lambda's 50 MB zip limit.
pub const BLOB_BODY_BYTES: usize = crate::registry::MAX_ZIP_BYTES;

/// A deployment (every function's settings, queues and events of one service):
/// 16 MiB.
pub const DEPLOY_BODY_BYTES: usize = 16 * 1024 * 1024;

/// An SQS request: a 1 MiB message (or batch) escaped as JSON by an SDK that writes
/// `\uXXXX` for every non-ASCII character (up to 3× its bytes), plus attributes.
pub const SQS_BODY_BYTES: usize = 4 * 1024 * 1024;

/// `route` reading at most `limit` bytes of body; over it, 413
/// `RequestEntityTooLargeException` in Lambda's error shape.
pub(super) fn limited(route: MethodRouter<AppState>, limit: usize) -> MethodRouter<AppState> {
    route
        .layer(DefaultBodyLimit::max(limit))
        .layer(map_response_with_state(limit, lambda_too_large))
}

/// The SQS route reading at most [`SQS_BODY_BYTES`]; over it, 413 in the SQS JSON
/// protocol's error shape.
pub(super) fn limited_sqs(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route
        .layer(DefaultBodyLimit::max(SQS_BODY_BYTES))
        .layer(map_response_with_state(SQS_BODY_BYTES, sqs_too_large))
}

/// The default of every route not given another limit: [`MANAGEMENT_BODY_BYTES`].
/// Also the API's safety net for axum's own refusals: a path or query string that
/// does not parse (`?limit=12abc`) is answered as a `ValidationException` in Lambda's
/// shape, never with axum's plain text.
pub(super) fn default_limit(router: axum::Router<AppState>) -> axum::Router<AppState> {
    router
        .layer(DefaultBodyLimit::max(MANAGEMENT_BODY_BYTES))
        .layer(map_response_with_state(
            MANAGEMENT_BODY_BYTES,
            lambda_too_large,
        ))
        .layer(axum::middleware::map_response(lambda_rejection))
}

/// Rewrites an extractor's plain-text refusal (400, 415, 422: a path, query or body
/// that does not parse) into a `ValidationException` carrying its text; answers of
/// the API (with `x-amzn-errortype`, or SQS's `x-amzn-query-error`) and everything
/// else pass unchanged.
async fn lambda_rejection(resp: Response) -> Response {
    let status = resp.status();
    let plain = matches!(status.as_u16(), 400 | 415 | 422)
        && !resp.headers().contains_key("x-amzn-errortype")
        && !resp.headers().contains_key("x-amzn-query-error")
        && !resp.headers().contains_key("x-amzn-requestid");
    if !plain {
        return resp;
    }
    // axum's rejection texts are short; anything longer is cut.
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut e = ApiError::invalid(text);
    e.kind = crate::error::ErrorKind::Validation;
    e.into_response()
}

/// Whether `resp` is axum's own 413 (a body over the limit), not an API answer.
fn is_plain_413(resp: &Response) -> bool {
    resp.status() == StatusCode::PAYLOAD_TOO_LARGE
        && !resp.headers().contains_key("x-amzn-errortype")
        && !resp.headers().contains_key("x-amzn-query-error")
}

fn message(limit: usize) -> String {
    format!("Request must be smaller than {limit} bytes for this operation")
}

async fn lambda_too_large(State(limit): State<usize>, resp: Response) -> Response {
    if is_plain_413(&resp) {
        ApiError::entity_too_large(message(limit)).into_response()
    } else {
        resp
    }
}

async fn sqs_too_large(State(limit): State<usize>, resp: Response) -> Response {
    if is_plain_413(&resp) {
        stratus_queue::SqsError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error_type: "com.amazon.coral.service#RequestEntityTooLargeException".into(),
            query_code: Some("RequestEntityTooLarge".into()),
            message: message(limit),
        }
        .into_response()
    } else {
        resp
    }
}
