//! RunTask's group commit: the RunTask calls for one cluster that arrive at
//! this replica while it is writing share the next transaction.
//!
//! Every RunTask holds its cluster's placement lock from its first read to
//! its commit (see docs/placement.md), so one cluster's calls run one at a
//! time across all replicas. Paying for the lock, the read of the cluster's
//! hosts and the commit once per call held a cluster to about 30 calls a
//! second. Here one worker per cluster takes everything queued, locks once,
//! and runs each call in its own savepoint against a [`ClusterView`] that the
//! calls before it kept up to date. A call that fails (bad input, a quota, a
//! host changed by another replica) rolls back to its savepoint and gets its
//! own answer; the others commit together. Nobody is answered before the
//! commit, so every acknowledged RunTask is durable, and a batch whose commit
//! fails acknowledges nothing.
//!
//! Under light load a batch holds one call and costs what a lone
//! transaction did; under heavy load batches grow to [`MAX_BATCH`] calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use berth_api::AccountId;
use berth_api::tasks::{RunTaskRequest, RunTaskResponse};
use tokio::sync::oneshot;

use super::tasks::{ClusterView, run_in_tx};
use super::{App, AppError, AppResult, IdempotencyRequest, Written};
use crate::auth::Principal;
use crate::store::AccountScope;

/// Most calls in one transaction: bounds how long the cluster's lock is held.
const MAX_BATCH: usize = 64;

/// One RunTask call, validated as far as it can be without the database.
pub(crate) struct RunTaskCall {
    pub principal: Principal,
    pub cluster: String,
    pub family: String,
    pub revision: Option<i64>,
    pub req: RunTaskRequest,
    pub idem: Option<IdempotencyRequest>,
}

type Reply = oneshot::Sender<AppResult<Written<RunTaskResponse>>>;

/// A cluster's queue, keyed by its account and name.
type ClusterKey = (AccountId, String);

/// The calls waiting per cluster. A key is present while its worker runs.
#[derive(Default)]
pub(crate) struct RunTaskBatches {
    queues: Mutex<HashMap<ClusterKey, Vec<(RunTaskCall, Reply)>>>,
    calls_submitted: AtomicU64,
    batches_begun: AtomicU64,
}

/// How much batching this replica has done since it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchStats {
    /// RunTask calls queued for a batch (each attempt counts).
    pub calls_submitted: u64,
    /// Batch transactions begun.
    pub batches_begun: u64,
}

impl RunTaskBatches {
    /// Queues a call for its cluster's next batch (starting the cluster's
    /// worker if none runs) and waits for its answer.
    pub(crate) async fn submit(&self, app: &App, call: RunTaskCall) -> AppResult<Written<RunTaskResponse>> {
        let (reply, answer) = oneshot::channel();
        self.calls_submitted.fetch_add(1, Ordering::Relaxed);
        let key = (call.principal.account_id, call.cluster.clone());
        let start_worker = {
            let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            match queues.get_mut(&key) {
                Some(waiting) => {
                    waiting.push((call, reply));
                    false
                }
                None => {
                    queues.insert(key.clone(), vec![(call, reply)]);
                    true
                }
            }
        };
        if start_worker {
            // A task of its own, so a caller that hangs up does not take
            // the others' batch down with it.
            let app = app.clone();
            tokio::spawn(async move { app.run_task_batches().work(&app, key).await });
        }
        answer.await.map_err(|_| AppError::Internal("the RunTask batch ended without an answer".into()))?
    }

    pub(crate) fn stats(&self) -> BatchStats {
        BatchStats {
            calls_submitted: self.calls_submitted.load(Ordering::Relaxed),
            batches_begun: self.batches_begun.load(Ordering::Relaxed),
        }
    }

    /// Runs batches for one cluster until none is waiting.
    async fn work(&self, app: &App, key: ClusterKey) {
        // Should the worker panic, the key goes, and the calls still queued
        // are dropped (their callers get an error) rather than wait forever.
        let guard = WorkerGuard { batches: self, key: Some(key.clone()) };
        loop {
            let batch: Vec<_> = {
                let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(waiting) = queues.get_mut(&key) else { break };
                if waiting.is_empty() {
                    queues.remove(&key);
                    break;
                }
                let n = waiting.len().min(MAX_BATCH);
                waiting.drain(..n).collect()
            };
            self.batches_begun.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("berth_run_task_batches_total").increment(1);
            metrics::counter!("berth_run_task_batched_calls_total").increment(batch.len() as u64);
            app.run_batch(AccountScope::new(key.0), &key.1, batch).await;
        }
        std::mem::forget(guard);
    }
}

struct WorkerGuard<'a> {
    batches: &'a RunTaskBatches,
    key: Option<ClusterKey>,
}

impl Drop for WorkerGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.batches.queues.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
        }
    }
}

impl App {
    /// One transaction for a batch of one cluster's calls; answers each.
    async fn run_batch(&self, scope: AccountScope, cluster: &str, calls: Vec<(RunTaskCall, Reply)>) {
        let mut results = Vec::with_capacity(calls.len());
        let outcome = self.write_batch(scope, cluster, &calls, &mut results).await;
        for (i, (_, reply)) in calls.into_iter().enumerate() {
            let answer = match (&outcome, results.get_mut(i).and_then(Option::take)) {
                // A call that failed on its own was rolled back either way.
                (_, Some(Err(e))) => Err(e),
                (Ok(()), Some(Ok(written))) => Ok(written),
                // Not committed: nothing this call did stands.
                (Err(e), _) => Err(e.for_each_caller()),
                (Ok(()), None) => Err(AppError::Internal("a RunTask batch lost a call's result".into())),
            };
            // The caller may have hung up; its tasks are committed all the same.
            let _ = reply.send(answer);
        }
    }

    /// Runs every call, each in its own savepoint, then commits. `results`
    /// gets one entry per call that ran; an error here fails the whole batch.
    async fn write_batch(
        &self,
        scope: AccountScope,
        cluster: &str,
        calls: &[(RunTaskCall, Reply)],
        results: &mut Vec<Option<AppResult<Written<RunTaskResponse>>>>,
    ) -> AppResult<()> {
        let mut tx = self.db().begin_write().await?;
        let mut view = ClusterView::default();
        // A call alone (light load) has the transaction to itself: no
        // savepoints, and the call takes the lock itself.
        let alone = calls.len() == 1;
        if !alone {
            // The lock is taken outside any call's savepoint: rolling a call
            // back must not let go of it. A cluster that does not exist is
            // each call's own answer.
            match super::clusters::resolve(&mut tx, scope, cluster).await {
                Ok(row) => {
                    crate::store::clusters::lock_for_placement(&mut tx, scope, row.cluster_id()).await?;
                    view.locked = Some(row.cluster_id());
                }
                Err(AppError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let defaults = self.quota_defaults().clone();
        let sizes = self.managed_task_sizes().to_vec();
        for (call, reply) in calls {
            // A caller that gave up (its request timed out) while it waited
            // is told nothing changed: it must not then change.
            if reply.is_closed() {
                results.push(None);
                continue;
            }
            let savepoint = if alone { None } else { Some(tx.savepoint().await?) };
            let result = async {
                if let Some(replayed) = self.replay_or_claim(&mut tx, scope, call.idem.as_ref()).await? {
                    return Ok(replayed);
                }
                let value = run_in_tx(
                    &mut tx,
                    scope,
                    &call.principal,
                    &call.cluster,
                    &call.family,
                    call.revision,
                    &call.req,
                    &defaults,
                    &sizes,
                    &mut view,
                )
                .await?;
                self.record_result(&mut tx, scope, call.idem.as_ref(), &value).await?;
                Ok(Written { value, replayed: false })
            }
            .await;
            match (result, savepoint) {
                (Ok(written), savepoint) => {
                    if let Some(savepoint) = savepoint {
                        tx.release_savepoint(savepoint).await?;
                    }
                    results.push(Some(Ok(written)));
                }
                (Err(e), Some(savepoint)) => {
                    tx.rollback_to_savepoint(savepoint).await?;
                    view.forget_reads();
                    results.push(Some(Err(e)));
                }
                (Err(e), None) => {
                    results.push(Some(Err(e)));
                    tx.rollback().await?;
                    return Ok(());
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
