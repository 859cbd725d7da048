//! `/v1/accounts`: the operator manages tenant accounts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_api::auth::{Account, CreateAccountRequest, CreatedAccessKey, ListAccountsResponse, SuspendAccountRequest};
use berth_api::{ErrorBody, Page};

use super::{MutationHeaders, idempotency};
use crate::app::{AppError, IdempotencyRequest};
use crate::auth::Principal;
use crate::http::extract::{ApiJson, ApiQuery, IdempotencyKey, IfMatch, OptionalJson};
use crate::http::{AppState, resource, written};

/// Create a tenant account (operator only).
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", operation_id = "create_account",
    params(MutationHeaders),
    request_body = CreateAccountRequest,
    responses(
        (status = 201, description = "Created", body = Account),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<CreateAccountRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, "POST /v1/accounts", &req)?;
    Ok(written(StatusCode::CREATED, state.app.create_account(&principal, req, idem.as_ref()).await?))
}

/// List accounts (operator only).
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", operation_id = "list_accounts",
    params(Page),
    responses(
        (status = 200, description = "A page of accounts", body = ListAccountsResponse),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<axum::Json<ListAccountsResponse>, AppError> {
    Ok(axum::Json(state.app.list_accounts(&principal, &page).await?))
}

/// Get an account by name or id (operator only).
#[utoipa::path(get, path = "/v1/accounts/{account}", tag = "accounts", operation_id = "get_account",
    params(("account" = String, Path, description = "Account name or id")),
    responses(
        (status = 200, description = "The account", body = Account),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(account): Path<String>,
) -> Result<Response, AppError> {
    Ok(resource(StatusCode::OK, &state.app.get_account(&principal, &account).await?))
}

/// Suspend an account: every call with its credentials gets 403 AccountSuspended; its tasks keep running.
#[utoipa::path(post, path = "/v1/accounts/{account}/suspend", tag = "accounts", operation_id = "suspend_account",
    params(("account" = String, Path, description = "Account name or id"), MutationHeaders),
    request_body(content = Option<SuspendAccountRequest>, description = "Optional: the reason"),
    responses(
        (status = 200, description = "The account, now SUSPENDED", body = Account),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "The operator account cannot be suspended", body = ErrorBody),
    ))]
pub async fn suspend(
    State(state): State<AppState>,
    principal: Principal,
    Path(account): Path<String>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
    OptionalJson(req): OptionalJson<SuspendAccountRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, &format!("POST /v1/accounts/{account}/suspend"), &req)?;
    let w = state.app.set_account_status(&principal, &account, true, req, if_match, idem.as_ref()).await?;
    Ok(written(StatusCode::OK, w))
}

/// Reactivate a suspended account.
#[utoipa::path(post, path = "/v1/accounts/{account}/reactivate", tag = "accounts", operation_id = "reactivate_account",
    params(("account" = String, Path, description = "Account name or id"), MutationHeaders),
    responses(
        (status = 200, description = "The account, now ACTIVE", body = Account),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub async fn reactivate(
    State(state): State<AppState>,
    principal: Principal,
    Path(account): Path<String>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, &format!("POST /v1/accounts/{account}/reactivate"), &())?;
    let req = SuspendAccountRequest::default();
    let w = state.app.set_account_status(&principal, &account, false, req, if_match, idem.as_ref()).await?;
    Ok(written(StatusCode::OK, w))
}

/// Create an admin access key in a tenant account, to hand to the tenant (operator only).
#[utoipa::path(post, path = "/v1/accounts/{account}/access-keys", tag = "accounts", operation_id = "create_account_admin_key",
    params(("account" = String, Path, description = "Account name or id"), MutationHeaders),
    responses(
        (status = 201, description = "The key and its secret, shown only now", body = CreatedAccessKey),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub async fn create_admin_key(
    State(state): State<AppState>,
    principal: Principal,
    Path(account): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, &format!("POST /v1/accounts/{account}/access-keys"), &())?
        .map(IdempotencyRequest::sensitive);
    let w = state.app.create_account_admin_key(&principal, &account, idem.as_ref()).await?;
    Ok(super::created_json(w))
}

impl crate::http::Versioned for Account {
    fn version(&self) -> i64 {
        self.version
    }
}
