//! The one place service errors become HTTP: AWS's REST-JSON error shape,
//! `{"Type":"User","message":"…"}` plus extra fields, with `x-amzn-ErrorType`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The kinds of Lambda service error Stratus answers, each with its AWS error type
/// and HTTP status. Code and tests compare kinds, never message texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404 `ResourceNotFoundException`.
    ResourceNotFound,
    /// 400 `InvalidParameterValueException`.
    InvalidParameterValue,
    /// 400 `ValidationException`.
    Validation,
    /// 400 `InvalidRequestContentException`.
    InvalidRequestContent,
    /// 409 `ResourceConflictException`.
    ResourceConflict,
    /// 412 `PreconditionFailedException`.
    PreconditionFailed,
    /// 413 `RequestTooLargeException` (Invoke's payload).
    RequestTooLarge,
    /// 413 `RequestEntityTooLargeException` (any other request body over its limit).
    RequestEntityTooLarge,
    /// 429 `TooManyRequestsException`.
    TooManyRequests,
    /// 500 `ServiceException`.
    Service,
    /// 502 `InvalidRuntimeException`.
    InvalidRuntime,
    /// 404 `ProvisionedConcurrencyConfigNotFoundException`.
    ProvisionedConcurrencyConfigNotFound,
    /// 404 `UnknownOperationException`: a path no API has.
    UnknownOperation,
}

impl ErrorKind {
    /// The AWS error type (`x-amzn-ErrorType`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResourceNotFound => "ResourceNotFoundException",
            Self::InvalidParameterValue => "InvalidParameterValueException",
            Self::Validation => "ValidationException",
            Self::InvalidRequestContent => "InvalidRequestContentException",
            Self::ResourceConflict => "ResourceConflictException",
            Self::PreconditionFailed => "PreconditionFailedException",
            Self::RequestTooLarge => "RequestTooLargeException",
            Self::RequestEntityTooLarge => "RequestEntityTooLargeException",
            Self::TooManyRequests => "TooManyRequestsException",
            Self::Service => "ServiceException",
            Self::InvalidRuntime => "InvalidRuntimeException",
            Self::ProvisionedConcurrencyConfigNotFound => {
                "ProvisionedConcurrencyConfigNotFoundException"
            }
            Self::UnknownOperation => "UnknownOperationException",
        }
    }

    /// The HTTP status Lambda answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::ResourceNotFound
            | Self::ProvisionedConcurrencyConfigNotFound
            | Self::UnknownOperation => StatusCode::NOT_FOUND,
            Self::InvalidParameterValue | Self::Validation | Self::InvalidRequestContent => {
                StatusCode::BAD_REQUEST
            }
            Self::ResourceConflict => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::RequestTooLarge | Self::RequestEntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Service => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidRuntime => StatusCode::BAD_GATEWAY,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Lambda service error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    /// What went wrong, as Lambda names it.
    pub kind: ErrorKind,
    /// The message, in Lambda's words where Lambda has them.
    pub message: String,
    /// `Reason` (throttles), when there is one.
    pub reason: Option<&'static str>,
}

impl ApiError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            reason: None,
        }
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
    /// The AWS error type.
    pub fn error_type(&self) -> &'static str {
        self.kind.as_str()
    }
    /// 404 `ResourceNotFoundException`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceNotFound, message)
    }
    /// 400 `InvalidParameterValueException`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameterValue, message)
    }
    /// 400 `ValidationException` in AWS's wording for a constraint violation.
    pub fn validation(value: &str, field: &str, constraint: &str) -> Self {
        Self::new(ErrorKind::Validation,
            format!("1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"),
        )
    }
    /// 400 `InvalidRequestContentException`.
    pub fn bad_content(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequestContent, message)
    }
    /// 409 `ResourceConflictException`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceConflict, message)
    }
    /// 412 `PreconditionFailedException`.
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PreconditionFailed, message)
    }
    /// 413 `RequestTooLargeException`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RequestTooLarge, message)
    }
    /// 413 `RequestEntityTooLargeException`: a request body over its route's limit.
    pub fn entity_too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RequestEntityTooLarge, message)
    }
    /// 429 `TooManyRequestsException` with its reason.
    pub fn throttled(reason: &'static str) -> Self {
        Self {
            reason: Some(reason),
            ..Self::new(ErrorKind::TooManyRequests, "Rate Exceeded.")
        }
    }
    /// 500 `ServiceException`.
    pub fn service(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Service, message)
    }
    /// 502 `InvalidRuntimeException`.
    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRuntime, message)
    }
    /// 404 `ProvisionedConcurrencyConfigNotFoundException`.
    pub fn no_provisioned(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ProvisionedConcurrencyConfigNotFound, message)
    }
    /// 404 for a path no API has.
    pub fn unknown_operation(method: &str, path: &str) -> Self {
        Self::new(
            ErrorKind::UnknownOperation,
            format!("no operation for {method} {path}"),
        )
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Conflict(message) => return Self::conflict(message),
            StoreError::RevisionMismatch { .. } => {
                return Self::conflict(format!(
                    "{e}. Call the GetFunction/GetAlias API to retrieve the latest Revision Id and retry"
                ))
            }
            _ => {}
        }
        tracing::error!(error = %e, "state database");
        Self::service(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = if self.status().is_server_error() {
            "Service"
        } else {
            "User"
        };
        let mut body = serde_json::json!({ "Type": kind, "message": self.message });
        if let Some(reason) = self.reason {
            body["Reason"] = reason.into();
            body["retryAfterSeconds"] = "1".into();
        }
        let mut resp = (
            self.status(),
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.kind.as_str()),
        );
        if let Ok(id) = HeaderValue::from_str(&crate::model::new_uuid()) {
            h.insert("x-amzn-requestid", id);
        }
        if self.reason.is_some() {
            h.insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Runs blocking work (database calls, hashing, unzipping, fsync) on a blocking
/// thread, so no async worker waits on it; a panic there is a `ServiceException`.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::service(format!("task failed: {e}"))))
}
