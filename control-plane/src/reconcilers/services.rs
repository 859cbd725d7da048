//! The service scheduler's loop. Every replica runs it; each service is
//! reconciled by exactly one replica at a time, the holder of its lease (a
//! row-level claim renewed on every round, see `store::services::claim_leases`).
//! A replica that dies stops renewing; once its leases expire another replica
//! claims them and carries on, mid-deployment included, from the state in
//! the database. Nothing is remembered in memory between rounds.
//!
//! Rounds run every `interval`, and at once when a transaction wakes
//! [`WAKE_KEY`] (a service changed, one of its tasks changed state, a host
//! was lost or drained): on PostgreSQL the wake-up reaches every replica
//! through `NOTIFY`.

use std::time::Duration;

use crate::app::App;

/// The wake-up key for service-relevant changes (see `store::wakeups`).
pub const WAKE_KEY: uuid::Uuid = uuid::Uuid::from_u128(0x5e21_11ce_0000_4000_8000_0000_0000_0001);

/// A burst of wake-ups (a rollout's many reports) makes one round, not one each.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Runs until the task is aborted.
pub async fn run_forever(app: App) {
    let interval = app.service_scheduler_settings().interval;
    loop {
        let subscription = app.db().wakeups().subscribe(WAKE_KEY);
        let deadline = tokio::time::Instant::now() + interval;
        let woken = subscription.notified();
        tokio::pin!(woken);
        // Registered before the round: a change committed during it triggers the next one at once.
        woken.as_mut().enable();
        reconcile_round(&app).await;
        tokio::select! {
            _ = woken => tokio::time::sleep(DEBOUNCE).await,
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// One round: claim leases, reconcile each service this replica holds.
pub async fn reconcile_round(app: &App) {
    let held = match app.claim_service_leases().await {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(error = %e, "could not claim service leases");
            return;
        }
    };
    for (scope, service) in held {
        match app.reconcile_service(scope, service).await {
            Ok(o) if o.started > 0 || o.stopped > 0 => {
                tracing::info!(%service, started = o.started, stopped = o.stopped, "reconciled service")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%service, error = %e, "reconciling a service failed; retrying next round"),
        }
    }
}
