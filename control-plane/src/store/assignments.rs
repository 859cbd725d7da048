//! Each host's stream of desired-state changes. A change is appended in the
//! same transaction as the decision behind it (placing a task, asking it to
//! stop), with the next number of the host's own sequence, so an agent that
//! resumes from its cursor misses nothing and sees no change twice.

use berth_api::tasks::DesiredStatus;
use berth_api::{HostId, TaskId};
use sea_query::{Expr, ExprTrait, Order, Query};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::{HostAssignments, Hosts};
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct AssignmentRow {
    pub seq: i64,
    pub task_id: Uuid,
    pub desired_status: String,
}

/// Appends a change for the host.
pub async fn append(
    tx: &mut Tx,
    scope: AccountScope,
    host: HostId,
    task: TaskId,
    desired: DesiredStatus,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let changes = std::collections::BTreeMap::from([(host, vec![(task, desired)])]);
    append_for_hosts(tx, scope, &changes, now).await
}

/// Appends changes for several hosts with two statements in all: one bump of
/// every host's sequence (returning where each now ends) and one insert.
pub async fn append_for_hosts(
    tx: &mut Tx,
    scope: AccountScope,
    changes: &std::collections::BTreeMap<HostId, Vec<(TaskId, DesiredStatus)>>,
    now: OffsetDateTime,
) -> StoreResult<()> {
    #[derive(FromRow)]
    struct Seq {
        id: uuid::Uuid,
        assignment_seq: i64,
    }
    if changes.is_empty() {
        return Ok(());
    }
    let mut bump = sea_query::CaseStatement::new();
    for (host, list) in changes {
        bump = bump.case(Expr::col(Hosts::Id).eq(host.0), i64::try_from(list.len()).unwrap_or(i64::MAX));
    }
    let bump: sea_query::Expr = bump.finally(0i64).into();
    // Not a version bump: appending must not make a concurrent placement on the host conflict.
    let stmt = Query::update()
        .table(Hosts::Table)
        .value(Hosts::AssignmentSeq, Expr::col(Hosts::AssignmentSeq).add(bump))
        .and_where(Expr::col(Hosts::Id).is_in(changes.keys().map(|h| h.0)))
        .cond_where(super::hosts::usable_by(scope))
        .returning(Query::returning().columns([Hosts::Id, Hosts::AssignmentSeq]))
        .to_owned();
    let ends: Vec<Seq> = tx.fetch_all(&stmt).await?;
    if ends.len() != changes.len() {
        return Err(super::StoreError::Corrupt("an assigned host is missing".into()));
    }
    let mut insert = Query::insert()
        .into_table(HostAssignments::Table)
        .columns([
            HostAssignments::HostId,
            HostAssignments::Seq,
            HostAssignments::AccountId,
            HostAssignments::TaskId,
            HostAssignments::DesiredStatus,
            HostAssignments::CreatedAt,
        ])
        .to_owned();
    for end in &ends {
        let list = &changes[&HostId(end.id)];
        let n = i64::try_from(list.len()).unwrap_or(i64::MAX);
        for (i, (task, desired)) in (0i64..).zip(list) {
            insert.values_panic([
                end.id.into(),
                (end.assignment_seq - n + 1 + i).into(),
                scope.uuid().into(),
                task.0.into(),
                desired.as_str().into(),
                now.into(),
            ]);
        }
        tx.wake(end.id);
    }
    tx.execute(&insert).await?;
    Ok(())
}

/// Changes after `after`, oldest first.
pub async fn after(tx: &mut Tx, host: HostId, after: i64, limit: u64) -> StoreResult<Vec<AssignmentRow>> {
    let stmt = Query::select()
        .columns([HostAssignments::Seq, HostAssignments::TaskId, HostAssignments::DesiredStatus])
        .from(HostAssignments::Table)
        .and_where(Expr::col(HostAssignments::HostId).eq(host.0))
        .and_where(Expr::col(HostAssignments::Seq).gt(after))
        .order_by(HostAssignments::Seq, Order::Asc)
        .limit(limit)
        .to_owned();
    tx.fetch_all(&stmt).await
}
