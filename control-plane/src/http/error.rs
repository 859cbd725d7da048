//! The one place where errors become HTTP responses.
//!
//! Handlers return [`AppError`]; its `IntoResponse` picks the status and the
//! machine-readable code and leaves an [`ErrorDraft`] in the response's
//! extensions. The request-context middleware, which knows the request id,
//! renders every error as the same JSON body. Errors produced outside our
//! handlers (unknown route, wrong method, a panic) are drafted there too.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::ErrorCode;

use crate::app::AppError;

/// An error response waiting for its request id.
#[derive(Clone, Debug)]
pub struct ErrorDraft {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    pub quota: Option<berth_api::quotas::QuotaExceeded>,
}

pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::ValidationError => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::MissingAuthenticationToken | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::AccessDenied
        | ErrorCode::AccountSuspended
        | ErrorCode::InvalidAccessKeyId
        | ErrorCode::SignatureDoesNotMatch
        | ErrorCode::RequestExpired
        | ErrorCode::IncompleteSignature => StatusCode::FORBIDDEN,
        ErrorCode::ResourceNotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::ResourceAlreadyExists
        | ErrorCode::ResourceInUse
        | ErrorCode::InvalidStateTransition
        | ErrorCode::IdempotencyKeyReused
        | ErrorCode::LimitExceeded => StatusCode::CONFLICT,
        ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::ThrottlingException | ErrorCode::TooManyConcurrentRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RequestTimeout => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

pub fn draft_response(code: ErrorCode, message: impl Into<String>, field: Option<String>) -> Response {
    let mut resp = status_of(code).into_response();
    resp.extensions_mut().insert(ErrorDraft { code, message: message.into(), field, quota: None });
    resp
}

/// The code (and the field it concerns) an error has on the wire.
pub fn code_of(e: &AppError) -> (ErrorCode, Option<String>) {
    match e {
        AppError::BadRequest { field, .. } => (ErrorCode::BadRequest, field.clone()),
        AppError::Validation { field, .. } => (ErrorCode::ValidationError, Some(field.clone())),
        AppError::NotFound { .. } => (ErrorCode::ResourceNotFound, None),
        AppError::AlreadyExists { field, .. } => (ErrorCode::ResourceAlreadyExists, Some((*field).to_owned())),
        AppError::InUse(_) | AppError::Contention => (ErrorCode::ResourceInUse, None),
        AppError::InvalidTransition(_) => (ErrorCode::InvalidStateTransition, None),
        AppError::IdempotencyKeyReused => (ErrorCode::IdempotencyKeyReused, Some("idempotency_key".into())),
        AppError::PreconditionFailed { .. } => (ErrorCode::PreconditionFailed, Some("if_match".into())),
        AppError::PayloadTooLarge { field, .. } => (ErrorCode::PayloadTooLarge, field.clone()),
        AppError::UnsupportedMediaType(_) => (ErrorCode::UnsupportedMediaType, None),
        AppError::Unauthenticated(_) => (ErrorCode::MissingAuthenticationToken, None),
        AppError::AccessDenied(_) => (ErrorCode::AccessDenied, None),
        AppError::Auth { code, .. } => (*code, None),
        AppError::Throttled { .. } => (ErrorCode::ThrottlingException, None),
        AppError::TooManyConcurrent(_) => (ErrorCode::TooManyConcurrentRequests, None),
        AppError::RequestTimeout(_) => (ErrorCode::RequestTimeout, None),
        AppError::LimitExceeded(_) => (ErrorCode::LimitExceeded, None),
        AppError::Unavailable(_) | AppError::HostUnreachable(_) => (ErrorCode::ServiceUnavailable, None),
        AppError::Internal(_) => (ErrorCode::InternalError, None),
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (code, field) = match self {
            AppError::Throttled { retry_after_secs, limit } => {
                let mut resp = draft_response(ErrorCode::ThrottlingException, message, None);
                let headers = resp.headers_mut();
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                headers.insert("ratelimit-limit", HeaderValue::from(limit));
                headers.insert("ratelimit-remaining", HeaderValue::from(0u32));
                headers.insert("ratelimit-reset", HeaderValue::from(retry_after_secs));
                return resp;
            }
            AppError::RequestTimeout(_) => {
                let mut resp = draft_response(ErrorCode::RequestTimeout, message, None);
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1u32));
                return resp;
            }
            AppError::Unavailable(ref source) => {
                tracing::warn!(error = %source, "database unavailable");
                let mut resp =
                    draft_response(ErrorCode::ServiceUnavailable, "the database is unavailable; retry later", None);
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1u32));
                return resp;
            }
            AppError::Internal(ref detail) => {
                // The detail goes to the log, keyed by request id, not to the client.
                tracing::error!(error = %detail, "internal error");
                return draft_response(
                    ErrorCode::InternalError,
                    "an internal error occurred; quote the request id when reporting it",
                    None,
                );
            }
            AppError::LimitExceeded(quota) => {
                let mut resp = draft_response(ErrorCode::LimitExceeded, message, None);
                if let Some(d) = resp.extensions_mut().get_mut::<ErrorDraft>() {
                    d.quota = Some(quota);
                }
                return resp;
            }
            ref other => code_of(other),
        };
        draft_response(code, message, field)
    }
}
