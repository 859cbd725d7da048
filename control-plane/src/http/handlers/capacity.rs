//! Managed capacity: the operator's `/v1/capacity-pools` (and their hosts
//! and registration tokens), the sizes MANAGED tasks come in, and `/v1/usage`.
//!
//! A pool's host endpoints are the cluster host endpoints under the pool's
//! name, behind the operator check.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_api::auth::{CreateRegistrationTokenRequest, CreatedRegistrationToken};
use berth_api::capacity::{
    CapacityPool, CreateCapacityPoolRequest, ListCapacityPoolsResponse, ListTaskSizesResponse, UsageQuery,
    UsageResponse,
};
use berth_api::hosts::{Host, ListHostsResponse, UpdateHostAttributesRequest};
use berth_api::{ErrorBody, Page};

use super::{MutationHeaders, created_json, idempotency};
use crate::app::{AppError, IdempotencyRequest};
use crate::auth::Principal;
use crate::http::extract::{ApiJson, ApiQuery, IdempotencyKey, IfMatch, OptionalJson};
use crate::http::{AppState, written};

/// Create a capacity pool (operator only): shared hosts for every account's MANAGED tasks.
#[utoipa::path(post, path = "/v1/capacity-pools", tag = "capacity", operation_id = "create_capacity_pool",
    params(MutationHeaders),
    request_body = CreateCapacityPoolRequest,
    responses(
        (status = 201, description = "Created", body = CapacityPool),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 409, description = "The name is taken by a pool or one of the operator's clusters", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<CreateCapacityPoolRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, req.client_token.as_deref(), "POST /v1/capacity-pools", &req)?;
    Ok(created_json(state.app.create_capacity_pool(&principal, req, idem.as_ref()).await?))
}

/// List capacity pools in the order MANAGED placement tries them (operator only).
#[utoipa::path(get, path = "/v1/capacity-pools", tag = "capacity", operation_id = "list_capacity_pools",
    responses(
        (status = 200, description = "Every pool", body = ListCapacityPoolsResponse),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<ListCapacityPoolsResponse>, AppError> {
    Ok(axum::Json(state.app.list_capacity_pools(&principal).await?))
}

/// Get a capacity pool with its hosts' totals (operator only).
#[utoipa::path(get, path = "/v1/capacity-pools/{pool}", tag = "capacity", operation_id = "get_capacity_pool",
    params(("pool" = String, Path, description = "Pool name or id")),
    responses(
        (status = 200, description = "The pool", body = CapacityPool),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such pool", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(pool): Path<String>,
) -> Result<axum::Json<CapacityPool>, AppError> {
    Ok(axum::Json(state.app.get_capacity_pool(&principal, &pool).await?))
}

/// List a pool's hosts (operator only).
#[utoipa::path(get, path = "/v1/capacity-pools/{pool}/hosts", tag = "capacity", operation_id = "list_pool_hosts",
    params(("pool" = String, Path, description = "Pool name or id"), Page),
    responses(
        (status = 200, description = "A page of hosts", body = ListHostsResponse),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such pool", body = ErrorBody),
    ))]
pub async fn list_hosts(
    State(state): State<AppState>,
    principal: Principal,
    Path(pool): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<axum::Json<ListHostsResponse>, AppError> {
    let cluster = state.app.pool_cluster(&principal, &pool).await?;
    Ok(axum::Json(state.app.list_hosts(&principal, &cluster, &page).await?))
}

/// Replace a pool host's user attributes (operator only).
#[utoipa::path(put, path = "/v1/capacity-pools/{pool}/hosts/{host}/attributes", tag = "capacity", operation_id = "update_pool_host_attributes",
    params(("pool" = String, Path, description = "Pool name or id"), ("host" = String, Path, description = "Host id"), MutationHeaders),
    request_body = UpdateHostAttributesRequest,
    responses(
        (status = 200, description = "The host", body = Host),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such pool or host", body = ErrorBody),
        (status = 422, description = "An attribute is invalid", body = ErrorBody),
    ))]
pub async fn host_attributes(
    State(state): State<AppState>,
    principal: Principal,
    Path((pool, host)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<UpdateHostAttributesRequest>,
) -> Result<Response, AppError> {
    let cluster = state.app.pool_cluster(&principal, &pool).await?;
    let idem = idempotency(key, None, &format!("PUT /v1/capacity-pools/{pool}/hosts/{host}/attributes"), &req)?;
    let w = state.app.update_host_attributes(&principal, &cluster, &host, req, if_match, idem.as_ref()).await?;
    Ok(written(StatusCode::OK, w))
}

/// Drain a pool's host (operator only): no new MANAGED tasks land there, and
/// MANAGED service tasks move off it.
#[utoipa::path(post, path = "/v1/capacity-pools/{pool}/hosts/{host}/drain", tag = "capacity", operation_id = "drain_pool_host",
    params(("pool" = String, Path, description = "Pool name or id"), ("host" = String, Path, description = "Host id"), MutationHeaders),
    responses(
        (status = 200, description = "The host, DRAINING", body = Host),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such pool or host", body = ErrorBody),
        (status = 409, description = "The host cannot be drained in its state", body = ErrorBody),
    ))]
pub async fn drain_host(
    State(state): State<AppState>,
    principal: Principal,
    Path((pool, host)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, AppError> {
    let cluster = state.app.pool_cluster(&principal, &pool).await?;
    let idem = idempotency(key, None, &format!("POST /v1/capacity-pools/{pool}/hosts/{host}/drain"), &())?;
    Ok(written(StatusCode::OK, state.app.drain_host(&principal, &cluster, &host, if_match, idem.as_ref()).await?))
}

/// Create a token agents join the pool with (`berth agent --pool NAME`), operator only.
#[utoipa::path(post, path = "/v1/capacity-pools/{pool}/registration-tokens", tag = "capacity", operation_id = "create_pool_registration_token",
    params(("pool" = String, Path, description = "Pool name or id"), MutationHeaders),
    request_body(content = Option<CreateRegistrationTokenRequest>, description = "Optional: expiry, uses, description"),
    responses(
        (status = 201, description = "The token, shown only now", body = CreatedRegistrationToken),
        (status = 403, description = "Not the operator account's admin", body = ErrorBody),
        (status = 404, description = "No such pool", body = ErrorBody),
    ))]
pub async fn create_registration_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(pool): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    OptionalJson(req): OptionalJson<CreateRegistrationTokenRequest>,
) -> Result<Response, AppError> {
    let cluster = state.app.pool_cluster(&principal, &pool).await?;
    let idem = idempotency(key, None, &format!("POST /v1/capacity-pools/{pool}/registration-tokens"), &req)?
        .map(IdempotencyRequest::sensitive);
    Ok(created_json(state.app.create_registration_token(&principal, &cluster, req, idem.as_ref()).await?))
}

/// The sizes MANAGED tasks are rounded up to.
#[utoipa::path(get, path = "/v1/capacity/sizes", tag = "capacity", operation_id = "list_task_sizes",
    responses((status = 200, description = "Smallest first", body = ListTaskSizesResponse)))]
pub async fn sizes(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<ListTaskSizesResponse>, AppError> {
    Ok(axum::Json(state.app.list_task_sizes(&principal)?))
}

/// MANAGED usage in a window: vCPU-seconds and GiB-seconds per task and per account.
#[utoipa::path(get, path = "/v1/usage", tag = "capacity", operation_id = "get_usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "Usage in the window", body = UsageResponse),
        (status = 403, description = "all_accounts without the operator's admin key", body = ErrorBody),
        (status = 422, description = "The window is invalid", body = ErrorBody),
    ))]
pub async fn usage(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<axum::Json<UsageResponse>, AppError> {
    Ok(axum::Json(state.app.usage(&principal, &query).await?))
}
