//! Quota counters, operator-set limits, and recounting usage from the rows.
//!
//! Each (account, quota) has one counter row, changed in the same transaction
//! as what it counts. Enforcement reads the rows `FOR UPDATE` (on SQLite the
//! write transaction already holds the database lock), so concurrent requests
//! at the edge of a limit run one after another and exactly the limit gets in.

use std::collections::BTreeMap;

use berth_api::quotas::QuotaName;
use sea_query::{Expr, ExprTrait, LockType, OnConflict, Query};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::{Clusters, Hosts, QuotaLimits, QuotaUsage, Services, TaskDefinitionFamilies, Tasks};
use super::{AccountScope, StoreResult, Tx};

/// The minute a per-minute quota counts (Unix seconds / 60).
pub fn minute_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(60)
}

#[derive(Clone, Debug, FromRow)]
struct UsageRow {
    name: String,
    used: i64,
    window_minute: i64,
}

fn effective(name: QuotaName, used: i64, window_minute: i64, minute: i64) -> i64 {
    if name == QuotaName::TasksLaunchedPerMinute && window_minute != minute { 0 } else { used }
}

/// Locks the account's counters for `names` (creating missing ones from the
/// rows they count) and returns their current usage.
pub async fn lock(
    tx: &mut Tx,
    scope: AccountScope,
    names: &[QuotaName],
    now: OffsetDateTime,
) -> StoreResult<BTreeMap<QuotaName, i64>> {
    let minute = minute_of(now);
    let select = |names: &[QuotaName]| {
        Query::select()
            .columns([QuotaUsage::Name, QuotaUsage::Used, QuotaUsage::WindowMinute])
            .from(QuotaUsage::Table)
            .and_where(Expr::col(QuotaUsage::AccountId).eq(scope.uuid()))
            .and_where(Expr::col(QuotaUsage::Name).is_in(names.iter().map(|n| n.as_str())))
            // Always in the same order, so two transactions cannot deadlock on them.
            .order_by(QuotaUsage::Name, sea_query::Order::Asc)
            .lock(LockType::Update)
            .to_owned()
    };
    let mut rows: Vec<UsageRow> = tx.fetch_all(&select(names)).await?;
    let missing: Vec<QuotaName> =
        names.iter().copied().filter(|n| !rows.iter().any(|r| r.name == n.as_str())).collect();
    if !missing.is_empty() {
        for name in &missing {
            let actual = count(tx, scope, *name, now).await?;
            let insert = Query::insert()
                .into_table(QuotaUsage::Table)
                .columns([QuotaUsage::AccountId, QuotaUsage::Name, QuotaUsage::Used, QuotaUsage::WindowMinute])
                .values_panic([scope.uuid().into(), name.as_str().into(), actual.into(), minute.into()])
                .on_conflict(OnConflict::columns([QuotaUsage::AccountId, QuotaUsage::Name]).do_nothing().to_owned())
                .to_owned();
            tx.execute(&insert).await?;
        }
        rows = tx.fetch_all(&select(names)).await?;
    }
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let name = QuotaName::parse(&r.name)?;
            Some((name, effective(name, r.used, r.window_minute, minute)))
        })
        .collect())
}

/// Sets a counter locked by [`lock`] to `used`, counting in the current minute.
pub async fn set(tx: &mut Tx, scope: AccountScope, name: QuotaName, used: i64, now: OffsetDateTime) -> StoreResult<()> {
    let stmt = Query::update()
        .table(QuotaUsage::Table)
        .value(QuotaUsage::Used, used)
        .value(QuotaUsage::WindowMinute, minute_of(now))
        .and_where(Expr::col(QuotaUsage::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(QuotaUsage::Name).eq(name.as_str()))
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// Sets several counters locked by [`lock`] in one statement.
pub async fn set_many(
    tx: &mut Tx,
    scope: AccountScope,
    values: &[(QuotaName, i64)],
    now: OffsetDateTime,
) -> StoreResult<()> {
    if values.is_empty() {
        return Ok(());
    }
    let mut used = sea_query::CaseStatement::new();
    for (name, v) in values {
        used = used.case(Expr::col(QuotaUsage::Name).eq(name.as_str()), *v);
    }
    let used: sea_query::Expr = used.finally(Expr::col(QuotaUsage::Used)).into();
    let stmt = Query::update()
        .table(QuotaUsage::Table)
        .value(QuotaUsage::Used, used)
        .value(QuotaUsage::WindowMinute, minute_of(now))
        .and_where(Expr::col(QuotaUsage::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(QuotaUsage::Name).is_in(values.iter().map(|(n, _)| n.as_str())))
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// Gives back `amount` of a quota without reading it first (a task stopped, a
/// resource was deleted). Never below zero: drift is the recount's to repair.
pub async fn release(tx: &mut Tx, scope: AccountScope, name: QuotaName, amount: i64) -> StoreResult<()> {
    if amount == 0 {
        return Ok(());
    }
    let stmt = Query::update()
        .table(QuotaUsage::Table)
        .value(
            QuotaUsage::Used,
            Expr::case(Expr::col(QuotaUsage::Used).gt(amount), Expr::col(QuotaUsage::Used).sub(amount)).finally(0),
        )
        .and_where(Expr::col(QuotaUsage::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(QuotaUsage::Name).eq(name.as_str()))
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// Usage of every counted quota as the counters say (without locking).
pub async fn usage(tx: &mut Tx, scope: AccountScope, now: OffsetDateTime) -> StoreResult<BTreeMap<QuotaName, i64>> {
    let stmt = Query::select()
        .columns([QuotaUsage::Name, QuotaUsage::Used, QuotaUsage::WindowMinute])
        .from(QuotaUsage::Table)
        .and_where(Expr::col(QuotaUsage::AccountId).eq(scope.uuid()))
        .to_owned();
    let minute = minute_of(now);
    Ok(tx
        .fetch_all::<UsageRow, _>(&stmt)
        .await?
        .into_iter()
        .filter_map(|r| {
            let name = QuotaName::parse(&r.name)?;
            Some((name, effective(name, r.used, r.window_minute, minute)))
        })
        .collect())
}

/// What the rows say a quota's usage is.
pub async fn count(tx: &mut Tx, scope: AccountScope, name: QuotaName, now: OffsetDateTime) -> StoreResult<i64> {
    #[derive(FromRow)]
    struct N {
        n: Option<i64>,
    }
    let account = || Expr::col(Tasks::AccountId).eq(scope.uuid());
    let placed = || Expr::col(Tasks::LastStatus).is_in(["PENDING", "RUNNING", "STOPPING"]);
    let (stmt, agg) = match name {
        QuotaName::Clusters => (
            Query::select().from(Clusters::Table).and_where(Expr::col(Clusters::AccountId).eq(scope.uuid())).to_owned(),
            "COUNT(*)",
        ),
        QuotaName::TaskDefinitionFamilies => (
            Query::select()
                .from(TaskDefinitionFamilies::Table)
                .and_where(Expr::col(TaskDefinitionFamilies::AccountId).eq(scope.uuid()))
                .to_owned(),
            "COUNT(*)",
        ),
        QuotaName::RevisionsPerFamily => (
            Query::select()
                .from(TaskDefinitionFamilies::Table)
                .and_where(Expr::col(TaskDefinitionFamilies::AccountId).eq(scope.uuid()))
                .to_owned(),
            "MAX(latest_revision)",
        ),
        QuotaName::Services => (
            Query::select()
                .from(Services::Table)
                .and_where(Expr::col(Services::AccountId).eq(scope.uuid()))
                .and_where(Expr::col(Services::Status).ne("INACTIVE"))
                .to_owned(),
            "COUNT(*)",
        ),
        QuotaName::Hosts => (
            Query::select()
                .from(Hosts::Table)
                .and_where(Expr::col(Hosts::AccountId).eq(scope.uuid()))
                .and_where(Expr::col(Hosts::Status).ne("DEREGISTERED"))
                .to_owned(),
            "COUNT(*)",
        ),
        QuotaName::RunningTasks => {
            (Query::select().from(Tasks::Table).and_where(account()).and_where(placed()).to_owned(), "COUNT(*)")
        }
        QuotaName::RunningCpu => {
            (Query::select().from(Tasks::Table).and_where(account()).and_where(placed()).to_owned(), "SUM(cpu)")
        }
        QuotaName::RunningMemory => {
            (Query::select().from(Tasks::Table).and_where(account()).and_where(placed()).to_owned(), "SUM(memory)")
        }
        QuotaName::ManagedCpu | QuotaName::ManagedMemory => (
            Query::select()
                .from(Tasks::Table)
                .and_where(account())
                .and_where(placed())
                .and_where(Expr::col(Tasks::LaunchType).eq("MANAGED"))
                .to_owned(),
            if name == QuotaName::ManagedCpu { "SUM(cpu)" } else { "SUM(memory)" },
        ),
        QuotaName::TasksLaunchedPerMinute => (
            Query::select()
                .from(Tasks::Table)
                .and_where(account())
                .and_where(Expr::col(Tasks::CreatedAt).gte(
                    OffsetDateTime::from_unix_timestamp(minute_of(now) * 60).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                ))
                .to_owned(),
            "COUNT(*)",
        ),
        QuotaName::PendingTasks => (
            Query::select()
                .from(Tasks::Table)
                .and_where(account())
                .and_where(Expr::col(Tasks::LastStatus).eq("PROVISIONING"))
                .to_owned(),
            "COUNT(*)",
        ),
    };
    let mut stmt = stmt;
    // SUM is NULL over no rows and a NUMERIC on PostgreSQL: cast back to a 64-bit integer.
    stmt.expr_as(Expr::cust(format!("CAST(COALESCE({agg}, 0) AS BIGINT)")), sea_query::Alias::new("n"));
    Ok(tx.fetch_one::<N, _>(&stmt).await?.n.unwrap_or(0))
}

/// Every account that has counters (for the periodic recount).
pub async fn accounts_with_counters(tx: &mut Tx) -> StoreResult<Vec<Uuid>> {
    #[derive(FromRow)]
    struct Row {
        account_id: Uuid,
    }
    let stmt = Query::select().distinct().column(QuotaUsage::AccountId).from(QuotaUsage::Table).to_owned();
    Ok(tx.fetch_all::<Row, _>(&stmt).await?.into_iter().map(|r| r.account_id).collect())
}

/// Limits the operator set for the account.
pub async fn limits(tx: &mut Tx, scope: AccountScope) -> StoreResult<BTreeMap<QuotaName, i64>> {
    #[derive(FromRow)]
    struct Row {
        name: String,
        max_value: i64,
    }
    let stmt = Query::select()
        .columns([QuotaLimits::Name, QuotaLimits::MaxValue])
        .from(QuotaLimits::Table)
        .and_where(Expr::col(QuotaLimits::AccountId).eq(scope.uuid()))
        .to_owned();
    Ok(tx
        .fetch_all::<Row, _>(&stmt)
        .await?
        .into_iter()
        .filter_map(|r| Some((QuotaName::parse(&r.name)?, r.max_value)))
        .collect())
}

pub async fn set_limit(
    tx: &mut Tx,
    scope: AccountScope,
    name: QuotaName,
    limit: i64,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let stmt = Query::insert()
        .into_table(QuotaLimits::Table)
        .columns([QuotaLimits::AccountId, QuotaLimits::Name, QuotaLimits::MaxValue, QuotaLimits::UpdatedAt])
        .values_panic([scope.uuid().into(), name.as_str().into(), limit.into(), now.into()])
        .on_conflict(
            OnConflict::columns([QuotaLimits::AccountId, QuotaLimits::Name])
                .update_columns([QuotaLimits::MaxValue, QuotaLimits::UpdatedAt])
                .to_owned(),
        )
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// Returns the account's quota to the default; true if it had a limit of its own.
pub async fn clear_limit(tx: &mut Tx, scope: AccountScope, name: QuotaName) -> StoreResult<bool> {
    let stmt = Query::delete()
        .from_table(QuotaLimits::Table)
        .and_where(Expr::col(QuotaLimits::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(QuotaLimits::Name).eq(name.as_str()))
        .to_owned();
    Ok(tx.execute(&stmt).await? > 0)
}
