//! `/v1/clusters/{cluster}/services`

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_api::services::{
    CreateServiceRequest, DeleteServiceQuery, ListDeploymentsResponse, ListServicesResponse, Service,
    UpdateServiceRequest,
};
use berth_api::{ErrorBody, Page};

use super::{MutationHeaders, idempotency};
use crate::app::AppError;
use crate::auth::Principal;
use crate::http::extract::{ApiJson, ApiQuery, IdempotencyKey, IfMatch};
use crate::http::{AppState, resource, written};

/// Create a service: the scheduler starts its tasks and keeps them running.
#[utoipa::path(post, path = "/v1/clusters/{cluster}/services", tag = "services", operation_id = "create_service",
    params(("cluster" = String, Path, description = "Cluster name or id"), MutationHeaders),
    request_body = CreateServiceRequest,
    responses(
        (status = 201, description = "Created; its first deployment is IN_PROGRESS", body = Service),
        (status = 404, description = "No such cluster or task definition", body = ErrorBody),
        (status = 409, description = "A service of that name exists in the cluster", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
        (status = 429, description = "The account's services quota is reached", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(cluster): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<CreateServiceRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, req.client_token.as_deref(), &format!("POST /v1/clusters/{cluster}/services"), &req)?;
    let w = state.app.create_service(&principal, &cluster, req, idem.as_ref()).await?;
    Ok(super::created_json(w))
}

/// List a cluster's services (those not INACTIVE), oldest first.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/services", tag = "services", operation_id = "list_services",
    params(("cluster" = String, Path, description = "Cluster name or id"), Page),
    responses(
        (status = 200, description = "A page of services", body = ListServicesResponse),
        (status = 400, description = "Bad paging parameters", body = ErrorBody),
        (status = 404, description = "No such cluster", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(cluster): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<axum::Json<ListServicesResponse>, AppError> {
    Ok(axum::Json(state.app.list_services(&principal, &cluster, &page).await?))
}

/// Get a service by name or id, with its live deployments and the scheduler's latest messages.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/services/{service}", tag = "services", operation_id = "get_service",
    params(("cluster" = String, Path, description = "Cluster name or id"),
           ("service" = String, Path, description = "Service name or id")),
    responses(
        (status = 200, description = "The service; its ETag is its version", body = Service),
        (status = 404, description = "No such cluster or service", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path((cluster, service)): Path<(String, String)>,
) -> Result<Response, AppError> {
    Ok(resource(StatusCode::OK, &state.app.get_service(&principal, &cluster, &service).await?))
}

/// Change a service. A new task definition, `container_changes` (which
/// register a new revision) or `force_new_deployment` start a rolling
/// deployment; other fields apply at once.
#[utoipa::path(patch, path = "/v1/clusters/{cluster}/services/{service}", tag = "services", operation_id = "update_service",
    params(("cluster" = String, Path, description = "Cluster name or id"),
           ("service" = String, Path, description = "Service name or id"), MutationHeaders),
    request_body = UpdateServiceRequest,
    responses(
        (status = 200, description = "Updated", body = Service),
        (status = 404, description = "No such cluster, service or task definition", body = ErrorBody),
        (status = 409, description = "The service is being deleted", body = ErrorBody),
        (status = 412, description = "If-Match does not match the service's version", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path((cluster, service)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<UpdateServiceRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, &format!("PATCH /v1/clusters/{cluster}/services/{service}"), &req)?;
    let w = state.app.update_service(&principal, &cluster, &service, if_match, req, idem.as_ref()).await?;
    Ok(written(StatusCode::OK, w))
}

/// Delete a service: it scales to zero and goes INACTIVE when its last task
/// stopped (status DRAINING meanwhile); `force` stops its tasks and removes it at once.
#[utoipa::path(delete, path = "/v1/clusters/{cluster}/services/{service}", tag = "services", operation_id = "delete_service",
    params(("cluster" = String, Path, description = "Cluster name or id"),
           ("service" = String, Path, description = "Service name or id"), DeleteServiceQuery, MutationHeaders),
    responses(
        (status = 200, description = "The service, DRAINING (or INACTIVE with force)", body = Service),
        (status = 404, description = "No such cluster or service", body = ErrorBody),
        (status = 412, description = "If-Match does not match the service's version", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path((cluster, service)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<DeleteServiceQuery>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, AppError> {
    let force = query.force.unwrap_or(false);
    let idem = idempotency(key, None, &format!("DELETE /v1/clusters/{cluster}/services/{service}"), &force)?;
    let w = state.app.delete_service(&principal, &cluster, &service, force, if_match, idem.as_ref()).await?;
    Ok(written(StatusCode::OK, w))
}

/// A service's deployments, newest first.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/services/{service}/deployments", tag = "services",
    operation_id = "list_service_deployments",
    params(("cluster" = String, Path, description = "Cluster name or id"),
           ("service" = String, Path, description = "Service name or id"), Page),
    responses(
        (status = 200, description = "A page of deployments", body = ListDeploymentsResponse),
        (status = 404, description = "No such cluster or service", body = ErrorBody),
    ))]
pub async fn deployments(
    State(state): State<AppState>,
    principal: Principal,
    Path((cluster, service)): Path<(String, String)>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<axum::Json<ListDeploymentsResponse>, AppError> {
    Ok(axum::Json(state.app.list_deployments(&principal, &cluster, &service, &page).await?))
}
