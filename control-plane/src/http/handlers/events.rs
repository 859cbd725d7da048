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

/// Server-sent events: the account's log as it grows, resuming exactly from a
/// cursor (`after`, or the `Last-Event-ID` a reconnecting client sends). Each
/// event's `id` is its sequence number.
#[utoipa::path(get, path = "/v1/events/stream", tag = "events", operation_id = "stream_events",
    params(berth_api::events::StreamEventsQuery),
    responses(
        (status = 200, description = "A text/event-stream of events", content_type = "text/event-stream"),
        (status = 400, description = "Bad parameters", body = ErrorBody),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    principal: Principal,
    headers: axum::http::HeaderMap,
    ApiQuery(query): ApiQuery<berth_api::events::StreamEventsQuery>,
) -> Result<axum::response::Response, AppError> {
    use axum::response::IntoResponse as _;
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| AppError::bad_request(Some("last_event_id"), "Last-Event-ID must be a sequence number"))
        })
        .transpose()?;
    let start = match last_event_id.or(query.after) {
        Some(after) => after,
        None => state.app.latest_event(&principal).await?,
    };
    let app = state.app.clone();
    let types = query.types.clone();
    let events = futures::stream::unfold(
        (start, Vec::new()),
        move |(cursor, mut pending): (i64, Vec<berth_api::events::Event>)| {
            let (app, principal, types) = (app.clone(), principal.clone(), types.clone());
            async move {
                loop {
                    if let Some(e) = (!pending.is_empty()).then(|| pending.remove(0)) {
                        let next = e.sequence;
                        let data = serde_json::to_string(&e).unwrap_or_default();
                        let sse = SseEvent::default().id(next.to_string()).event(e.event_type.clone()).data(data);
                        return Some((Ok::<_, std::convert::Infallible>(sse), (next, pending)));
                    }
                    let q =
                        ListEventsQuery { after: Some(cursor), types: types.clone(), limit: Some(100), wait: Some(25) };
                    let mut down = app.shutting_down();
                    let page = tokio::select! {
                        page = app.list_events(&principal, &q) => page,
                        // The server is stopping: end the stream, so its graceful shutdown need not wait.
                        _ = down.wait_for(|d| *d) => return None,
                    };
                    match page {
                        Ok(page) => pending = page.events,
                        // The stream ends; the client reconnects with Last-Event-ID.
                        Err(_) => return None,
                    }
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}
