//! The usage record of MANAGED tasks: one row per task that ran, opened when
//! its agent reports it RUNNING and closed when it stops, each in the same
//! transaction as the task's own change.

use sea_query::{Cond, Expr, ExprTrait, OnConflict, Order, Query};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::ManagedUsage;
use super::tasks::TaskRow;
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct UsageRow {
    pub task_id: Uuid,
    pub account_id: Uuid,
    pub cluster_name: String,
    pub task_definition: String,
    pub cpu: i64,
    pub memory: i64,
    pub started_at: OffsetDateTime,
    pub stopped_at: Option<OffsetDateTime>,
}

const COLUMNS: [ManagedUsage; 8] = [
    ManagedUsage::TaskId,
    ManagedUsage::AccountId,
    ManagedUsage::ClusterName,
    ManagedUsage::TaskDefinition,
    ManagedUsage::Cpu,
    ManagedUsage::Memory,
    ManagedUsage::StartedAt,
    ManagedUsage::StoppedAt,
];

/// Starts the task's record; a repeat (a replayed report) changes nothing.
pub async fn open(tx: &mut Tx, task: &TaskRow, started_at: OffsetDateTime) -> StoreResult<()> {
    let stmt = Query::insert()
        .into_table(ManagedUsage::Table)
        // Every column but stopped_at, which closing sets.
        .columns(COLUMNS[..7].iter().copied())
        .values_panic([
            task.id.into(),
            task.account_id.into(),
            task.cluster_name.clone().into(),
            format!("{}:{}", task.family, task.revision).into(),
            task.cpu.into(),
            task.memory.into(),
            started_at.into(),
        ])
        .on_conflict(OnConflict::column(ManagedUsage::TaskId).do_nothing().to_owned())
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// Ends the task's record, once; a task that never ran has none.
pub async fn close(tx: &mut Tx, task: uuid::Uuid, stopped_at: OffsetDateTime) -> StoreResult<()> {
    let stmt = Query::update()
        .table(ManagedUsage::Table)
        // A stop before the start (clocks disagreeing) counts as zero seconds when read.
        .value(ManagedUsage::StoppedAt, stopped_at)
        .and_where(Expr::col(ManagedUsage::TaskId).eq(task))
        .and_where(Expr::col(ManagedUsage::StoppedAt).is_null())
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// Records of runs that overlap `[from, to)`, of one account or (`None`) all, by start time.
pub async fn overlapping(
    tx: &mut Tx,
    scope: Option<AccountScope>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> StoreResult<Vec<UsageRow>> {
    let mut stmt = Query::select()
        .columns(COLUMNS)
        .from(ManagedUsage::Table)
        .and_where(Expr::col(ManagedUsage::StartedAt).lt(to))
        .cond_where(
            Cond::any()
                .add(Expr::col(ManagedUsage::StoppedAt).is_null())
                .add(Expr::col(ManagedUsage::StoppedAt).gt(from)),
        )
        .order_by(ManagedUsage::StartedAt, Order::Asc)
        .order_by(ManagedUsage::TaskId, Order::Asc)
        .to_owned();
    if let Some(scope) = scope {
        stmt.and_where(Expr::col(ManagedUsage::AccountId).eq(scope.uuid()));
    }
    tx.fetch_all(&stmt).await
}
