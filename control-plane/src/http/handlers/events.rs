//! `/v1/events`

use axum::extract::State;
use berth_api::ErrorBody;
use berth_api::events::{ListEventsQuery, ListEventsResponse};

use crate::app::AppError;
use crate::auth::Principal;
use crate::http::AppState;
use crate::http::extract::ApiQuery;

/// Read the account's event log from a cursor.
#[utoipa::path(get, path = "/v1/events", tag = "events", operation_id = "list_events",
    params(ListEventsQuery),
    responses(
        (status = 200, description = "Events after the cursor, oldest first", body = ListEventsResponse),
        (status = 400, description = "Bad parameters", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListEventsQuery>,
) -> Result<axum::Json<ListEventsResponse>, AppError> {
    Ok(axum::Json(state.app.list_events(&principal, &query).await?))
}
