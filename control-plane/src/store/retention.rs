//! Deleting what has outlived its retention. Every statement is a plain
//! conditional delete, so replicas may run it at the same time.

use sea_query::{Expr, ExprTrait, Query};
use time::OffsetDateTime;

use super::schema::{Events, IdempotencyRecords, Tasks};
use super::{StoreResult, Tx};

/// STOPPED tasks that stopped before `cutoff`.
pub async fn purge_stopped_tasks(tx: &mut Tx, cutoff: OffsetDateTime) -> StoreResult<u64> {
    let stmt = Query::delete()
        .from_table(Tasks::Table)
        .and_where(Expr::col(Tasks::LastStatus).eq("STOPPED"))
        .and_where(Expr::col(Tasks::StoppedAt).lt(cutoff))
        .to_owned();
    tx.execute(&stmt).await
}

pub async fn purge_events(tx: &mut Tx, cutoff: OffsetDateTime) -> StoreResult<u64> {
    let stmt = Query::delete().from_table(Events::Table).and_where(Expr::col(Events::CreatedAt).lt(cutoff)).to_owned();
    tx.execute(&stmt).await
}

pub async fn purge_idempotency_records(tx: &mut Tx, cutoff: OffsetDateTime) -> StoreResult<u64> {
    let stmt = Query::delete()
        .from_table(IdempotencyRecords::Table)
        .and_where(Expr::col(IdempotencyRecords::CreatedAt).lt(cutoff))
        .to_owned();
    tx.execute(&stmt).await
}
