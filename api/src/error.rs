//! The one error body every failing API call returns.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Machine-readable error codes. The HTTP status for each is fixed by the
/// server (one mapping, in the control plane); clients should branch on the
/// code, not the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ErrorCode {
    /// 400: the request is malformed (bad JSON, unknown field, bad parameter).
    BadRequest,
    /// 422: the request is well-formed but a field's value is not acceptable.
    ValidationError,
    /// 401: no credentials were presented.
    MissingAuthenticationToken,
    /// 401: the bearer token is malformed, expired, or not signed by this control plane.
    InvalidToken,
    /// 403: the principal may not perform this action.
    AccessDenied,
    /// 403: the account is suspended; every call is refused until the operator reactivates it.
    AccountSuspended,
    /// 403: no active access key has this id.
    InvalidAccessKeyId,
    /// 403: the SigV4 signature does not match the request.
    SignatureDoesNotMatch,
    /// 403: the signed request is outside the allowed clock skew, or the presigned URL expired.
    RequestExpired,
    /// 403: the SigV4 Authorization header or query parameters are malformed or incomplete.
    IncompleteSignature,
    /// 404: the resource does not exist (or belongs to another account).
    ResourceNotFound,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 409: a resource with this name already exists.
    ResourceAlreadyExists,
    /// 409: the resource is in use and cannot be changed that way now.
    ResourceInUse,
    /// 409: the resource's state does not allow this transition.
    InvalidStateTransition,
    /// 409: the idempotency key was used before with a different request.
    IdempotencyKeyReused,
    /// 412: the `If-Match` version does not match the resource's version.
    PreconditionFailed,
    /// 413: the request body or an item in it is too large.
    PayloadTooLarge,
    /// 415: the request body is not `application/json`.
    UnsupportedMediaType,
    /// 409: the request would take the account over a quota; the body's `quota` says which.
    LimitExceeded,
    /// 429: too many requests; retry after the `Retry-After` delay.
    ThrottlingException,
    /// 429: the account already has its limit of expensive calls in flight; retry when one finishes.
    TooManyConcurrentRequests,
    /// 503: the request ran past the server's per-request timeout and changed nothing.
    RequestTimeout,
    /// 500: an unexpected server error; the request id identifies it in the logs.
    InternalError,
    /// 503: a dependency (the database) is unavailable; retry later.
    ServiceUnavailable,
}

impl ErrorCode {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BadRequest",
            ErrorCode::ValidationError => "ValidationError",
            ErrorCode::MissingAuthenticationToken => "MissingAuthenticationToken",
            ErrorCode::InvalidToken => "InvalidToken",
            ErrorCode::AccessDenied => "AccessDenied",
            ErrorCode::AccountSuspended => "AccountSuspended",
            ErrorCode::InvalidAccessKeyId => "InvalidAccessKeyId",
            ErrorCode::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            ErrorCode::RequestExpired => "RequestExpired",
            ErrorCode::IncompleteSignature => "IncompleteSignature",
            ErrorCode::ResourceNotFound => "ResourceNotFound",
            ErrorCode::MethodNotAllowed => "MethodNotAllowed",
            ErrorCode::ResourceAlreadyExists => "ResourceAlreadyExists",
            ErrorCode::ResourceInUse => "ResourceInUse",
            ErrorCode::InvalidStateTransition => "InvalidStateTransition",
            ErrorCode::IdempotencyKeyReused => "IdempotencyKeyReused",
            ErrorCode::PreconditionFailed => "PreconditionFailed",
            ErrorCode::PayloadTooLarge => "PayloadTooLarge",
            ErrorCode::UnsupportedMediaType => "UnsupportedMediaType",
            ErrorCode::LimitExceeded => "LimitExceeded",
            ErrorCode::ThrottlingException => "ThrottlingException",
            ErrorCode::TooManyConcurrentRequests => "TooManyConcurrentRequests",
            ErrorCode::RequestTimeout => "RequestTimeout",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::ServiceUnavailable => "ServiceUnavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
    /// The request field the error is about, as a path (`container_definitions[0].memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// With `LimitExceeded`: the quota, its limit, the usage and what was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<crate::quotas::QuotaExceeded>,
    /// The request's id, also in the `x-request-id` response header.
    pub request_id: String,
}
