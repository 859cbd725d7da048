//! `/v1/clusters`

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_api::clusters::{Cluster, CreateClusterRequest, ListClustersResponse, UpdateClusterRequest};
use berth_api::{ErrorBody, Page};

use super::{MutationHeaders, idempotency};
use crate::app::AppError;
use crate::auth::Principal;
use crate::http::extract::{ApiJson, ApiQuery, IdempotencyKey, IfMatch};
use crate::http::{AppState, resource, written, written_empty};

/// Create a cluster.
#[utoipa::path(post, path = "/v1/clusters", tag = "clusters", operation_id = "create_cluster",
    params(MutationHeaders),
    request_body = CreateClusterRequest,
    responses(
        (status = 201, description = "Created", body = Cluster),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 409, description = "A cluster with this name exists, or the idempotency key was reused", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<CreateClusterRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, req.client_token.as_deref(), "POST /v1/clusters", &req)?;
    let w = state.app.create_cluster(&principal, req, idem.as_ref()).await?;
    Ok(written(StatusCode::CREATED, w))
}

/// List clusters, oldest first.
#[utoipa::path(get, path = "/v1/clusters", tag = "clusters", operation_id = "list_clusters",
    params(Page),
    responses(
        (status = 200, description = "A page of clusters", body = ListClustersResponse),
        (status = 400, description = "Bad paging parameters", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<axum::Json<ListClustersResponse>, AppError> {
    Ok(axum::Json(state.app.list_clusters(&principal, &page).await?))
}

/// Get a cluster by name or id.
#[utoipa::path(get, path = "/v1/clusters/{cluster}", tag = "clusters", operation_id = "get_cluster",
    params(("cluster" = String, Path, description = "Cluster name or id")),
    responses(
        (status = 200, description = "The cluster; its ETag is its version", body = Cluster),
        (status = 404, description = "No such cluster", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(cluster): Path<String>,
) -> Result<Response, AppError> {
    Ok(resource(StatusCode::OK, &state.app.get_cluster(&principal, &cluster).await?))
}

/// Update a cluster's tags.
#[utoipa::path(patch, path = "/v1/clusters/{cluster}", tag = "clusters", operation_id = "update_cluster",
    params(("cluster" = String, Path, description = "Cluster name or id"), MutationHeaders),
    request_body = UpdateClusterRequest,
    responses(
        (status = 200, description = "Updated", body = Cluster),
        (status = 404, description = "No such cluster", body = ErrorBody),
        (status = 412, description = "If-Match does not match the cluster's version", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(cluster): Path<String>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<UpdateClusterRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, &format!("PATCH /v1/clusters/{cluster}"), &req)?;
    let w = state.app.update_cluster(&principal, &cluster, if_match, req, idem.as_ref()).await?;
    Ok(written(StatusCode::OK, w))
}

/// Delete a cluster. Refused while it has tasks that are not STOPPED.
#[utoipa::path(delete, path = "/v1/clusters/{cluster}", tag = "clusters", operation_id = "delete_cluster",
    params(("cluster" = String, Path, description = "Cluster name or id"), MutationHeaders),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such cluster", body = ErrorBody),
        (status = 409, description = "The cluster still has active tasks", body = ErrorBody),
        (status = 412, description = "If-Match does not match the cluster's version", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(cluster): Path<String>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, &format!("DELETE /v1/clusters/{cluster}"), &())?;
    let w = state.app.delete_cluster(&principal, &cluster, if_match, idem.as_ref()).await?;
    Ok(written_empty(w))
}
