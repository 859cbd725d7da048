//! Each host's stream of desired-state changes. A change is appended in the
//! same transaction as the decision behind it (placing a task, asking it to
//! stop), with the next number of the host's own sequence, so an agent that
//! resumes from its cursor misses nothing and sees no change twice.

use std::collections::BTreeMap;

use berth_api::tasks::DesiredStatus;
use berth_api::{HostId, TaskId};
use sea_query::{Expr, ExprTrait, Order, Query};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::hosts::SequenceEnd;
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
    let changes = BTreeMap::from([(host, vec![(task, desired)])]);
    append_for_hosts(tx, scope, &changes, now).await
}

/// Appends changes for several hosts with two statements in all: one bump of
/// every host's sequence (returning where each now ends) and one insert.
pub async fn append_for_hosts(
    tx: &mut Tx,
    scope: AccountScope,
    changes: &BTreeMap<HostId, Vec<(TaskId, DesiredStatus)>>,
    now: OffsetDateTime,
) -> StoreResult<()> {
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
    let ends: Vec<SequenceEnd> = tx.fetch_all(&stmt).await?;
    insert_numbered(tx, scope, changes, &ends, now).await
}

/// Inserts changes whose numbers were already taken from their hosts'
/// sequences (by [`super::hosts::reserve_many`] or [`append_for_hosts`]):
/// each host's changes end at its `ends` entry.
pub async fn insert_numbered(
    tx: &mut Tx,
    scope: AccountScope,
    changes: &BTreeMap<HostId, Vec<(TaskId, DesiredStatus)>>,
    ends: &[SequenceEnd],
    now: OffsetDateTime,
) -> StoreResult<()> {
    if ends.len() != changes.len() {
        return Err(super::StoreError::Corrupt("an assigned host is missing".into()));
    }
    if changes.is_empty() {
        return Ok(());
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
    for end in ends {
        let Some(list) = changes.get(&HostId(end.id)) else {
            return Err(super::StoreError::Corrupt("a numbered host has no changes".into()));
        };
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

/// A host's changes after `after`, oldest first, or after its acknowledged
/// position when `after` is `None`. Returns that position with the changes,
/// or `None` when there is no such host.
///
/// One statement outside a transaction: an agent's long-poll reads this on
/// arrival and again on every wake-up, and most reads find nothing.
pub async fn pending(
    db: &super::Db,
    host: HostId,
    after: Option<i64>,
    limit: u64,
) -> StoreResult<Option<(i64, Vec<AssignmentRow>)>> {
    #[derive(FromRow)]
    struct Pending {
        acked: i64,
        seq: Option<i64>,
        task_id: Option<Uuid>,
        desired_status: Option<String>,
    }
    let from = match after {
        Some(after) => Expr::val(after),
        None => Expr::col((Hosts::Table, Hosts::AssignmentAcked)),
    };
    // The left join keeps the host's row when nothing is pending, so an
    // empty answer still says where the stream was read from.
    let stmt = Query::select()
        .expr_as(Expr::col((Hosts::Table, Hosts::AssignmentAcked)), sea_query::Alias::new("acked"))
        .columns([
            (HostAssignments::Table, HostAssignments::Seq),
            (HostAssignments::Table, HostAssignments::TaskId),
            (HostAssignments::Table, HostAssignments::DesiredStatus),
        ])
        .from(Hosts::Table)
        .left_join(
            HostAssignments::Table,
            Expr::col((HostAssignments::Table, HostAssignments::HostId))
                .equals((Hosts::Table, Hosts::Id))
                .and(Expr::col((HostAssignments::Table, HostAssignments::Seq)).gt(from)),
        )
        .and_where(Expr::col((Hosts::Table, Hosts::Id)).eq(host.0))
        .order_by((HostAssignments::Table, HostAssignments::Seq), Order::Asc)
        .limit(limit)
        .to_owned();
    let rows: Vec<Pending> = db.fetch_all(&stmt).await?;
    let Some(acked) = rows.first().map(|r| r.acked) else {
        return Ok(None);
    };
    let changes = rows
        .into_iter()
        .filter_map(|r| match (r.seq, r.task_id, r.desired_status) {
            (Some(seq), Some(task_id), Some(desired_status)) => Some(AssignmentRow { seq, task_id, desired_status }),
            _ => None,
        })
        .collect();
    Ok(Some((after.unwrap_or(acked), changes)))
}
