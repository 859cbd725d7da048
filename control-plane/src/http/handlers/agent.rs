//! `/v1/agent`: the host agents' endpoints. Registration takes a
//! registration token; everything else takes the host's own credential and
//! reaches only that host. (The agent protocol proper is the placement and
//! agents issue's.)

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_api::ErrorBody;
use berth_api::auth::{HostIdentity, RegisterHostRequest, RegisteredHost};

use crate::app::AppError;
use crate::auth::HostPrincipal;
use crate::http::AppState;
use crate::http::extract::ApiJson;

/// Exchange a registration token for a host id and a host credential.
#[utoipa::path(post, path = "/v1/agent/register", tag = "agent", operation_id = "register_host",
    request_body = RegisterHostRequest,
    responses(
        (status = 201, description = "The host's identity and credential", body = RegisteredHost),
        (status = 403, description = "The token is unknown, revoked, expired or used up", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterHostRequest>,
) -> Result<Response, AppError> {
    Ok((StatusCode::CREATED, axum::Json(state.app.register_host(req).await?)).into_response())
}

/// The host's own identity, as the control plane knows it.
#[utoipa::path(get, path = "/v1/agent/hosts/{host}", tag = "agent", operation_id = "get_host_identity",
    params(("host" = String, Path, description = "The host's id; must be the credential's own")),
    responses(
        (status = 200, description = "The host", body = HostIdentity),
        (status = 403, description = "Not this host's credential", body = ErrorBody),
    ))]
pub async fn identity(
    State(state): State<AppState>,
    axum::Extension(host): axum::Extension<HostPrincipal>,
    Path(host_ref): Path<String>,
) -> Result<axum::Json<HostIdentity>, AppError> {
    Ok(axum::Json(state.app.host_identity(&host, &host_ref).await?))
}

/// Heartbeat: the host is alive; here is what it runs. The answer names the
/// tasks the control plane has given up on.
#[utoipa::path(post, path = "/v1/agent/hosts/{host}/heartbeat", tag = "agent", operation_id = "heartbeat",
    params(("host" = String, Path, description = "The host's id; must be the credential's own")),
    request_body = berth_api::agent::HeartbeatRequest,
    responses(
        (status = 200, description = "Acknowledged", body = berth_api::agent::HeartbeatResponse),
        (status = 403, description = "Not this host's credential, or the host is deregistered", body = ErrorBody),
    ))]
pub async fn heartbeat(
    State(state): State<AppState>,
    axum::Extension(host): axum::Extension<HostPrincipal>,
    Path(host_ref): Path<String>,
    crate::http::extract::OptionalJson(req): crate::http::extract::OptionalJson<berth_api::agent::HeartbeatRequest>,
) -> Result<axum::Json<berth_api::agent::HeartbeatResponse>, AppError> {
    Ok(axum::Json(state.app.heartbeat(&host, &host_ref, req).await?))
}

/// The host's desired-state changes after a cursor (long-poll).
#[utoipa::path(get, path = "/v1/agent/hosts/{host}/assignments", tag = "agent", operation_id = "list_assignments",
    params(("host" = String, Path, description = "The host's id; must be the credential's own"), berth_api::agent::AssignmentsQuery),
    responses(
        (status = 200, description = "Changes after the cursor, oldest first (empty after the wait)", body = berth_api::agent::AssignmentsResponse),
        (status = 403, description = "Not this host's credential", body = ErrorBody),
        (status = 422, description = "`ack` is past the stream's end", body = ErrorBody),
    ))]
pub async fn assignments(
    State(state): State<AppState>,
    axum::Extension(host): axum::Extension<HostPrincipal>,
    Path(host_ref): Path<String>,
    crate::http::extract::ApiQuery(q): crate::http::extract::ApiQuery<berth_api::agent::AssignmentsQuery>,
) -> Result<axum::Json<berth_api::agent::AssignmentsResponse>, AppError> {
    Ok(axum::Json(state.app.assignments(&host, &host_ref, q.after, q.ack, q.wait).await?))
}

/// Acknowledge every change up to a cursor.
#[utoipa::path(post, path = "/v1/agent/hosts/{host}/assignments/ack", tag = "agent", operation_id = "ack_assignments",
    params(("host" = String, Path, description = "The host's id; must be the credential's own")),
    request_body = berth_api::agent::AckRequest,
    responses(
        (status = 204, description = "Acknowledged"),
        (status = 422, description = "The cursor is past the stream's end", body = ErrorBody),
    ))]
pub async fn ack(
    State(state): State<AppState>,
    axum::Extension(host): axum::Extension<HostPrincipal>,
    Path(host_ref): Path<String>,
    ApiJson(req): ApiJson<berth_api::agent::AckRequest>,
) -> Result<StatusCode, AppError> {
    state.app.ack_assignments(&host, &host_ref, req.cursor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Report a task's (and its containers') state; stale reports change nothing.
#[utoipa::path(post, path = "/v1/agent/hosts/{host}/tasks/{task}/status", tag = "agent", operation_id = "report_task_status",
    params(("host" = String, Path, description = "The host's id; must be the credential's own"), ("task" = String, Path, description = "Task id")),
    request_body = berth_api::agent::TaskStatusReport,
    responses(
        (status = 200, description = "Applied, or ignored as stale", body = berth_api::agent::TaskStatusReportResponse),
        (status = 404, description = "No such task on this host", body = ErrorBody),
        (status = 409, description = "An illegal transition", body = ErrorBody),
    ))]
pub async fn report(
    State(state): State<AppState>,
    axum::Extension(host): axum::Extension<HostPrincipal>,
    Path((host_ref, task)): Path<(String, String)>,
    ApiJson(req): ApiJson<berth_api::agent::TaskStatusReport>,
) -> Result<axum::Json<berth_api::agent::TaskStatusReportResponse>, AppError> {
    Ok(axum::Json(state.app.report_task_status(&host, &host_ref, &task, req).await?))
}

/// Report several tasks' states in one request (one transaction); each
/// report is judged as if sent alone, and gets its own result or error.
#[utoipa::path(post, path = "/v1/agent/hosts/{host}/tasks/status", tag = "agent", operation_id = "report_task_statuses",
    params(("host" = String, Path, description = "The host's id; must be the credential's own")),
    request_body = berth_api::agent::TaskStatusReportBatch,
    responses(
        (status = 200, description = "One result per report, in order", body = berth_api::agent::TaskStatusReportBatchResponse),
        (status = 422, description = "More than 1000 reports", body = ErrorBody),
    ))]
pub async fn report_batch(
    State(state): State<AppState>,
    axum::Extension(host): axum::Extension<HostPrincipal>,
    Path(host_ref): Path<String>,
    ApiJson(req): ApiJson<berth_api::agent::TaskStatusReportBatch>,
) -> Result<axum::Json<berth_api::agent::TaskStatusReportBatchResponse>, AppError> {
    let results = state.app.report_task_statuses(&host, &host_ref, req).await?;
    let results = results
        .into_iter()
        .map(|(task_id, outcome)| match outcome {
            Ok(r) => berth_api::agent::TaskStatusReportResult { task_id, applied: Some(r), error: None, message: None },
            Err(e) => berth_api::agent::TaskStatusReportResult {
                task_id,
                applied: None,
                error: Some(crate::http::error::code_of(&e).0),
                message: Some(e.to_string()),
            },
        })
        .collect();
    Ok(axum::Json(berth_api::agent::TaskStatusReportBatchResponse { results }))
}
