//! `/v1/clusters/{cluster}/hosts` and the placement dry run.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_api::hosts::{
    DeregisterHostRequest, Host, ListHostsResponse, SimulatePlacementRequest, SimulatePlacementResponse,
    UpdateHostAttributesRequest,
};
use berth_api::{ErrorBody, Page};

use super::{MutationHeaders, idempotency};
use crate::app::AppError;
use crate::auth::Principal;
use crate::http::extract::{ApiJson, ApiQuery, IdempotencyKey, IfMatch, OptionalJson};
use crate::http::{AppState, Versioned, resource, written};

impl Versioned for Host {
    fn version(&self) -> i64 {
        self.version
    }
}

/// List the cluster's hosts with their resources, attributes and status.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/hosts", tag = "hosts", operation_id = "list_hosts",
    params(("cluster" = String, Path, description = "Cluster name or id"), Page),
    responses(
        (status = 200, description = "A page of hosts", body = ListHostsResponse),
        (status = 404, description = "No such cluster", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(cluster): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<axum::Json<ListHostsResponse>, AppError> {
    Ok(axum::Json(state.app.list_hosts(&principal, &cluster, &page).await?))
}

/// Get a host.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/hosts/{host}", tag = "hosts", operation_id = "get_host",
    params(("cluster" = String, Path, description = "Cluster name or id"), ("host" = String, Path, description = "Host id")),
    responses(
        (status = 200, description = "The host", body = Host),
        (status = 404, description = "No such cluster or host", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path((cluster, host)): Path<(String, String)>,
) -> Result<Response, AppError> {
    Ok(resource(StatusCode::OK, &state.app.get_host(&principal, &cluster, &host).await?))
}

/// Replace the host's user attributes (the agent's own stay).
#[utoipa::path(put, path = "/v1/clusters/{cluster}/hosts/{host}/attributes", tag = "hosts", operation_id = "update_host_attributes",
    params(("cluster" = String, Path, description = "Cluster name or id"), ("host" = String, Path, description = "Host id"), MutationHeaders),
    request_body = UpdateHostAttributesRequest,
    responses(
        (status = 200, description = "The host", body = Host),
        (status = 404, description = "No such cluster or host", body = ErrorBody),
        (status = 422, description = "An attribute is invalid", body = ErrorBody),
    ))]
pub async fn attributes(
    State(state): State<AppState>,
    principal: Principal,
    Path((cluster, host)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<UpdateHostAttributesRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, &format!("PUT /v1/clusters/{cluster}/hosts/{host}/attributes"), &req)?;
    let w = state.app.update_host_attributes(&principal, &cluster, &host, req, if_match, idem.as_ref()).await?;
    Ok(written(StatusCode::OK, w))
}

/// Drain a host: no new placements; standalone tasks keep running.
#[utoipa::path(post, path = "/v1/clusters/{cluster}/hosts/{host}/drain", tag = "hosts", operation_id = "drain_host",
    params(("cluster" = String, Path, description = "Cluster name or id"), ("host" = String, Path, description = "Host id"), MutationHeaders),
    responses(
        (status = 200, description = "The host, DRAINING", body = Host),
        (status = 404, description = "No such cluster or host", body = ErrorBody),
        (status = 409, description = "The host cannot be drained in its state", body = ErrorBody),
    ))]
pub async fn drain(
    State(state): State<AppState>,
    principal: Principal,
    Path((cluster, host)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, &format!("POST /v1/clusters/{cluster}/hosts/{host}/drain"), &())?;
    Ok(written(StatusCode::OK, state.app.drain_host(&principal, &cluster, &host, if_match, idem.as_ref()).await?))
}

/// Deregister a host; refused while tasks run there unless `force`.
#[utoipa::path(post, path = "/v1/clusters/{cluster}/hosts/{host}/deregister", tag = "hosts", operation_id = "deregister_host",
    params(("cluster" = String, Path, description = "Cluster name or id"), ("host" = String, Path, description = "Host id"), MutationHeaders),
    request_body(content = Option<DeregisterHostRequest>, description = "Optional: force"),
    responses(
        (status = 200, description = "The host, DEREGISTERED", body = Host),
        (status = 404, description = "No such cluster or host", body = ErrorBody),
        (status = 409, description = "Tasks still run on the host", body = ErrorBody),
    ))]
pub async fn deregister(
    State(state): State<AppState>,
    principal: Principal,
    Path((cluster, host)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
    OptionalJson(req): OptionalJson<DeregisterHostRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, &format!("POST /v1/clusters/{cluster}/hosts/{host}/deregister"), &req)?;
    let w = state.app.deregister_host(&principal, &cluster, &host, req, if_match, idem.as_ref()).await?;
    Ok(written(StatusCode::OK, w))
}

/// A dry run of placement: the hosts that would be chosen and why every other host would not.
#[utoipa::path(post, path = "/v1/clusters/{cluster}/placement:simulate", tag = "hosts", operation_id = "simulate_placement",
    params(("cluster" = String, Path, description = "Cluster name or id")),
    request_body = SimulatePlacementRequest,
    responses(
        (status = 200, description = "The plan and every host's verdict", body = SimulatePlacementResponse),
        (status = 404, description = "No such cluster or task definition", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
pub async fn simulate(
    State(state): State<AppState>,
    principal: Principal,
    Path(cluster): Path<String>,
    ApiJson(req): ApiJson<SimulatePlacementRequest>,
) -> Result<axum::Json<SimulatePlacementResponse>, AppError> {
    Ok(axum::Json(state.app.simulate_placement(&principal, &cluster, req).await?))
}
