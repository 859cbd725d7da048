//! Deleting what has outlived its retention. Every statement is a plain
//! conditional delete, so replicas may run it at the same time.

use sea_query::{Expr, ExprTrait, Query};
use time::OffsetDateTime;

use super::schema::{Events, HostAssignments, IdempotencyRecords, Tasks};
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

/// Assignments the host has acknowledged: its agent resumes after them, so
/// nobody reads them again.
pub async fn purge_acknowledged_assignments(tx: &mut Tx) -> StoreResult<u64> {
    let stmt = Query::delete()
        .from_table(HostAssignments::Table)
        .and_where(Expr::cust(
            "seq <= (SELECT hosts.assignment_acked FROM hosts WHERE hosts.id = host_assignments.host_id)",
        ))
        .to_owned();
    tx.execute(&stmt).await
}
