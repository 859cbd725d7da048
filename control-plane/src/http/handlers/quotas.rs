//! `/v1/quotas` (an account's own) and `/v1/accounts/{account}/quotas` (the operator's).

use axum::extract::{Path, State};
use berth_api::ErrorBody;
use berth_api::quotas::{ListQuotasResponse, PutQuotaRequest, Quota};

use crate::app::AppError;
use crate::auth::Principal;
use crate::http::AppState;
use crate::http::extract::ApiJson;

/// Every quota of the caller's account: its limit and current usage.
#[utoipa::path(get, path = "/v1/quotas", tag = "quotas", operation_id = "list_quotas",
    responses(
        (status = 200, description = "Every quota with its limit and usage", body = ListQuotasResponse),
    ))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<ListQuotasResponse>, AppError> {
    Ok(axum::Json(state.app.list_quotas(&principal).await?))
}

/// Every quota of an account (operator only).
#[utoipa::path(get, path = "/v1/accounts/{account}/quotas", tag = "quotas", operation_id = "list_account_quotas",
    params(("account" = String, Path, description = "Account name or id")),
    responses(
        (status = 200, description = "Every quota with its limit and usage", body = ListQuotasResponse),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub async fn list_for_account(
    State(state): State<AppState>,
    principal: Principal,
    Path(account): Path<String>,
) -> Result<axum::Json<ListQuotasResponse>, AppError> {
    Ok(axum::Json(state.app.list_account_quotas(&principal, &account).await?))
}

/// Set an account's limit for one quota (operator only). A limit below the
/// current usage stops nothing; new requests are refused until usage drops.
#[utoipa::path(put, path = "/v1/accounts/{account}/quotas/{name}", tag = "quotas", operation_id = "put_account_quota",
    params(("account" = String, Path, description = "Account name or id"), ("name" = String, Path, description = "Quota name, e.g. running_tasks")),
    request_body = PutQuotaRequest,
    responses(
        (status = 200, description = "The quota with its new limit", body = Quota),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such account or quota", body = ErrorBody),
        (status = 422, description = "A negative limit", body = ErrorBody),
    ))]
pub async fn put(
    State(state): State<AppState>,
    principal: Principal,
    Path((account, name)): Path<(String, String)>,
    ApiJson(req): ApiJson<PutQuotaRequest>,
) -> Result<axum::Json<Quota>, AppError> {
    Ok(axum::Json(state.app.put_quota(&principal, &account, &name, req).await?))
}

/// Return an account's quota to the configured default (operator only).
#[utoipa::path(delete, path = "/v1/accounts/{account}/quotas/{name}", tag = "quotas", operation_id = "reset_account_quota",
    params(("account" = String, Path, description = "Account name or id"), ("name" = String, Path, description = "Quota name")),
    responses(
        (status = 200, description = "The quota, back at its default", body = Quota),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such account or quota", body = ErrorBody),
    ))]
pub async fn reset(
    State(state): State<AppState>,
    principal: Principal,
    Path((account, name)): Path<(String, String)>,
) -> Result<axum::Json<Quota>, AppError> {
    Ok(axum::Json(state.app.reset_quota(&principal, &account, &name).await?))
}
