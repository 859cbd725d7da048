//! One module per resource; each handler extracts, calls one app function
//! and responds.

pub mod access_keys;
pub mod accounts;
pub mod agent;
pub mod audit;
pub mod capacity;
pub mod clusters;
pub mod events;
pub mod hosts;
pub mod quotas;
pub mod registration_tokens;
pub mod registry_credentials;
pub mod services;
pub mod sessions;
pub mod system;
pub mod task_definitions;
pub mod tasks;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::IntoParams;

use crate::app::{AppResult, IdempotencyRequest, Written};

/// Headers every mutating call accepts.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct MutationHeaders {
    /// A client-chosen key (1-255 visible ASCII characters). A retry with the
    /// same key and body gets the first response again (marked with
    /// `idempotent-replayed: true`); the same key with another body is refused with 409.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
    /// The resource's ETag (its version) as last read: the call fails with 412 if it changed since.
    #[param(rename = "If-Match")]
    if_match: Option<String>,
}

/// The idempotency key of a call: the header, else the body's `client_token`.
pub(crate) fn idempotency<B: Serialize>(
    header: Option<String>,
    client_token: Option<&str>,
    operation: &str,
    body: &B,
) -> AppResult<Option<IdempotencyRequest>> {
    match header.or_else(|| client_token.map(|t| format!("client_token:{t}"))) {
        Some(key) => IdempotencyRequest::new(key, operation, body).map(Some),
        None => Ok(None),
    }
}

/// A created resource without a version of its own (keys with secrets, tokens).
pub(crate) fn created_json<T: Serialize>(w: Written<T>) -> Response {
    crate::http::mark_replayed((StatusCode::CREATED, axum::Json(&w.value)).into_response(), w.replayed)
}
