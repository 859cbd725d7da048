//! `/v1/audit-events`

use axum::extract::State;
use berth_api::ErrorBody;
use berth_api::auth::{ListAuditEventsQuery, ListAuditEventsResponse};

use crate::app::AppError;
use crate::auth::Principal;
use crate::http::AppState;
use crate::http::extract::ApiQuery;

/// The account's audit log, newest first (admin keys only).
#[utoipa::path(get, path = "/v1/audit-events", tag = "audit", operation_id = "list_audit_events",
    params(ListAuditEventsQuery),
    responses(
        (status = 200, description = "A page of audit events", body = ListAuditEventsResponse),
        (status = 403, description = "Only admin keys read the audit log", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListAuditEventsQuery>,
) -> Result<axum::Json<ListAuditEventsResponse>, AppError> {
    Ok(axum::Json(state.app.list_audit_events(&principal, &query).await?))
}
