//! Reading the account's event log.

use berth_api::MAX_PAGE_SIZE;
use berth_api::events::{Event, ListEventsQuery, ListEventsResponse};

use super::{App, AppError, AppResult};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::store;

impl App {
    /// Events after the cursor, oldest first.
    pub async fn list_events(&self, principal: &Principal, query: &ListEventsQuery) -> AppResult<ListEventsResponse> {
        authorize(principal, Action::ReadEvents, None)?;
        let after = query.after.unwrap_or(0);
        if after < 0 {
            return Err(AppError::bad_request(Some("after"), "after must be a sequence number >= 0"));
        }
        let limit = query.limit.unwrap_or(MAX_PAGE_SIZE);
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(AppError::bad_request(Some("limit"), format!("limit must be between 1 and {MAX_PAGE_SIZE}")));
        }
        let types: Vec<String> = query
            .types
            .as_deref()
            .map(|t| t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut tx = self.db().begin_read().await?;
        let rows = store::events::list(&mut tx, principal.scope(), after, &types, u64::from(limit)).await?;
        tx.rollback().await?;
        let cursor = rows.last().map_or(after, |r| r.sequence);
        let events = rows
            .into_iter()
            .map(|r| Event {
                sequence: r.sequence,
                event_type: r.event_type,
                resource_id: r.resource_id,
                time: r.created_at,
                detail: r.detail.0,
            })
            .collect();
        Ok(ListEventsResponse { events, cursor })
    }
}
