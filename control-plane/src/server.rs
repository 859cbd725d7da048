//! Running the control plane: connect, migrate, serve, shut down cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::App;
use crate::auth::AuthConfig;
use crate::auth::session::Sessions;
use crate::config::ServerConfig;
use crate::http::AppState;
use crate::store::{self, Db, PoolOptions};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
    #[error("{0}")]
    Startup(String),
}

/// Connects to the database and applies migrations (refusing a newer schema).
pub async fn open_database(config: &ServerConfig) -> Result<Db, ServerError> {
    let db = Db::connect(
        &config.database_url,
        &PoolOptions { max_connections: config.db_max_connections, ..PoolOptions::default() },
    )
    .await?;
    store::migrate::run(&db).await?;
    Ok(db)
}

/// Builds the app over an open database: re-encrypts secrets stored under an
/// older master key and loads the session-signing keys.
pub async fn build_app(db: Db, config: &ServerConfig) -> Result<App, ServerError> {
    let keyring = Arc::new(config.auth.keyring.clone());
    let auth = AuthConfig {
        region: config.auth.region.clone(),
        sessions: Sessions::new(config.auth.sessions.clone(), keyring.clone()),
        keyring,
    };
    let app = App::with_settings(
        db,
        config.limits.clone(),
        auth,
        config.agent.clone(),
        config.quotas.clone(),
        config.rate_limits.clone(),
    );
    let reencrypted = app.reencrypt_secrets().await.map_err(|e| ServerError::Startup(e.to_string()))?;
    if reencrypted > 0 {
        tracing::info!(count = reencrypted, "re-encrypted stored secrets under the current master key");
    }
    app.auth().sessions.refresh(app.db()).await.map_err(|e| ServerError::Startup(e.to_string()))?;
    Ok(app)
}

pub fn app_state(app: App, config: &ServerConfig) -> AppState {
    let _ = config;
    AppState { app }
}

/// A bound, not yet serving, control plane.
pub struct BoundServer {
    listener: TcpListener,
    state: AppState,
}

impl BoundServer {
    pub async fn bind(app: App, config: &ServerConfig) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        Ok(Self { listener, state: app_state(app, config) })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(ServerError::Serve)
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    /// Also runs this replica's background loops (host liveness, the event
    /// sequencer, the service scheduler).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
        let app = self.state.app.clone();
        // Count this replica in before the first request, so its share of the limits is right.
        if let Err(e) = app.refresh_rate_limits().await {
            tracing::warn!(error = %e, "could not record this replica for rate limiting");
        }
        let sweeper = tokio::spawn(sweep_hosts_forever(app.clone()));
        let sequencer = {
            let app = app.clone();
            tokio::spawn(async move { app.sequence_events_forever().await })
        };
        let services = tokio::spawn(crate::reconcilers::services::run_forever(app.clone()));
        let limits = {
            let app = app.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                    if let Err(e) = app.refresh_rate_limits().await {
                        tracing::warn!(error = %e, "could not refresh rate limits");
                    }
                }
            })
        };
        let shutdown = {
            let app = app.clone();
            async move {
                shutdown.await;
                app.begin_shutdown();
            }
        };
        let router = crate::http::router(self.state);
        let result = axum::serve(self.listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServerError::Serve);
        sweeper.abort();
        sequencer.abort();
        limits.abort();
        services.abort();
        match app.release_service_leases().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(services = n, "handed this replica's services over"),
            Err(e) => tracing::warn!(error = %e, "could not release service leases; they expire on their own"),
        }
        if let Err(e) = app.leave_replicas().await {
            tracing::warn!(error = %e, "could not remove this replica from the rate-limit shares");
        }
        result
    }
}

/// How often each replica deletes records past their retention.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
/// How often each replica recounts quota usage from the rows (docs/quotas.md).
const RECOUNT_QUOTAS_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Once per heartbeat interval: notices hosts that stopped heartbeating, and
/// places queued tasks where capacity appeared; every ten minutes, purges
/// what outlived its retention. Every replica runs it; the
/// store's conditional updates make each change happen once.
async fn sweep_hosts_forever(app: App) {
    let every = app.agent_settings().heartbeat_interval;
    // Run the first purge soon after start, then every PURGE_EVERY.
    let mut last_purge = tokio::time::Instant::now() - PURGE_EVERY;
    let mut last_recount = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match app.sweep_hosts().await {
            Ok((0, 0)) => {}
            Ok((disconnected, lost)) => tracing::info!(disconnected, lost, "hosts stopped heartbeating"),
            Err(e) => tracing::warn!(error = %e, "host liveness sweep failed"),
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = tokio::time::Instant::now();
            match app.purge_expired().await {
                Ok(p) if p == crate::app::agent::Purged::default() => {}
                Ok(p) => tracing::info!(
                    tasks = p.tasks,
                    events = p.events,
                    idempotency_records = p.idempotency_records,
                    "purged expired records"
                ),
                Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
            }
        }
        if last_recount.elapsed() >= RECOUNT_QUOTAS_EVERY {
            last_recount = tokio::time::Instant::now();
            // Drift is logged and counted inside; nothing more to do here.
            if let Err(e) = app.recount_quotas().await {
                tracing::warn!(error = %e, "recounting quota usage failed");
            }
        }
        // Capacity may have appeared (a host joined, a task stopped): place what waits for it.
        match app.place_queued().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(placed = n, "placed queued tasks"),
            Err(e) => tracing::warn!(error = %e, "placing queued tasks failed"),
        }
    }
}
