//! The account's event log, with new events arriving live.

use axum::extract::State;
use berth_api::events::{EVENT_TYPES, ListEventsQuery};
use maud::html;

use super::layout::{self, Page, when};
use super::{ROOT, Viewer};
use crate::http::AppState;

/// How many of the latest events the page starts with.
const SHOWN: i64 = 100;

pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Page {
    let latest = state.app.latest_event(&viewer.principal).await?;
    let query = ListEventsQuery { after: Some((latest - SHOWN).max(0)), types: None, limit: Some(100), wait: None };
    let mut events = state.app.list_events(&viewer.principal, &query).await?.events;
    events.reverse();
    Ok(layout::page(
        &viewer,
        "Events",
        html! {
            p id="events-status" role="status" aria-live="polite" class="muted" { "The latest " (SHOWN) " events, newest first." }
            div class="scroll" {
                table {
                    thead { tr { th { "#" } th { "Time" } th { "Type" } th { "Resource" } th { "Detail" } } }
                    tbody id="events" data-events=(format!("{ROOT}/events/stream?after={latest}"))
                        data-types=(EVENT_TYPES.join(",")) data-status="events-status" {
                        @for e in &events {
                            tr {
                                td { (e.sequence) }
                                td { (when(e.time)) }
                                td { code { (e.event_type) } }
                                td class="mono" { (e.resource_id) }
                                td class="mono" { (e.detail.to_string()) }
                            }
                        }
                    }
                }
            }
        },
    ))
}
