//! The app layer: what each API operation means, independent of HTTP.
//! Handlers call one function here; functions here call the store.

pub mod access_keys;
pub mod accounts;
pub mod agent;
pub mod audit;
pub mod capacity;
pub mod clusters;
mod definition_cache;
mod error;
pub mod events;
pub mod hosts;
pub mod lifecycle;
pub mod logs;
pub mod paging;
pub mod placement;
pub mod quotas;
pub mod rate_limits;
pub mod registration;
pub mod registry_credentials;
pub mod run_task_batches;
pub mod service_scheduler;
pub mod services;
pub mod sessions;
pub mod task_definitions;
pub mod tasks;
pub mod validate;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub use error::{AppError, AppResult};

use crate::auth::AuthConfig;
use crate::store::idempotency::{self, Claim};
use crate::store::{self, AccountScope, Db, Tx};

/// Limits on what a request may contain.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Largest task definition (its JSON) in bytes.
    pub max_task_definition_bytes: usize,
    /// Most containers in one task definition.
    pub max_containers_per_task_definition: usize,
    /// How long a request may run before it is abandoned (event streams excepted).
    pub request_timeout: std::time::Duration,
    /// Expensive calls (RunTask, placement simulation) one account may have in flight per replica.
    pub expensive_calls_per_account: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_task_definition_bytes: 64 << 10,
            max_containers_per_task_definition: 10,
            request_timeout: std::time::Duration::from_secs(60),
            expensive_calls_per_account: 16,
        }
    }
}

/// Shared application state: cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    limits: Limits,
    auth: AuthConfig,
    agent: agent::AgentSettings,
    quotas: quotas::QuotaDefaults,
    rate_limiter: Option<Arc<crate::ratelimit::RateLimiter>>,
    expensive_calls: crate::ratelimit::ConcurrencyCaps,
    /// This process's id among the replicas sharing the database.
    replica_id: uuid::Uuid,
    /// When each key's last use was last written, to write it at most once a minute.
    key_use: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, std::time::Instant>>,
    /// Set when the server starts shutting down: long-lived responses end.
    shutting_down: tokio::sync::watch::Sender<bool>,
    /// RunTask calls waiting for their cluster's next transaction.
    run_task_batches: run_task_batches::RunTaskBatches,
    /// Task definition revisions read by assignment polls (they never change).
    definitions: definition_cache::DefinitionCache,
}

/// A client's idempotency key together with a fingerprint of the request it
/// was sent with.
#[derive(Clone, Debug)]
pub struct IdempotencyRequest {
    pub key: String,
    pub request_hash: String,
    /// The response carries a secret: keep it encrypted under the master key.
    pub sensitive: bool,
}

impl IdempotencyRequest {
    /// `operation` names the call and its target (`POST /v1/clusters/x/tasks`),
    /// so one key reused for another call is refused rather than replayed.
    pub fn new<B: Serialize>(key: String, operation: &str, body: &B) -> AppResult<Self> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AppError::bad_request(
                Some("idempotency_key"),
                "an idempotency key is 1-255 visible ASCII characters",
            ));
        }
        let mut hash = Sha256::new();
        hash.update(operation.as_bytes());
        hash.update([0]);
        hash.update(serde_json::to_vec(body).map_err(|e| AppError::Internal(e.to_string()))?);
        Ok(Self { key, request_hash: hex::encode(hash.finalize()), sensitive: false })
    }

    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
}

/// Runs a write again while it loses races ([`AppError::Contention`]):
/// each attempt reads fresh state in a new transaction. After `attempts`
/// the caller gets `exhausted()`.
pub(crate) async fn retry_on_contention<T, F, Fut>(
    attempts: usize,
    exhausted: impl FnOnce() -> AppError,
    mut attempt: F,
) -> AppResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = AppResult<T>>,
{
    for _ in 0..attempts {
        match attempt().await {
            Err(AppError::Contention) => continue,
            other => return other,
        }
    }
    Err(exhausted())
}

/// The result of a write, and whether it was replayed from an earlier
/// request with the same idempotency key.
#[derive(Debug)]
pub struct Written<T> {
    pub value: T,
    pub replayed: bool,
}

impl App {
    pub fn new(db: Db, limits: Limits, auth: AuthConfig) -> Self {
        Self::with_settings(db, limits, auth, Default::default(), Default::default(), None)
    }

    pub fn with_settings(
        db: Db,
        limits: Limits,
        auth: AuthConfig,
        agent: agent::AgentSettings,
        quotas: quotas::QuotaDefaults,
        rate_limits: Option<crate::ratelimit::RateLimitSettings>,
    ) -> Self {
        let expensive_calls = crate::ratelimit::ConcurrencyCaps::new(limits.expensive_calls_per_account);
        Self {
            inner: Arc::new(Inner {
                db,
                limits,
                auth,
                agent,
                quotas,
                rate_limiter: rate_limits.map(|s| Arc::new(crate::ratelimit::RateLimiter::new(s))),
                expensive_calls,
                replica_id: uuid::Uuid::now_v7(),
                key_use: Default::default(),
                shutting_down: tokio::sync::watch::Sender::new(false),
                run_task_batches: Default::default(),
                definitions: Default::default(),
            }),
        }
    }

    /// The rate limiter, unless rate limiting is off.
    pub fn rate_limiter(&self) -> Option<&crate::ratelimit::RateLimiter> {
        self.inner.rate_limiter.as_deref()
    }

    /// A slot for an expensive call, or `TooManyConcurrent` when the account has them all in use.
    pub fn expensive_call(&self, account: berth_api::AccountId) -> AppResult<tokio::sync::OwnedSemaphorePermit> {
        self.inner
            .expensive_calls
            .try_acquire(account)
            .ok_or(AppError::TooManyConcurrent(self.inner.expensive_calls.limit()))
    }

    /// Ends long-lived responses (event streams), so a graceful shutdown
    /// does not wait for clients that would never hang up.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.send_replace(true);
    }

    /// Resolves once the server is shutting down.
    pub fn shutting_down(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.shutting_down.subscribe()
    }

    pub fn replica_id(&self) -> uuid::Uuid {
        self.inner.replica_id
    }

    pub fn auth(&self) -> &AuthConfig {
        &self.inner.auth
    }

    /// Records an access key's use (time and source address) in the
    /// background, at most once a minute per key per replica.
    pub(crate) fn note_key_use(&self, key: uuid::Uuid, ip: Option<String>) {
        let now = std::time::Instant::now();
        {
            let Ok(mut seen) = self.inner.key_use.lock() else { return };
            if seen.get(&key).is_some_and(|t| now.duration_since(*t) < std::time::Duration::from_secs(60)) {
                return;
            }
            seen.insert(key, now);
        }
        let db = self.inner.db.clone();
        tokio::spawn(async move {
            let result = async {
                let mut tx = db.begin_write().await?;
                store::access_keys::touch(&mut tx, key, store::now(), ip.as_deref()).await?;
                tx.commit().await
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not record an access key's last use");
            }
        });
    }

    pub(crate) fn definitions(&self) -> &definition_cache::DefinitionCache {
        &self.inner.definitions
    }

    pub(crate) fn run_task_batches(&self) -> &run_task_batches::RunTaskBatches {
        &self.inner.run_task_batches
    }

    /// How this replica's RunTask calls were grouped into transactions.
    pub fn run_task_batch_stats(&self) -> run_task_batches::BatchStats {
        self.inner.run_task_batches.stats()
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Runs `work` in one write transaction. With an idempotency key, the key
    /// is claimed first and the result stored in the same transaction, so a
    /// retry either replays the committed result or, if the first attempt
    /// never committed, runs again: never both, never twice.
    pub(crate) async fn write<T, F>(
        &self,
        scope: AccountScope,
        idem: Option<&IdempotencyRequest>,
        work: F,
    ) -> AppResult<Written<T>>
    where
        T: Serialize + DeserializeOwned + Send,
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, AppResult<T>> + Send,
    {
        let mut tx = self.db().begin_write().await?;
        if let Some(replayed) = self.replay_or_claim(&mut tx, scope, idem).await? {
            tx.rollback().await?;
            return Ok(replayed);
        }
        let value = work(&mut tx).await?;
        self.record_result(&mut tx, scope, idem, &value).await?;
        tx.commit().await?;
        Ok(Written { value, replayed: false })
    }

    /// The start of an idempotent write, inside its transaction: the result
    /// committed earlier under this key (to replay), or `None` once the key
    /// is claimed for this transaction (or there is no key).
    pub(crate) async fn replay_or_claim<T: DeserializeOwned>(
        &self,
        tx: &mut Tx,
        scope: AccountScope,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Option<Written<T>>> {
        let Some(idem) = idem else { return Ok(None) };
        match idempotency::claim(tx, scope, &idem.key, &idem.request_hash, store::now()).await? {
            Claim::Claimed => Ok(None),
            Claim::Existing(row) => {
                if row.request_hash != idem.request_hash {
                    return Err(AppError::IdempotencyKeyReused);
                }
                let body = if idem.sensitive { self.open_sealed(&row.response_body.0)? } else { row.response_body.0 };
                let value = serde_json::from_value(body)
                    .map_err(|e| AppError::Internal(format!("stored idempotent response unreadable: {e}")))?;
                Ok(Some(Written { value, replayed: true }))
            }
        }
    }

    /// The end of an idempotent write: the result, stored under the claimed
    /// key in the same transaction.
    pub(crate) async fn record_result<T: Serialize>(
        &self,
        tx: &mut Tx,
        scope: AccountScope,
        idem: Option<&IdempotencyRequest>,
        value: &T,
    ) -> AppResult<()> {
        let Some(idem) = idem else { return Ok(()) };
        let mut body = serde_json::to_value(value).map_err(|e| AppError::Internal(e.to_string()))?;
        if idem.sensitive {
            let (master_key_id, ciphertext) = self.auth().keyring.encrypt(body.to_string().as_bytes());
            body = serde_json::json!({"sealed": ciphertext, "master_key_id": master_key_id});
        }
        idempotency::complete(tx, scope, &idem.key, 200, body).await?;
        Ok(())
    }
}

impl App {
    fn open_sealed(&self, sealed: &serde_json::Value) -> AppResult<serde_json::Value> {
        let (Some(ct), Some(kid)) = (sealed["sealed"].as_str(), sealed["master_key_id"].as_str()) else {
            return Err(AppError::Internal("sealed idempotent response malformed".into()));
        };
        let plain = self.auth().keyring.decrypt(kid, ct).map_err(|e| AppError::Internal(e.to_string()))?;
        serde_json::from_slice(&plain).map_err(|e| AppError::Internal(e.to_string()))
    }
}

/// Maps an expected-version check: `If-Match` absent means "whatever is there".
pub(crate) fn check_version(kind: &'static str, if_match: Option<i64>, current: i64) -> AppResult<()> {
    match if_match {
        Some(expected) if expected != current => Err(AppError::PreconditionFailed { kind, expected, current }),
        _ => Ok(()),
    }
}
