//! `/v1/access-keys`: the account's keys (admin keys only).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_api::auth::{AccessKey, CreateAccessKeyRequest, CreatedAccessKey, ListAccessKeysResponse};
use berth_api::{ErrorBody, Page};

use super::{MutationHeaders, idempotency};
use crate::app::{AppError, IdempotencyRequest};
use crate::auth::Principal;
use crate::http::extract::{ApiJson, ApiQuery, IdempotencyKey, IfMatch};
use crate::http::{AppState, resource, written, written_empty};

/// Create an access key. The secret is in this response only.
#[utoipa::path(post, path = "/v1/access-keys", tag = "access-keys", operation_id = "create_access_key",
    params(MutationHeaders),
    request_body = CreateAccessKeyRequest,
    responses(
        (status = 201, description = "The key and its secret, shown only now", body = CreatedAccessKey),
        (status = 403, description = "Only admin keys manage keys", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<CreateAccessKeyRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, "POST /v1/access-keys", &req)?.map(IdempotencyRequest::sensitive);
    Ok(super::created_json(state.app.create_access_key(&principal, req, idem.as_ref()).await?))
}

/// List the account's access keys (never their secrets).
#[utoipa::path(get, path = "/v1/access-keys", tag = "access-keys", operation_id = "list_access_keys",
    params(Page),
    responses(
        (status = 200, description = "A page of keys", body = ListAccessKeysResponse),
        (status = 403, description = "Only admin keys manage keys", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<axum::Json<ListAccessKeysResponse>, AppError> {
    Ok(axum::Json(state.app.list_access_keys(&principal, &page).await?))
}

/// Get an access key, with when and from where it was last used.
#[utoipa::path(get, path = "/v1/access-keys/{key}", tag = "access-keys", operation_id = "get_access_key",
    params(("key" = String, Path, description = "Access key id (BK...)")),
    responses(
        (status = 200, description = "The key", body = AccessKey),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(key): Path<String>,
) -> Result<Response, AppError> {
    Ok(resource(StatusCode::OK, &state.app.get_access_key(&principal, &key).await?))
}

/// Deactivate a key: its signatures and sessions are refused from the next request on.
#[utoipa::path(post, path = "/v1/access-keys/{key}/deactivate", tag = "access-keys", operation_id = "deactivate_access_key",
    params(("key" = String, Path, description = "Access key id"), MutationHeaders),
    responses(
        (status = 200, description = "The key, now INACTIVE", body = AccessKey),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "The account's last active admin key", body = ErrorBody),
    ))]
pub async fn deactivate(
    State(state): State<AppState>,
    principal: Principal,
    Path(key): Path<String>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(idem_key): IdempotencyKey,
) -> Result<Response, AppError> {
    let idem = idempotency(idem_key, None, &format!("POST /v1/access-keys/{key}/deactivate"), &())?;
    Ok(written(
        StatusCode::OK,
        state.app.set_access_key_status(&principal, &key, false, if_match, idem.as_ref()).await?,
    ))
}

/// Reactivate a key.
#[utoipa::path(post, path = "/v1/access-keys/{key}/reactivate", tag = "access-keys", operation_id = "reactivate_access_key",
    params(("key" = String, Path, description = "Access key id"), MutationHeaders),
    responses(
        (status = 200, description = "The key, now ACTIVE", body = AccessKey),
        (status = 404, description = "No such key", body = ErrorBody),
    ))]
pub async fn reactivate(
    State(state): State<AppState>,
    principal: Principal,
    Path(key): Path<String>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(idem_key): IdempotencyKey,
) -> Result<Response, AppError> {
    let idem = idempotency(idem_key, None, &format!("POST /v1/access-keys/{key}/reactivate"), &())?;
    Ok(written(StatusCode::OK, state.app.set_access_key_status(&principal, &key, true, if_match, idem.as_ref()).await?))
}

/// Delete a key.
#[utoipa::path(delete, path = "/v1/access-keys/{key}", tag = "access-keys", operation_id = "delete_access_key",
    params(("key" = String, Path, description = "Access key id"), MutationHeaders),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "The account's last active admin key", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(key): Path<String>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(idem_key): IdempotencyKey,
) -> Result<Response, AppError> {
    let idem = idempotency(idem_key, None, &format!("DELETE /v1/access-keys/{key}"), &())?;
    Ok(written_empty(state.app.delete_access_key(&principal, &key, if_match, idem.as_ref()).await?))
}

impl crate::http::Versioned for AccessKey {
    fn version(&self) -> i64 {
        self.version
    }
}
