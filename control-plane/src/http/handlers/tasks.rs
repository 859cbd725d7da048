//! `/v1/clusters/{cluster}/tasks`

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use berth_api::ErrorBody;
use berth_api::tasks::{
    ListTasksQuery, ListTasksResponse, RunTaskRequest, RunTaskResponse, StopTaskRequest, Task, TaskLogsQuery,
};

use super::{MutationHeaders, idempotency};
use crate::app::AppError;
use crate::auth::Principal;
use crate::http::extract::{ApiJson, ApiQuery, IdempotencyKey, IfMatch, OptionalJson};
use crate::http::{AppState, resource, written};

/// Run tasks from a task definition.
#[utoipa::path(post, path = "/v1/clusters/{cluster}/tasks", tag = "tasks", operation_id = "run_task",
    params(("cluster" = String, Path, description = "Cluster name or id"), MutationHeaders),
    request_body = RunTaskRequest,
    responses(
        (status = 201, description = "The tasks started, and failures for those that could not be", body = RunTaskResponse),
        (status = 404, description = "No such cluster or task definition", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
pub async fn run(
    State(state): State<AppState>,
    principal: Principal,
    Path(cluster): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<RunTaskRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, req.client_token.as_deref(), &format!("POST /v1/clusters/{cluster}/tasks"), &req)?;
    let w = state.app.run_task(&principal, &cluster, req, idem.as_ref()).await?;
    Ok(super::created_json(w))
}

/// List a cluster's tasks, oldest first, with optional filters.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/tasks", tag = "tasks", operation_id = "list_tasks",
    params(("cluster" = String, Path, description = "Cluster name or id"), ListTasksQuery),
    responses(
        (status = 200, description = "A page of tasks", body = ListTasksResponse),
        (status = 400, description = "Bad filter or paging parameters", body = ErrorBody),
        (status = 404, description = "No such cluster", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(cluster): Path<String>,
    ApiQuery(query): ApiQuery<ListTasksQuery>,
) -> Result<axum::Json<ListTasksResponse>, AppError> {
    Ok(axum::Json(state.app.list_tasks(&principal, &cluster, &query).await?))
}

/// Get a task.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/tasks/{task}", tag = "tasks", operation_id = "get_task",
    params(("cluster" = String, Path, description = "Cluster name or id"), ("task" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task; its ETag is its version", body = Task),
        (status = 404, description = "No such cluster or task", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path((cluster, task)): Path<(String, String)>,
) -> Result<Response, AppError> {
    Ok(resource(StatusCode::OK, &state.app.get_task(&principal, &cluster, &task).await?))
}

/// Stop a task. Stopping a stopped task changes nothing.
#[utoipa::path(post, path = "/v1/clusters/{cluster}/tasks/{task}/stop", tag = "tasks", operation_id = "stop_task",
    params(("cluster" = String, Path, description = "Cluster name or id"), ("task" = String, Path, description = "Task id"), MutationHeaders),
    request_body(content = Option<StopTaskRequest>, description = "Optional: the reason to record"),
    responses(
        (status = 200, description = "The task", body = Task),
        (status = 404, description = "No such cluster or task", body = ErrorBody),
        (status = 412, description = "If-Match does not match the task's version", body = ErrorBody),
    ))]
pub async fn stop(
    State(state): State<AppState>,
    principal: Principal,
    Path((cluster, task)): Path<(String, String)>,
    IfMatch(if_match): IfMatch,
    IdempotencyKey(key): IdempotencyKey,
    OptionalJson(req): OptionalJson<StopTaskRequest>,
) -> Result<Response, AppError> {
    let idem = idempotency(key, None, &format!("POST /v1/clusters/{cluster}/tasks/{task}/stop"), &req)?;
    let w = state.app.stop_task(&principal, &cluster, &task, req, if_match, idem.as_ref()).await?;
    Ok(written(StatusCode::OK, w))
}

/// Read a task's container logs (stdout and stderr) from its host, as text.
/// Logs stay readable after the task stops, for the host's retention.
#[utoipa::path(get, path = "/v1/clusters/{cluster}/tasks/{task}/logs", tag = "tasks", operation_id = "get_task_logs",
    params(("cluster" = String, Path, description = "Cluster name or id"), ("task" = String, Path, description = "Task id"),
           TaskLogsQuery),
    responses(
        (status = 200, description = "The lines, oldest first; with follow, new lines as they are written", body = String, content_type = "text/plain"),
        (status = 404, description = "No such cluster, task or container, or the task never reached a host", body = ErrorBody),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
        (status = 503, description = "The task's host cannot be reached", body = ErrorBody),
    ))]
pub async fn logs(
    State(state): State<AppState>,
    principal: Principal,
    Path((cluster, task)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<TaskLogsQuery>,
) -> Result<Response, AppError> {
    let upstream = state.app.task_logs(&principal, &cluster, &task, &query).await?;
    let body = axum::body::Body::from_stream(upstream.bytes_stream());
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}
