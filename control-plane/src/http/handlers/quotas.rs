//! Quotas and rate limits: `/v1/quotas` and `/v1/rate-limits` (an account's
//! own), and under `/v1/accounts/{account}/` (the operator's).

use axum::extract::{Path, State};
use berth_api::ErrorBody;
use berth_api::quotas::{
    ListQuotasResponse, ListRateLimitsResponse, PutQuotaRequest, PutRateLimitRequest, Quota, RateLimit,
};

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

/// The caller's account's rate limits: a token bucket per class of call.
#[utoipa::path(get, path = "/v1/rate-limits", tag = "quotas", operation_id = "list_rate_limits",
    responses(
        (status = 200, description = "Each class's bucket (empty when the server has rate limiting off)", body = ListRateLimitsResponse),
    ))]
pub async fn list_rate_limits(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<ListRateLimitsResponse>, AppError> {
    Ok(axum::Json(state.app.list_rate_limits(&principal).await?))
}

/// An account's rate limits (operator only).
#[utoipa::path(get, path = "/v1/accounts/{account}/rate-limits", tag = "quotas", operation_id = "list_account_rate_limits",
    params(("account" = String, Path, description = "Account name or id")),
    responses(
        (status = 200, description = "Each class's bucket", body = ListRateLimitsResponse),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub async fn list_account_rate_limits(
    State(state): State<AppState>,
    principal: Principal,
    Path(account): Path<String>,
) -> Result<axum::Json<ListRateLimitsResponse>, AppError> {
    Ok(axum::Json(state.app.list_account_rate_limits(&principal, &account).await?))
}

/// Set an account's bucket for one class of call (operator only).
#[utoipa::path(put, path = "/v1/accounts/{account}/rate-limits/{class}", tag = "quotas", operation_id = "put_account_rate_limit",
    params(("account" = String, Path, description = "Account name or id"), ("class" = String, Path, description = "read, mutate, run_task or agent")),
    request_body = PutRateLimitRequest,
    responses(
        (status = 200, description = "The new bucket", body = RateLimit),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such account or class", body = ErrorBody),
        (status = 422, description = "A rate or burst out of range", body = ErrorBody),
    ))]
pub async fn put_rate_limit(
    State(state): State<AppState>,
    principal: Principal,
    Path((account, class)): Path<(String, String)>,
    ApiJson(req): ApiJson<PutRateLimitRequest>,
) -> Result<axum::Json<RateLimit>, AppError> {
    Ok(axum::Json(state.app.put_rate_limit(&principal, &account, &class, req).await?))
}

/// Return an account's bucket for a class to the default (operator only).
#[utoipa::path(delete, path = "/v1/accounts/{account}/rate-limits/{class}", tag = "quotas", operation_id = "reset_account_rate_limit",
    params(("account" = String, Path, description = "Account name or id"), ("class" = String, Path, description = "read, mutate, run_task or agent")),
    responses(
        (status = 200, description = "The default bucket", body = RateLimit),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such account or class", body = ErrorBody),
    ))]
pub async fn reset_rate_limit(
    State(state): State<AppState>,
    principal: Principal,
    Path((account, class)): Path<(String, String)>,
) -> Result<axum::Json<RateLimit>, AppError> {
    Ok(axum::Json(state.app.reset_rate_limit(&principal, &account, &class).await?))
}
