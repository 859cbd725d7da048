//! Hosts registered by agents: their resources, what placement has given out,
//! attributes and status.

use std::collections::BTreeMap;

use berth_api::{ClusterId, HostId};
use sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sqlx::FromRow;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::Hosts;
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct HostRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub cluster_id: Uuid,
    pub credential_hash: String,
    pub hostname: String,
    pub status: String,
    pub created_at: OffsetDateTime,
    pub version: i64,
    pub cpu_total: i64,
    pub memory_total: i64,
    pub cpu_reserved: i64,
    pub memory_reserved: i64,
    pub cpu_used: i64,
    pub memory_used: i64,
    pub port_range_start: i64,
    pub port_range_end: i64,
    pub ports_used: Json<Vec<u16>>,
    pub attributes: Json<BTreeMap<String, String>>,
    pub agent_version: String,
    pub last_heartbeat_at: Option<OffsetDateTime>,
    pub assignment_seq: i64,
    pub assignment_acked: i64,
    /// A capacity pool's host: it runs MANAGED tasks of every account.
    pub shared: bool,
}

impl HostRow {
    pub fn host_id(&self) -> HostId {
        HostId(self.id)
    }
}

const COLUMNS: [Hosts; 23] = [
    Hosts::Id,
    Hosts::AccountId,
    Hosts::ClusterId,
    Hosts::CredentialHash,
    Hosts::Hostname,
    Hosts::Status,
    Hosts::CreatedAt,
    Hosts::Version,
    Hosts::CpuTotal,
    Hosts::MemoryTotal,
    Hosts::CpuReserved,
    Hosts::MemoryReserved,
    Hosts::CpuUsed,
    Hosts::MemoryUsed,
    Hosts::PortRangeStart,
    Hosts::PortRangeEnd,
    Hosts::PortsUsed,
    Hosts::Attributes,
    Hosts::AgentVersion,
    Hosts::LastHeartbeatAt,
    Hosts::AssignmentSeq,
    Hosts::AssignmentAcked,
    Hosts::Shared,
];

/// The hosts an account's tasks may be on: its own, and the capacity pools'
/// shared hosts (which it reaches through its MANAGED tasks only, never by
/// listing or naming them).
pub fn usable_by(scope: AccountScope) -> sea_query::Condition {
    sea_query::Condition::any().add(Expr::col(Hosts::AccountId).eq(scope.uuid())).add(Expr::col(Hosts::Shared).eq(true))
}

fn select() -> SelectStatement {
    Query::select().columns(COLUMNS).from(Hosts::Table).to_owned()
}

pub struct NewHost<'a> {
    pub id: HostId,
    pub cluster_id: ClusterId,
    pub registration_token_id: Uuid,
    pub credential_hash: &'a str,
    pub hostname: &'a str,
    pub cpu_total: u32,
    pub memory_total: u32,
    pub cpu_reserved: u32,
    pub memory_reserved: u32,
    pub port_range: (u16, u16),
    pub attributes: &'a BTreeMap<String, String>,
    pub agent_version: &'a str,
    pub shared: bool,
    pub now: OffsetDateTime,
}

pub async fn insert(tx: &mut Tx, scope: AccountScope, new: NewHost<'_>) -> StoreResult<()> {
    let stmt = Query::insert()
        .into_table(Hosts::Table)
        .columns([
            Hosts::Id,
            Hosts::AccountId,
            Hosts::ClusterId,
            Hosts::RegistrationTokenId,
            Hosts::CredentialHash,
            Hosts::Hostname,
            Hosts::Status,
            Hosts::CreatedAt,
            Hosts::UpdatedAt,
            Hosts::Version,
            Hosts::CpuTotal,
            Hosts::MemoryTotal,
            Hosts::CpuReserved,
            Hosts::MemoryReserved,
            Hosts::CpuUsed,
            Hosts::MemoryUsed,
            Hosts::PortRangeStart,
            Hosts::PortRangeEnd,
            Hosts::PortsUsed,
            Hosts::Attributes,
            Hosts::AgentVersion,
            Hosts::LastHeartbeatAt,
            Hosts::Shared,
        ])
        .values_panic([
            new.id.0.into(),
            scope.uuid().into(),
            new.cluster_id.0.into(),
            new.registration_token_id.into(),
            new.credential_hash.into(),
            new.hostname.into(),
            "ACTIVE".into(),
            new.now.into(),
            new.now.into(),
            1i64.into(),
            i64::from(new.cpu_total).into(),
            i64::from(new.memory_total).into(),
            i64::from(new.cpu_reserved).into(),
            i64::from(new.memory_reserved).into(),
            0i64.into(),
            0i64.into(),
            i64::from(new.port_range.0).into(),
            i64::from(new.port_range.1).into(),
            serde_json::json!([]).into(),
            serde_json::to_value(new.attributes).unwrap_or_default().into(),
            new.agent_version.into(),
            new.now.into(),
            new.shared.into(),
        ])
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// What authenticating a host needs, read in one statement.
#[derive(Clone, Debug, FromRow)]
pub struct HostCredentialRow {
    pub account_id: Uuid,
    pub cluster_id: Uuid,
    pub credential_hash: String,
    pub status: String,
    pub account_status: Option<String>,
}

pub async fn find_credential(db: &super::Db, id: HostId) -> StoreResult<Option<HostCredentialRow>> {
    let stmt = Query::select()
        .columns([Hosts::AccountId, Hosts::ClusterId, Hosts::CredentialHash, Hosts::Status])
        .expr_as(
            Expr::cust("(SELECT status FROM accounts WHERE accounts.id = hosts.account_id)"),
            sea_query::Alias::new("account_status"),
        )
        .from(Hosts::Table)
        .and_where(Expr::col(Hosts::Id).eq(id.0))
        .to_owned();
    db.fetch_optional(&stmt).await
}

/// For host authentication: the host with this id, in any account.
pub async fn find_for_authentication(tx: &mut Tx, id: HostId) -> StoreResult<Option<HostRow>> {
    let stmt = select().and_where(Expr::col(Hosts::Id).eq(id.0)).to_owned();
    tx.fetch_optional(&stmt).await
}

/// Where the host's assignment stream ends, read outside a transaction.
pub async fn assignment_end(db: &super::Db, id: HostId) -> StoreResult<Option<i64>> {
    #[derive(FromRow)]
    struct End {
        assignment_seq: i64,
    }
    let stmt = Query::select()
        .column(Hosts::AssignmentSeq)
        .from(Hosts::Table)
        .and_where(Expr::col(Hosts::Id).eq(id.0))
        .to_owned();
    Ok(db.fetch_optional::<End, _>(&stmt).await?.map(|e| e.assignment_seq))
}

pub async fn get(tx: &mut Tx, scope: AccountScope, cluster: ClusterId, id: HostId) -> StoreResult<Option<HostRow>> {
    let stmt = select()
        .and_where(Expr::col(Hosts::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Hosts::ClusterId).eq(cluster.0))
        .and_where(Expr::col(Hosts::Id).eq(id.0))
        .to_owned();
    tx.fetch_optional(&stmt).await
}

/// Hosts of a cluster in id order, after `after` when given.
pub async fn list(
    tx: &mut Tx,
    scope: AccountScope,
    cluster: ClusterId,
    after: Option<Uuid>,
    limit: u64,
) -> StoreResult<Vec<HostRow>> {
    let mut stmt = select()
        .and_where(Expr::col(Hosts::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Hosts::ClusterId).eq(cluster.0))
        .to_owned();
    if let Some(after) = after {
        stmt.and_where(Expr::col(Hosts::Id).gt(after));
    }
    stmt.order_by(Hosts::Id, Order::Asc).limit(limit);
    tx.fetch_all(&stmt).await
}

/// Every host of a capacity pool that placement should consider: the
/// operator's, for any account's MANAGED tasks.
pub async fn of_pool(tx: &mut Tx, pool: ClusterId) -> StoreResult<Vec<HostRow>> {
    let stmt = select()
        .and_where(Expr::col(Hosts::Shared).eq(true))
        .and_where(Expr::col(Hosts::ClusterId).eq(pool.0))
        .and_where(Expr::col(Hosts::Status).ne("DEREGISTERED"))
        .order_by(Hosts::Id, Order::Asc)
        .to_owned();
    tx.fetch_all(&stmt).await
}

/// Shared hosts being drained (MANAGED service tasks move off them).
pub async fn draining_shared(tx: &mut Tx) -> StoreResult<Vec<Uuid>> {
    #[derive(FromRow)]
    struct Row {
        id: Uuid,
    }
    let stmt = Query::select()
        .column(Hosts::Id)
        .from(Hosts::Table)
        .and_where(Expr::col(Hosts::Shared).eq(true))
        .and_where(Expr::col(Hosts::Status).eq("DRAINING"))
        .to_owned();
    Ok(tx.fetch_all::<Row, _>(&stmt).await?.into_iter().map(|r| r.id).collect())
}

/// Every host of the cluster that placement should consider (all but deregistered).
pub async fn for_placement(tx: &mut Tx, scope: AccountScope, cluster: ClusterId) -> StoreResult<Vec<HostRow>> {
    let stmt = select()
        .and_where(Expr::col(Hosts::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Hosts::ClusterId).eq(cluster.0))
        .and_where(Expr::col(Hosts::Status).ne("DEREGISTERED"))
        .order_by(Hosts::Id, Order::Asc)
        .to_owned();
    tx.fetch_all(&stmt).await
}

/// Takes resources and ports on a host, only if the host is still at the
/// version placement read and the resources still fit, and numbers
/// `assignments` changes on its stream. Returns `None` on a conflict: the
/// caller re-reads and places again.
pub async fn reserve(
    tx: &mut Tx,
    host: &HostRow,
    cpu: u32,
    memory: u32,
    ports_used: &[u16],
    assignments: u32,
    now: OffsetDateTime,
) -> StoreResult<Option<SequenceEnd>> {
    let reserved = reserve_many(tx, &[Reservation { host, cpu, memory, ports_used, assignments }], now).await?;
    Ok(reserved.and_then(|ends| ends.into_iter().next()))
}

/// What one host gives a placement: CPU, memory, its port list afterwards,
/// and how many changes the placement appends to its assignment stream.
pub struct Reservation<'a> {
    pub host: &'a HostRow,
    pub cpu: u32,
    pub memory: u32,
    pub ports_used: &'a [u16],
    pub assignments: u32,
}

/// Where a host's assignment sequence ends once changes were numbered on it:
/// they take the numbers up to and including `assignment_seq`.
#[derive(Clone, Copy, Debug, FromRow)]
pub struct SequenceEnd {
    pub id: Uuid,
    pub assignment_seq: i64,
}

/// [`reserve`] for several hosts in one statement: all or nothing. Returns
/// `None` when any host changed since placement read it (the caller's
/// transaction must then roll back and place again).
///
/// The assignment sequence moves in the same statement as the resources
/// because a second `UPDATE` of a row this transaction already updated makes
/// PostgreSQL check the row's foreign keys again (`RI_FKey_fk_upd_check_required`).
pub async fn reserve_many(
    tx: &mut Tx,
    reservations: &[Reservation<'_>],
    now: OffsetDateTime,
) -> StoreResult<Option<Vec<SequenceEnd>>> {
    let Some(first) = reservations.first() else { return Ok(Some(Vec::new())) };
    let by_id = |value: &dyn Fn(&Reservation<'_>) -> sea_query::Expr, otherwise: sea_query::Expr| {
        let mut case = sea_query::CaseStatement::new();
        for r in reservations {
            case = case.case(Expr::col(Hosts::Id).eq(r.host.id), value(r));
        }
        let expr: sea_query::Expr = case.finally(otherwise).into();
        expr
    };
    let cpu = by_id(&|r| Expr::val(i64::from(r.cpu)), Expr::val(0i64));
    let memory = by_id(&|r| Expr::val(i64::from(r.memory)), Expr::val(0i64));
    let ports = by_id(&|r| Expr::val(serde_json::json!(r.ports_used)), Expr::col(Hosts::PortsUsed));
    let version = by_id(&|r| Expr::val(r.host.version), Expr::val(-1i64));
    let numbered = by_id(&|r| Expr::val(i64::from(r.assignments)), Expr::val(0i64));
    let stmt = Query::update()
        .table(Hosts::Table)
        .value(Hosts::CpuUsed, Expr::col(Hosts::CpuUsed).add(cpu.clone()))
        .value(Hosts::MemoryUsed, Expr::col(Hosts::MemoryUsed).add(memory.clone()))
        .value(Hosts::PortsUsed, ports)
        .value(Hosts::AssignmentSeq, Expr::col(Hosts::AssignmentSeq).add(numbered))
        .value(Hosts::UpdatedAt, now)
        .value(Hosts::Version, Expr::col(Hosts::Version).add(1))
        .and_where(Expr::col(Hosts::Id).is_in(reservations.iter().map(|r| r.host.id)))
        .and_where(Expr::col(Hosts::AccountId).eq(first.host.account_id))
        .and_where(Expr::col(Hosts::Version).eq(version))
        .and_where(Expr::col(Hosts::Status).eq("ACTIVE"))
        .and_where(
            Expr::col(Hosts::CpuUsed).add(cpu).lte(Expr::col(Hosts::CpuTotal).sub(Expr::col(Hosts::CpuReserved))),
        )
        .and_where(
            Expr::col(Hosts::MemoryUsed)
                .add(memory)
                .lte(Expr::col(Hosts::MemoryTotal).sub(Expr::col(Hosts::MemoryReserved))),
        )
        .returning(Query::returning().columns([Hosts::Id, Hosts::AssignmentSeq]))
        .to_owned();
    let ends: Vec<SequenceEnd> = tx.fetch_all(&stmt).await?;
    Ok((ends.len() == reservations.len()).then_some(ends))
}

/// Gives back what a stopped task held. Retries on a concurrent change of the
/// host row (the port list is rewritten whole).
/// `column - amount`, or 0 when that would be negative.
fn never_below_zero(column: Hosts, amount: i64) -> sea_query::Expr {
    sea_query::CaseStatement::new()
        .case(Expr::col(column).gt(amount), Expr::col(column).sub(amount))
        .finally(0i64)
        .into()
}

pub async fn release(
    tx: &mut Tx,
    host: HostId,
    cpu: u32,
    memory: u32,
    ports: &[u16],
    now: OffsetDateTime,
) -> StoreResult<()> {
    for _ in 0..10 {
        let Some(row) =
            tx.fetch_optional::<HostRow, _>(&select().and_where(Expr::col(Hosts::Id).eq(host.0)).to_owned()).await?
        else {
            return Ok(());
        };
        let remaining: Vec<u16> = row.ports_used.0.iter().copied().filter(|p| !ports.contains(p)).collect();
        let stmt = Query::update()
            .table(Hosts::Table)
            // Never below zero. Built from expressions, not custom SQL with
            // placeholders: sea-query's SQLite builder drops a custom
            // expression's values, which zeroed the host's usage there.
            .value(Hosts::CpuUsed, never_below_zero(Hosts::CpuUsed, i64::from(cpu)))
            .value(Hosts::MemoryUsed, never_below_zero(Hosts::MemoryUsed, i64::from(memory)))
            .value(Hosts::PortsUsed, serde_json::json!(remaining))
            .value(Hosts::UpdatedAt, now)
            .value(Hosts::Version, Expr::col(Hosts::Version).add(1))
            .and_where(Expr::col(Hosts::Id).eq(host.0))
            .and_where(Expr::col(Hosts::Version).eq(row.version))
            .to_owned();
        if tx.execute(&stmt).await? == 1 {
            return Ok(());
        }
    }
    Err(super::StoreError::Corrupt(format!("host {host} kept changing while releasing a task's resources")))
}

/// Sets the host's status if it is still at `expected_version`; the updated
/// row, or None when it changed meanwhile.
pub async fn set_status(
    tx: &mut Tx,
    scope: AccountScope,
    id: HostId,
    expected_version: i64,
    status: &str,
    now: OffsetDateTime,
) -> StoreResult<Option<HostRow>> {
    update_versioned(tx, scope, id, expected_version, (Hosts::Status, status.into()), now).await
}

/// Replaces the host's attributes if it is still at `expected_version`.
pub async fn set_attributes(
    tx: &mut Tx,
    scope: AccountScope,
    id: HostId,
    expected_version: i64,
    attributes: &BTreeMap<String, String>,
    now: OffsetDateTime,
) -> StoreResult<Option<HostRow>> {
    let attributes = serde_json::to_value(attributes).unwrap_or_default();
    update_versioned(tx, scope, id, expected_version, (Hosts::Attributes, attributes.into()), now).await
}

/// One column's conditional update, returning the row as it now is.
async fn update_versioned(
    tx: &mut Tx,
    scope: AccountScope,
    id: HostId,
    expected_version: i64,
    (column, value): (Hosts, sea_query::Value),
    now: OffsetDateTime,
) -> StoreResult<Option<HostRow>> {
    let stmt = Query::update()
        .table(Hosts::Table)
        .value(column, value)
        .value(Hosts::UpdatedAt, now)
        .value(Hosts::Version, Expr::col(Hosts::Version).add(1))
        .and_where(Expr::col(Hosts::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Hosts::Id).eq(id.0))
        .and_where(Expr::col(Hosts::Version).eq(expected_version))
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    tx.fetch_optional(&stmt).await
}

/// Hosts of the cluster that are not deregistered.
pub async fn count_in_cluster(tx: &mut Tx, scope: AccountScope, cluster: ClusterId) -> StoreResult<i64> {
    let stmt = Query::select()
        .from(Hosts::Table)
        .and_where(Expr::col(Hosts::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Hosts::ClusterId).eq(cluster.0))
        .and_where(Expr::col(Hosts::Status).ne("DEREGISTERED"))
        .to_owned();
    tx.count(stmt).await
}

/// Records a heartbeat. A DISCONNECTED or LOST host that heartbeats is ACTIVE
/// again. The version is not bumped: heartbeats must not make placements conflict.
/// Where the agent serves its logs, with its token encrypted.
#[derive(Clone, Debug)]
pub struct LogsEndpointRow {
    pub url: String,
    pub token_key_id: String,
    pub token_ciphertext: String,
}

pub async fn heartbeat(
    db: &super::Db,
    id: HostId,
    now: OffsetDateTime,
    logs: Option<&LogsEndpointRow>,
) -> StoreResult<Option<String>> {
    #[derive(FromRow)]
    struct Status {
        status: String,
    }
    let mut stmt = Query::update();
    if let Some(l) = logs {
        stmt.value(Hosts::LogsUrl, l.url.as_str())
            .value(Hosts::LogsTokenKeyId, l.token_key_id.as_str())
            .value(Hosts::LogsTokenCiphertext, l.token_ciphertext.as_str());
    }
    let stmt = stmt
        .table(Hosts::Table)
        .value(Hosts::LastHeartbeatAt, now)
        .value(Hosts::Status, Expr::cust("CASE WHEN status IN ('DISCONNECTED', 'LOST') THEN 'ACTIVE' ELSE status END"))
        .and_where(Expr::col(Hosts::Id).eq(id.0))
        .and_where(Expr::col(Hosts::Status).ne("DEREGISTERED"))
        .returning_col(Hosts::Status)
        .to_owned();
    Ok(db.fetch_optional::<Status, _>(&stmt).await?.map(|s| s.status))
}

/// The host's logs endpoint, if its agent sent one.
pub async fn logs_endpoint(tx: &mut Tx, scope: AccountScope, id: HostId) -> StoreResult<Option<LogsEndpointRow>> {
    #[derive(FromRow)]
    struct Row {
        logs_url: Option<String>,
        logs_token_key_id: Option<String>,
        logs_token_ciphertext: Option<String>,
    }
    let stmt = Query::select()
        .columns([Hosts::LogsUrl, Hosts::LogsTokenKeyId, Hosts::LogsTokenCiphertext])
        .from(Hosts::Table)
        .cond_where(usable_by(scope))
        .and_where(Expr::col(Hosts::Id).eq(id.0))
        .to_owned();
    let row: Option<Row> = tx.fetch_optional(&stmt).await?;
    Ok(row.and_then(|r| match (r.logs_url, r.logs_token_key_id, r.logs_token_ciphertext) {
        (Some(url), Some(token_key_id), Some(token_ciphertext)) => {
            Some(LogsEndpointRow { url, token_key_id, token_ciphertext })
        }
        _ => None,
    }))
}

/// A host whose heartbeats stopped.
#[derive(Clone, Debug, FromRow)]
pub struct StaleHost {
    pub id: Uuid,
    pub account_id: Uuid,
    pub cluster_id: Uuid,
}

/// Marks hosts that have not heartbeated since `cutoff` as `to`, from any of
/// `from`, and returns them. Safe on many replicas at once: the predicate is
/// the update's own, so each host changes exactly once.
pub async fn mark_stale(tx: &mut Tx, from: &[&str], to: &str, cutoff: OffsetDateTime) -> StoreResult<Vec<StaleHost>> {
    let stmt = Query::update()
        .table(Hosts::Table)
        .value(Hosts::Status, to)
        .value(Hosts::Version, Expr::col(Hosts::Version).add(1))
        .and_where(Expr::col(Hosts::Status).is_in(from.iter().copied()))
        .and_where(Expr::col(Hosts::LastHeartbeatAt).lt(cutoff))
        .returning(Query::returning().columns([Hosts::Id, Hosts::AccountId, Hosts::ClusterId]))
        .to_owned();
    tx.fetch_all(&stmt).await
}

/// Moves the agent's acknowledged cursor forward (never back, never past the
/// stream's end); true when it moved.
pub async fn ack(db: &super::Db, id: HostId, cursor: i64) -> StoreResult<bool> {
    let stmt = Query::update()
        .table(Hosts::Table)
        .value(Hosts::AssignmentAcked, cursor)
        .and_where(Expr::col(Hosts::Id).eq(id.0))
        // Only a forward move writes: a repeated ack takes no row lock.
        .and_where(Expr::col(Hosts::AssignmentAcked).lt(cursor))
        .and_where(Expr::col(Hosts::AssignmentSeq).gte(cursor))
        .to_owned();
    // One statement, so it needs no transaction of its own.
    Ok(db.execute_alone(&stmt).await? == 1)
}

/// Removes a cluster's DEREGISTERED hosts (with their assignment streams),
/// which are only history once the cluster itself goes.
pub async fn delete_deregistered_in_cluster(tx: &mut Tx, scope: AccountScope, cluster: ClusterId) -> StoreResult<u64> {
    let gone = Query::select()
        .column(Hosts::Id)
        .from(Hosts::Table)
        .and_where(Expr::col(Hosts::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Hosts::ClusterId).eq(cluster.0))
        .and_where(Expr::col(Hosts::Status).eq("DEREGISTERED"))
        .to_owned();
    let assignments = Query::delete()
        .from_table(super::schema::HostAssignments::Table)
        .and_where(Expr::col(super::schema::HostAssignments::HostId).in_subquery(gone))
        .to_owned();
    tx.execute(&assignments).await?;
    let hosts = Query::delete()
        .from_table(Hosts::Table)
        .and_where(Expr::col(Hosts::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Hosts::ClusterId).eq(cluster.0))
        .and_where(Expr::col(Hosts::Status).eq("DEREGISTERED"))
        .to_owned();
    tx.execute(&hosts).await
}
