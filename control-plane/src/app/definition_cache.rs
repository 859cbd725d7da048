//! Task definitions by id, kept in memory for the agents' assignment polls.
//!
//! A revision never changes once registered (deregistering it changes its
//! status, which a poll does not read), so a cached copy cannot go stale and
//! every replica may keep its own. Without it, every assignment poll that
//! found work read the definition again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use berth_api::task_definitions::RegisterTaskDefinitionRequest;

use super::{AppError, AppResult};
use crate::store::{self, AccountScope};

/// Enough for every revision a busy control plane runs at once; past it the
/// cache starts over rather than tracking recency.
const CAPACITY: usize = 4096;

#[derive(Default)]
pub(crate) struct DefinitionCache {
    by_id: Mutex<HashMap<(AccountScope, uuid::Uuid), Arc<RegisterTaskDefinitionRequest>>>,
}

impl DefinitionCache {
    /// The account's revision `id`, read from the store on a miss.
    pub async fn get(
        &self,
        reader: &mut impl store::Reader,
        scope: AccountScope,
        id: uuid::Uuid,
    ) -> AppResult<Arc<RegisterTaskDefinitionRequest>> {
        let key = (scope, id);
        if let Some(hit) = self.by_id.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(hit.clone());
        }
        let row = store::task_definitions::get_by_id(reader, scope, berth_api::TaskDefinitionId(id))
            .await?
            .ok_or_else(|| AppError::Internal(format!("task definition {id} is missing")))?;
        let definition = Arc::new(row.definition.0);
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        if by_id.len() >= CAPACITY {
            by_id.clear();
        }
        by_id.insert(key, definition.clone());
        Ok(definition)
    }
}
