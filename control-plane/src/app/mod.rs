//! The app layer: what each API operation means, independent of HTTP.
//! Handlers call one function here; functions here call the store.

pub mod clusters;
mod error;
pub mod events;
pub mod lifecycle;
pub mod paging;
pub mod task_definitions;
pub mod tasks;
pub mod validate;

use std::sync::Arc;

use berth_api::AccountId;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub use error::{AppError, AppResult};

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
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: 1 << 20, max_task_definition_bytes: 64 << 10, max_containers_per_task_definition: 10 }
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
}

/// A client's idempotency key together with a fingerprint of the request it
/// was sent with.
#[derive(Clone, Debug)]
pub struct IdempotencyRequest {
    pub key: String,
    pub request_hash: String,
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
        Ok(Self { key, request_hash: hex::encode(hash.finalize()) })
    }
}

/// The result of a write, and whether it was replayed from an earlier
/// request with the same idempotency key.
#[derive(Debug)]
pub struct Written<T> {
    pub value: T,
    pub replayed: bool,
}

impl App {
    pub fn new(db: Db, limits: Limits) -> Self {
        Self { inner: Arc::new(Inner { db, limits }) }
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
        if let Some(idem) = idem {
            match idempotency::claim(&mut tx, scope, &idem.key, &idem.request_hash, store::now()).await? {
                Claim::Claimed => {}
                Claim::Existing(row) => {
                    tx.rollback().await?;
                    if row.request_hash != idem.request_hash {
                        return Err(AppError::IdempotencyKeyReused);
                    }
                    let value = serde_json::from_value(row.response_body.0)
                        .map_err(|e| AppError::Internal(format!("stored idempotent response unreadable: {e}")))?;
                    return Ok(Written { value, replayed: true });
                }
            }
        }
        let value = work(&mut tx).await?;
        if let Some(idem) = idem {
            let body = serde_json::to_value(&value).map_err(|e| AppError::Internal(e.to_string()))?;
            idempotency::complete(&mut tx, scope, &idem.key, 200, body).await?;
        }
        tx.commit().await?;
        Ok(Written { value, replayed: false })
    }

    /// Creates an account. Accounts are managed by the operator; until the
    /// authentication issue adds the API for it, `berth dev` and tests call this.
    pub async fn create_account(&self, name: &str) -> AppResult<AccountId> {
        validate::name("name", name)?;
        let mut tx = self.db().begin_write().await?;
        let id = AccountId::generate();
        match store::accounts::insert(&mut tx, id, name, store::now()).await {
            Ok(_) => {}
            Err(store::StoreError::UniqueViolation(_)) => {
                return Err(AppError::AlreadyExists { kind: "account", name: name.into(), field: "name" });
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Finds an account by name.
    pub async fn account_by_name(&self, name: &str) -> AppResult<Option<AccountId>> {
        let mut tx = self.db().begin_read().await?;
        let row = store::accounts::get_by_name(&mut tx, name).await?;
        tx.rollback().await?;
        Ok(row.map(|r| r.account_id()))
    }
}

/// Maps an expected-version check: `If-Match` absent means "whatever is there".
pub(crate) fn check_version(kind: &'static str, if_match: Option<i64>, current: i64) -> AppResult<()> {
    match if_match {
        Some(expected) if expected != current => Err(AppError::PreconditionFailed { kind, expected, current }),
        _ => Ok(()),
    }
}
