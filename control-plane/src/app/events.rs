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
        let wait = query.wait.unwrap_or(0);
        if wait > 30 {
            return Err(AppError::bad_request(Some("wait"), "wait must be 0-30 seconds"));
        }
        let types = parse_types(query.types.as_deref());
        self.flush_events(principal.scope()).await?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(u64::from(wait));
        let read = || async {
            let mut tx = self.db().begin_read().await?;
            let rows = store::events::list(&mut tx, principal.scope(), after, &types, u64::from(limit)).await?;
            tx.rollback().await?;
            Ok::<_, AppError>((!rows.is_empty()).then_some(rows))
        };
        let rows = if wait == 0 {
            read().await?
        } else {
            self.db().wakeups().subscribe(principal.scope().account_id().0).wait_until(deadline, read).await?
        }
        .unwrap_or_default();
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

pub(crate) fn parse_types(types: Option<&str>) -> Vec<String> {
    types
        .map(|t| t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

impl App {
    /// The newest sequence number of the account's log (where a live stream starts).
    pub async fn latest_event(&self, principal: &Principal) -> AppResult<i64> {
        authorize(principal, Action::ReadEvents, None)?;
        self.flush_events(principal.scope()).await?;
        let mut tx = self.db().begin_read().await?;
        let rows = store::events::latest(&mut tx, principal.scope()).await?;
        tx.rollback().await?;
        Ok(rows)
    }
}

/// Most outbox events one sequencer pass moves.
const SEQUENCE_BATCH: u64 = 1000;

impl App {
    /// Numbers every committed outbox event (see `store::events::sequence_pending`);
    /// returns how many. Any replica may run it at any time.
    pub async fn sequence_events(&self) -> AppResult<usize> {
        let mut total = 0;
        loop {
            let mut tx = self.db().begin_write().await?;
            let n = store::events::sequence_pending(&mut tx, SEQUENCE_BATCH).await?;
            tx.commit().await?;
            total += n;
            if (n as u64) < SEQUENCE_BATCH {
                return Ok(total);
            }
        }
    }

    /// Read-your-writes for the event log: a reader whose account has events
    /// still in the outbox numbers them before reading, rather than waiting
    /// for the background sequencer.
    async fn flush_events(&self, scope: crate::store::AccountScope) -> AppResult<()> {
        let mut tx = self.db().begin_read().await?;
        let pending = store::events::has_pending(&mut tx, scope).await?;
        tx.rollback().await?;
        if pending {
            self.sequence_events().await?;
        }
        Ok(())
    }

    /// The background sequencer: runs whenever a commit put events in the
    /// outbox (on any replica, through the wake-ups), and at least every second.
    pub async fn sequence_events_forever(&self) {
        loop {
            let subscription = self.db().wakeups().subscribe(store::events::SEQUENCER_KEY);
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
            let result = subscription
                .wait_until(deadline, || async {
                    let n = self.sequence_events().await?;
                    Ok::<_, AppError>((n > 0).then_some(()))
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "event sequencer pass failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}
