//! Errors of the app layer: what went wrong in terms of the API's semantics.
//! The HTTP layer maps each variant to a status and code in one place
//! (`http::error`).

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request does not match the API's shape (bad JSON, unknown field,
    /// bad query parameter or page token).
    #[error("{message}")]
    BadRequest { message: String, field: Option<String> },
    /// A field's value is not acceptable.
    #[error("{message}")]
    Validation { message: String, field: String },
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: &'static str, name: String, field: &'static str },
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    InvalidTransition(String),
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("If-Match: the {kind} is at version {current}, not {expected}")]
    PreconditionFailed { kind: &'static str, expected: i64, current: i64 },
    #[error("{message}")]
    PayloadTooLarge { message: String, field: Option<String> },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// Authentication failed with a specific code (SigV4 and token errors).
    #[error("{message}")]
    Auth { code: berth_api::ErrorCode, message: String },
    #[error("{0}")]
    AccessDenied(String),
    #[error("quota {} exceeded: limit {}, usage {}, requested {}", .0.quota, .0.limit, .0.usage, .0.requested)]
    LimitExceeded(berth_api::quotas::QuotaExceeded),
    #[error("too many requests; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64, limit: u32 },
    #[error(
        "the account already has {0} expensive call(s) in flight (RunTask, placement simulation); retry when one finishes"
    )]
    TooManyConcurrent(usize),
    #[error("the request took longer than {0} s and was abandoned; it changed nothing")]
    RequestTimeout(u64),
    #[error("database unavailable")]
    Unavailable(#[source] StoreError),
    /// A host's agent could not be reached (for its logs).
    #[error("{0}")]
    HostUnreachable(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A concurrent transaction got in the way (a host chosen by placement
    /// changed before its resources were reserved, or the database broke a
    /// deadlock): the operation can simply run again. RunTask does so itself.
    #[error("a concurrent change got in the way; retry")]
    Contention,
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => AppError::Unavailable(e),
            StoreError::Contention(_) => AppError::Contention,
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl AppError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Validation { field: field.into(), message: message.into() }
    }

    pub fn bad_request(field: Option<&str>, message: impl Into<String>) -> Self {
        AppError::BadRequest { field: field.map(str::to_owned), message: message.into() }
    }

    /// A conditional write found the row changed since it was read in the
    /// same transaction (another replica or request got there first).
    pub fn concurrent(kind: &'static str) -> Self {
        AppError::InUse(format!("the {kind} was changed by another request at the same time; retry"))
    }

    /// This failure of a transaction that several callers shared, as each
    /// of them is told it. A conflict (the database rolled the whole
    /// transaction back) stays one, so each caller runs again.
    pub fn for_each_caller(&self) -> Self {
        match self {
            AppError::Contention => AppError::Contention,
            other => AppError::Internal(format!("the transaction shared with concurrent calls failed: {other}")),
        }
    }

    pub fn auth(code: berth_api::ErrorCode, message: impl Into<String>) -> Self {
        AppError::Auth { code, message: message.into() }
    }

    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        AppError::NotFound { kind, id: id.into() }
    }
}

pub type AppResult<T> = Result<T, AppError>;
