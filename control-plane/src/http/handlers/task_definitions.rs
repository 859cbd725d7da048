//! `/v1/task-definitions`

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_api::task_definitions::{
    ListTaskDefinitionFamiliesResponse, ListTaskDefinitionsResponse, RegisterTaskDefinitionRequest, TaskDefinition,
};
use berth_api::{ErrorBody, Page};

use super::{MutationHeaders, idempotency};
use crate::app::AppError;
use crate::auth::Principal;
use crate::http::extract::{ApiJson, ApiQuery, IdempotencyKey, IfMatch};
use crate::http::{AppState, resource, written, written_empty};

/// Register a new revision of a family (the family is created by its first revision).
#[utoipa::path(post, path = "/v1/task-definitions", tag = "task-definitions", operation_id = "register_task_definition",
    params(MutationHeaders),
    request_body = RegisterTaskDefinitionRequest,
    responses(
        (status = 201, description = "Registered", body = TaskDefinition),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 413, description = "The definition is too large", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    principal: Principal,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<RegisterTaskDefinitionRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, req.client_token.as_deref(), "POST /v1/task-definitions", &req)?;
    let w = state.app.register_task_definition(&principal, req, idem.as_ref()).await?;
    Ok(written(StatusCode::CREATED, w))
}

/// List task-definition families in name order.
#[utoipa::path(get, path = "/v1/task-definitions", tag = "task-definitions", operation_id = "list_task_definition_families",
    params(Page),
    responses(
        (status = 200, description = "A page of families", body = ListTaskDefinitionFamiliesResponse),
        (status = 400, description = "Bad paging parameters", body = ErrorBody),
    ))]
pub async fn list_families(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<axum::Json<ListTaskDefinitionFamiliesResponse>, AppError> {
    Ok(axum::Json(state.app.list_task_definition_families(&principal, &page).await?))
}

/// Get the latest ACTIVE revision of a family (or `family:revision`).
#[utoipa::path(get, path = "/v1/task-definitions/{family}", tag = "task-definitions", operation_id = "get_task_definition",
    params(("family" = String, Path, description = "Family name, or family:revision")),
    responses(
        (status = 200, description = "The revision", body = TaskDefinition),
        (status = 404, description = "No such family, or no ACTIVE revision", body = ErrorBody),
    ))]
pub async fn get_latest(
    State(state): State<AppState>,
    principal: Principal,
    Path(family): Path<String>,
) -> Result<Response, AppError> {
    Ok(resource(StatusCode::OK, &state.app.get_task_definition(&principal, &family).await?))
}

/// List a family's revisions, ACTIVE and INACTIVE, in revision order.
#[utoipa::path(get, path = "/v1/task-definitions/{family}/revisions", tag = "task-definitions", operation_id = "list_task_definition_revisions",
    params(("family" = String, Path, description = "Family name"), Page),
    responses(
        (status = 200, description = "A page of revisions", body = ListTaskDefinitionsResponse),
        (status = 404, description = "No such family", body = ErrorBody),
    ))]
pub async fn list_revisions(
    State(state): State<AppState>,
    principal: Principal,
    Path(family): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<axum::Json<ListTaskDefinitionsResponse>, AppError> {
    Ok(axum::Json(state.app.list_task_definition_revisions(&principal, &family, &page).await?))
}

/// Get one revision, ACTIVE or INACTIVE.
#[utoipa::path(get, path = "/v1/task-definitions/{family}/revisions/{revision}", tag = "task-definitions", operation_id = "get_task_definition_revision",
    params(("family" = String, Path, description = "Family name"), ("revision" = i64, Path, description = "Revision number")),
    responses(
        (status = 200, description = "The revision", body = TaskDefinition),
        (status = 404, description = "No such revision", body = ErrorBody),
    ))]
pub async fn get_revision(
    State(state): State<AppState>,
    principal: Principal,
    Path((family, revision)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let revision = parse_revision(&family, &revision)?;
    Ok(resource(StatusCode::OK, &state.app.get_task_definition_revision(&principal, &family, revision).await?))
}

/// Deregister a revision: it becomes INACTIVE, stays readable, and can no longer start tasks.
#[utoipa::path(post, path = "/v1/task-definitions/{family}/revisions/{revision}/deregister", tag = "task-definitions", operation_id = "deregister_task_definition",
    params(("family" = String, Path, description = "Family name"), ("revision" = i64, Path, description = "Revision number"), MutationHeaders),
    responses(
        (status = 200, description = "The revision, now INACTIVE", body = TaskDefinition),
        (status = 404, description = "No such revision", body = ErrorBody),
        (status = 412, description = "If-Match does not match the revision's version", body = ErrorBody),
    ))]
pub async fn deregister(
    State(state): State<AppState>,
    principal: Principal,
    Path((family, revision)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, AppError> {
    let revision = parse_revision(&family, &revision)?;
    let op = format!("POST /v1/task-definitions/{family}/revisions/{revision}/deregister");
    let idem = idempotency(key, None, &op, &())?;
    let w = state.app.deregister_task_definition(&principal, &family, revision, if_match, idem.as_ref()).await?;
    Ok(written(StatusCode::OK, w))
}

/// Delete an INACTIVE revision that no running task uses.
#[utoipa::path(delete, path = "/v1/task-definitions/{family}/revisions/{revision}", tag = "task-definitions", operation_id = "delete_task_definition",
    params(("family" = String, Path, description = "Family name"), ("revision" = i64, Path, description = "Revision number"), MutationHeaders),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such revision", body = ErrorBody),
        (status = 409, description = "The revision is ACTIVE or in use", body = ErrorBody),
        (status = 412, description = "If-Match does not match the revision's version", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path((family, revision)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, AppError> {
    let revision = parse_revision(&family, &revision)?;
    let op = format!("DELETE /v1/task-definitions/{family}/revisions/{revision}");
    let idem = idempotency(key, None, &op, &())?;
    let w = state.app.delete_task_definition(&principal, &family, revision, if_match, idem.as_ref()).await?;
    Ok(written_empty(w))
}

/// A revision that is not a positive number cannot exist.
fn parse_revision(family: &str, revision: &str) -> Result<i64, AppError> {
    revision
        .parse::<i64>()
        .ok()
        .filter(|r| *r > 0)
        .ok_or_else(|| AppError::not_found("task definition", format!("{family}:{revision}")))
}
