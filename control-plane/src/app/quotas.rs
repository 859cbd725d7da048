//! Per-account quotas: limits (configured defaults, or the operator's per
//! account), enforced in the same transaction as what they count.
//!
//! A write that takes from a quota opens a [`Ledger`] on the quotas it
//! needs: that locks the account's counters, so concurrent requests at the
//! edge of a limit queue and exactly the limit gets in, on any number of
//! replicas. Whatever gives usage back (a task stops, a resource is deleted)
//! calls [`release`]. A periodic recount ([`App::recount_quotas`]) repairs
//! any drift between the counters and the rows.

use std::collections::{BTreeMap, BTreeSet};

use berth_api::quotas::{ListQuotasResponse, PutQuotaRequest, Quota, QuotaExceeded, QuotaName, QuotaSource};

use super::{App, AppError, AppResult, accounts};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::store::tasks::TaskRow;
use crate::store::{self, AccountScope, Tx};

/// The limits an account has unless the operator sets its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaDefaults(pub BTreeMap<QuotaName, i64>);

impl Default for QuotaDefaults {
    fn default() -> Self {
        // The reasoning for each is in docs/quotas.md.
        Self(BTreeMap::from([
            (QuotaName::Clusters, 100),
            (QuotaName::TaskDefinitionFamilies, 1000),
            (QuotaName::RevisionsPerFamily, 1000),
            (QuotaName::Services, 1000),
            (QuotaName::Hosts, 1000),
            (QuotaName::RunningTasks, 5000),
            (QuotaName::RunningCpu, 4000 * 1024),
            (QuotaName::RunningMemory, 16_000 * 1024),
            (QuotaName::TasksLaunchedPerMinute, 6000),
            (QuotaName::PendingTasks, 5000),
            (QuotaName::ManagedCpu, 64 * 1024),
            (QuotaName::ManagedMemory, 256 * 1024),
        ]))
    }
}

impl QuotaDefaults {
    pub fn get(&self, name: QuotaName) -> i64 {
        self.0.get(&name).copied().unwrap_or(0)
    }

    /// Applies `name=limit` settings (from configuration) over the defaults.
    pub fn with_overrides(mut self, settings: &BTreeMap<String, i64>) -> Result<Self, String> {
        for (name, limit) in settings {
            let quota = QuotaName::parse(name).ok_or_else(|| {
                let known: Vec<&str> = QuotaName::ALL.iter().map(QuotaName::as_str).collect();
                format!("unknown quota {name:?}; known: {}", known.join(", "))
            })?;
            if *limit < 0 {
                return Err(format!("quota {name}: the limit must be 0 or more"));
            }
            self.0.insert(quota, *limit);
        }
        Ok(self)
    }
}

/// What one unit of something takes from quotas: a task placed on a host, a cluster, ...
pub(crate) type Amounts = Vec<(QuotaName, i64)>;

/// What a placed task counts against: a MANAGED one also against the
/// account's share of the operator's capacity.
pub(crate) fn placed_task(cpu: i64, memory: i64, managed: bool) -> Amounts {
    let mut amounts =
        vec![(QuotaName::RunningTasks, 1), (QuotaName::RunningCpu, cpu), (QuotaName::RunningMemory, memory)];
    if managed {
        amounts.extend([(QuotaName::ManagedCpu, cpu), (QuotaName::ManagedMemory, memory)]);
    }
    amounts
}

/// Every quota a placement may take from.
pub(crate) const PLACEMENT_QUOTAS: [QuotaName; 7] = [
    QuotaName::TasksLaunchedPerMinute,
    QuotaName::RunningTasks,
    QuotaName::RunningCpu,
    QuotaName::RunningMemory,
    QuotaName::PendingTasks,
    QuotaName::ManagedCpu,
    QuotaName::ManagedMemory,
];

/// The account's counters for some quotas, locked for this transaction.
pub(crate) struct Ledger {
    usage: BTreeMap<QuotaName, i64>,
    limits: BTreeMap<QuotaName, i64>,
    changed: BTreeSet<QuotaName>,
}

impl Ledger {
    pub(crate) async fn open(
        tx: &mut Tx,
        scope: AccountScope,
        defaults: &QuotaDefaults,
        names: &[QuotaName],
    ) -> AppResult<Ledger> {
        let mut names = names.to_vec();
        names.sort();
        names.dedup();
        let usage = store::quotas::lock(tx, scope, &names, store::now()).await?;
        let own = store::quotas::limits(tx, scope).await?;
        let limits = names.iter().map(|n| (*n, own.get(n).copied().unwrap_or_else(|| defaults.get(*n)))).collect();
        Ok(Ledger { usage, limits, changed: BTreeSet::new() })
    }

    fn used(&self, name: QuotaName) -> i64 {
        self.usage.get(&name).copied().unwrap_or(0)
    }

    /// How many of `wanted` units fit; when not all, the quota that stops them.
    pub(crate) fn room(&self, per_unit: &[(QuotaName, i64)], wanted: u32) -> (u32, Option<QuotaExceeded>) {
        let mut fit = wanted;
        let mut blocker = None;
        for &(name, amount) in per_unit {
            if amount <= 0 {
                continue;
            }
            let limit = self.limits.get(&name).copied().unwrap_or(0);
            let room = u32::try_from((limit - self.used(name)).max(0) / amount).unwrap_or(u32::MAX);
            if room < fit {
                fit = room;
                blocker = Some(QuotaExceeded {
                    quota: name,
                    limit,
                    usage: self.used(name),
                    requested: amount * i64::from(wanted),
                });
            }
        }
        (fit, blocker)
    }

    pub(crate) fn take(&mut self, per_unit: &[(QuotaName, i64)], units: u32) {
        for &(name, amount) in per_unit {
            *self.usage.entry(name).or_insert(0) += amount * i64::from(units);
            self.changed.insert(name);
        }
    }

    /// Takes one unit, or refuses the request with the quota it would exceed.
    pub(crate) fn require(&mut self, per_unit: &[(QuotaName, i64)]) -> AppResult<()> {
        match self.room(per_unit, 1) {
            (1, _) => {
                self.take(per_unit, 1);
                Ok(())
            }
            (_, Some(exceeded)) => Err(AppError::LimitExceeded(exceeded)),
            (_, None) => Err(AppError::Internal("a quota refused without naming itself".into())),
        }
    }

    /// Gives back units taken earlier in the same transaction, or held before it.
    pub(crate) fn give_back(&mut self, per_unit: &[(QuotaName, i64)], units: u32) {
        for &(name, amount) in per_unit {
            let v = self.usage.entry(name).or_insert(0);
            *v = (*v - amount * i64::from(units)).max(0);
            self.changed.insert(name);
        }
    }

    /// Writes the changed counters (still under the transaction's lock).
    pub(crate) async fn save(self, tx: &mut Tx, scope: AccountScope) -> AppResult<()> {
        let values: Vec<(QuotaName, i64)> =
            self.changed.iter().map(|n| (*n, self.usage.get(n).copied().unwrap_or(0))).collect();
        store::quotas::set_many(tx, scope, &values, store::now()).await?;
        Ok(())
    }
}

/// Takes one unit in its own ledger: for creating a cluster, a host, a family.
pub(crate) async fn require(
    tx: &mut Tx,
    scope: AccountScope,
    defaults: &QuotaDefaults,
    per_unit: &[(QuotaName, i64)],
) -> AppResult<()> {
    let names: Vec<QuotaName> = per_unit.iter().map(|(n, _)| *n).collect();
    let mut ledger = Ledger::open(tx, scope, defaults, &names).await?;
    ledger.require(per_unit)?;
    ledger.save(tx, scope).await
}

/// Gives back usage without locking first (a task stopped, a resource was deleted).
pub(crate) async fn release(tx: &mut Tx, scope: AccountScope, per_unit: &[(QuotaName, i64)]) -> AppResult<()> {
    for &(name, amount) in per_unit {
        store::quotas::release(tx, scope, name, amount).await?;
    }
    Ok(())
}

/// What a task holds while in `last_status`: a pending slot while unplaced,
/// running slots and resources while placed, nothing once stopped.
pub(crate) fn held_by(row: &TaskRow) -> Amounts {
    match row.last_status.as_str() {
        "PROVISIONING" => vec![(QuotaName::PendingTasks, 1)],
        "PENDING" | "RUNNING" | "STOPPING" => placed_task(row.cpu, row.memory, row.is_managed()),
        _ => Vec::new(),
    }
}

/// A quota whose usage the recount found off, and by how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    pub account_id: berth_api::AccountId,
    pub quota: QuotaName,
    pub counted: i64,
    pub actual: i64,
}

/// Quotas kept as counters (the rest are computed when asked).
const COUNTED: [QuotaName; 10] = [
    QuotaName::Clusters,
    QuotaName::TaskDefinitionFamilies,
    QuotaName::Hosts,
    QuotaName::RunningTasks,
    QuotaName::RunningCpu,
    QuotaName::RunningMemory,
    QuotaName::PendingTasks,
    QuotaName::Services,
    QuotaName::ManagedCpu,
    QuotaName::ManagedMemory,
];

impl App {
    pub fn quota_defaults(&self) -> &QuotaDefaults {
        &self.inner.quotas
    }

    /// `GET /v1/quotas`: the caller's account.
    pub async fn list_quotas(&self, principal: &Principal) -> AppResult<ListQuotasResponse> {
        authorize(principal, Action::ReadQuotas, None)?;
        self.quotas_of(principal.scope()).await
    }

    /// `GET /v1/accounts/{account}/quotas`: the operator's view of any account.
    pub async fn list_account_quotas(&self, principal: &Principal, account: &str) -> AppResult<ListQuotasResponse> {
        authorize(principal, Action::ReadAccount, None)?;
        let scope = self.account_scope(account).await?;
        self.quotas_of(scope).await
    }

    async fn quotas_of(&self, scope: AccountScope) -> AppResult<ListQuotasResponse> {
        let now = store::now();
        let mut tx = self.db().begin_read().await?;
        let own = store::quotas::limits(&mut tx, scope).await?;
        let counters = store::quotas::usage(&mut tx, scope, now).await?;
        let mut quotas = Vec::with_capacity(QuotaName::ALL.len());
        for name in QuotaName::ALL {
            let usage = match counters.get(&name) {
                Some(v) if COUNTED.contains(&name) || name == QuotaName::TasksLaunchedPerMinute => *v,
                // Never counted yet (or computed on demand): the rows say.
                _ => store::quotas::count(&mut tx, scope, name, now).await?,
            };
            let (limit, source) = match own.get(&name) {
                Some(v) => (*v, QuotaSource::Account),
                None => (self.quota_defaults().get(name), QuotaSource::Default),
            };
            quotas.push(Quota { name, limit, usage, source });
        }
        tx.rollback().await?;
        Ok(ListQuotasResponse { quotas })
    }

    /// `PUT /v1/accounts/{account}/quotas/{name}`. A limit below current usage
    /// is allowed: nothing is stopped, new requests are refused until usage drops.
    pub async fn put_quota(
        &self,
        principal: &Principal,
        account: &str,
        name: &str,
        req: PutQuotaRequest,
    ) -> AppResult<Quota> {
        authorize(principal, Action::UpdateAccount, None)?;
        let quota = parse_name(name)?;
        if req.limit < 0 {
            return Err(AppError::validation("limit", "a limit is 0 or more"));
        }
        let scope = self.account_scope(account).await?;
        let mut tx = self.db().begin_write().await?;
        store::quotas::set_limit(&mut tx, scope, quota, req.limit, store::now()).await?;
        tx.commit().await?;
        self.quota_of(scope, quota).await
    }

    /// `DELETE /v1/accounts/{account}/quotas/{name}`: back to the default.
    pub async fn reset_quota(&self, principal: &Principal, account: &str, name: &str) -> AppResult<Quota> {
        authorize(principal, Action::UpdateAccount, None)?;
        let quota = parse_name(name)?;
        let scope = self.account_scope(account).await?;
        let mut tx = self.db().begin_write().await?;
        store::quotas::clear_limit(&mut tx, scope, quota).await?;
        tx.commit().await?;
        self.quota_of(scope, quota).await
    }

    async fn quota_of(&self, scope: AccountScope, quota: QuotaName) -> AppResult<Quota> {
        let all = self.quotas_of(scope).await?;
        all.quotas
            .into_iter()
            .find(|q| q.name == quota)
            .ok_or_else(|| AppError::Internal("a quota is not listed".into()))
    }

    pub(crate) async fn account_scope(&self, account: &str) -> AppResult<AccountScope> {
        let mut tx = self.db().begin_read().await?;
        let row = accounts::resolve(&mut tx, account).await?;
        tx.rollback().await?;
        Ok(AccountScope::new(berth_api::AccountId(row.id)))
    }

    /// Recounts every account's counters from the rows they count and
    /// repairs the ones that drifted. Each account is recounted under its
    /// counters' locks, so a write in flight is either fully counted or not
    /// at all. Safe on every replica at once.
    pub async fn recount_quotas(&self) -> AppResult<Vec<Drift>> {
        let mut tx = self.db().begin_read().await?;
        let accounts = store::quotas::accounts_with_counters(&mut tx).await?;
        tx.rollback().await?;
        let mut drifts = Vec::new();
        for account in accounts {
            let scope = AccountScope::new(berth_api::AccountId(account));
            let mut tx = self.db().begin_write().await?;
            let now = store::now();
            let counted = store::quotas::lock(&mut tx, scope, &COUNTED, now).await?;
            for name in COUNTED {
                let actual = store::quotas::count(&mut tx, scope, name, now).await?;
                let was = counted.get(&name).copied().unwrap_or(0);
                if was != actual {
                    store::quotas::set(&mut tx, scope, name, actual, now).await?;
                    drifts.push(Drift { account_id: scope.account_id(), quota: name, counted: was, actual });
                }
            }
            tx.commit().await?;
        }
        for d in &drifts {
            tracing::warn!(account = %d.account_id, quota = %d.quota, counted = d.counted, actual = d.actual,
                "quota usage drifted from the rows; repaired");
            metrics::counter!("berth_quota_drift_repaired_total", "quota" => d.quota.as_str()).increment(1);
            metrics::counter!("berth_quota_drift_units_total", "quota" => d.quota.as_str())
                .increment(d.counted.abs_diff(d.actual));
        }
        Ok(drifts)
    }
}

fn parse_name(name: &str) -> AppResult<QuotaName> {
    QuotaName::parse(name).ok_or_else(|| AppError::not_found("quota", name))
}
