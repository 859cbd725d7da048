//! Tasks.

use std::collections::HashMap;

use berth_api::capacity::LaunchType;
use berth_api::tasks::{ContainerState, DesiredStatus, StopCode, TaskOverrides, TaskStatus};
use berth_api::{ClusterId, DeploymentId, HostId, ServiceId, Tags, TaskDefinitionId, TaskId};
use sea_query::{Alias, Expr, ExprTrait, Func, Order, Query, SelectStatement, UpdateStatement};
use sqlx::FromRow;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::{Hosts, Tasks};
use super::{AccountScope, StoreError, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct TaskRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub cluster_id: Uuid,
    pub cluster_name: String,
    pub task_definition_id: Uuid,
    pub family: String,
    pub revision: i64,
    pub desired_status: String,
    pub last_status: String,
    pub host_id: Option<Uuid>,
    pub started_by: Option<String>,
    pub overrides: Json<TaskOverrides>,
    pub containers: Json<Vec<ContainerState>>,
    pub cpu: i64,
    pub memory: i64,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub tags: Json<Tags>,
    pub created_at: OffsetDateTime,
    pub pending_at: Option<OffsetDateTime>,
    pub running_at: Option<OffsetDateTime>,
    pub stopping_at: Option<OffsetDateTime>,
    pub stopped_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    pub version: i64,
    pub placement: Option<Json<berth_api::hosts::PlacementDecision>>,
    pub queued: bool,
    pub host_ports: Json<Vec<u16>>,
    pub report_seq: i64,
    pub placement_spec: Option<Json<PlacementSpec>>,
    pub resource_usage: Option<Json<berth_api::tasks::TaskUsage>>,
    pub service_id: Option<Uuid>,
    pub deployment_id: Option<Uuid>,
    /// A stopped service task whose stop the scheduler has accounted for.
    pub service_counted: bool,
    pub launch_type: String,
    pub requested_cpu: Option<i64>,
    pub requested_memory: Option<i64>,
}

impl TaskRow {
    pub fn task_id(&self) -> TaskId {
        TaskId(self.id)
    }
    pub fn last_status(&self) -> StoreResult<TaskStatus> {
        super::parse_column(&self.last_status, "tasks.last_status", TaskStatus::parse)
    }
    pub fn desired_status(&self) -> StoreResult<DesiredStatus> {
        super::parse_column(&self.desired_status, "tasks.desired_status", DesiredStatus::parse)
    }
    pub fn launch_type(&self) -> StoreResult<LaunchType> {
        super::parse_column(&self.launch_type, "tasks.launch_type", LaunchType::parse)
    }
    pub fn is_managed(&self) -> bool {
        self.launch_type == LaunchType::Managed.as_str()
    }
    pub fn stop_code(&self) -> StoreResult<Option<StopCode>> {
        self.stop_code.as_deref().map(|s| super::parse_column(s, "tasks.stop_code", StopCode::parse)).transpose()
    }
}

pub struct NewTask<'a> {
    pub id: TaskId,
    pub cluster_id: ClusterId,
    pub task_definition_id: TaskDefinitionId,
    pub family: &'a str,
    pub revision: i64,
    pub started_by: Option<&'a str>,
    pub overrides: &'a TaskOverrides,
    pub containers: &'a [ContainerState],
    pub cpu: u32,
    pub memory: u32,
    pub tags: &'a Tags,
    pub now: OffsetDateTime,
    /// Placed: the host, the decision and the host ports taken (the task starts PENDING).
    pub placed: Option<(HostId, &'a berth_api::hosts::PlacementDecision, &'a [u16])>,
    /// Not placed but waiting for capacity.
    pub queued: bool,
    /// The strategies and constraints asked for (kept for queued tasks).
    pub placement_spec: Option<&'a PlacementSpec>,
    /// The service and deployment that start it.
    pub service: Option<(ServiceId, DeploymentId)>,
    pub launch_type: LaunchType,
    /// MANAGED: the size asked for, before rounding up to `cpu`/`memory`.
    pub requested: Option<berth_api::capacity::TaskSize>,
}

/// The placement rules a task was submitted with.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PlacementSpec {
    pub strategy: Vec<berth_api::hosts::PlacementStrategy>,
    pub constraints: Vec<berth_api::hosts::PlacementConstraint>,
}

/// Every task column plus the cluster's name, for any account: only the
/// system's own loops (queued placement) use it directly.
fn select_all_accounts() -> SelectStatement {
    Query::select()
        .columns([
            Tasks::Id,
            Tasks::AccountId,
            Tasks::ClusterId,
            Tasks::TaskDefinitionId,
            Tasks::Family,
            Tasks::Revision,
            Tasks::DesiredStatus,
            Tasks::LastStatus,
            Tasks::HostId,
            Tasks::StartedBy,
            Tasks::Overrides,
            Tasks::Containers,
            Tasks::Cpu,
            Tasks::Memory,
            Tasks::StopCode,
            Tasks::StoppedReason,
            Tasks::Tags,
            Tasks::CreatedAt,
            Tasks::PendingAt,
            Tasks::RunningAt,
            Tasks::StoppingAt,
            Tasks::StoppedAt,
            Tasks::UpdatedAt,
            Tasks::Version,
            Tasks::Placement,
            Tasks::Queued,
            Tasks::HostPorts,
            Tasks::ReportSeq,
            Tasks::PlacementSpec,
            Tasks::ResourceUsage,
            Tasks::ServiceId,
            Tasks::DeploymentId,
            Tasks::ServiceCounted,
            Tasks::LaunchType,
            Tasks::RequestedCpu,
            Tasks::RequestedMemory,
        ])
        .expr_as(
            Expr::cust("(SELECT name FROM clusters WHERE clusters.id = tasks.cluster_id)"),
            Alias::new("cluster_name"),
        )
        .from(Tasks::Table)
        .to_owned()
}

fn select(scope: AccountScope) -> SelectStatement {
    select_all_accounts().and_where(Expr::col(Tasks::AccountId).eq(scope.uuid())).to_owned()
}

fn json<T: serde::Serialize>(v: &T) -> StoreResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub async fn insert(tx: &mut Tx, scope: AccountScope, new: NewTask<'_>) -> StoreResult<()> {
    insert_many(tx, scope, &[new]).await
}

/// Inserts tasks in one statement.
pub async fn insert_many(tx: &mut Tx, scope: AccountScope, news: &[NewTask<'_>]) -> StoreResult<()> {
    if news.is_empty() {
        return Ok(());
    }
    let mut stmt = Query::insert()
        .into_table(Tasks::Table)
        .columns([
            Tasks::Id,
            Tasks::AccountId,
            Tasks::ClusterId,
            Tasks::TaskDefinitionId,
            Tasks::Family,
            Tasks::Revision,
            Tasks::DesiredStatus,
            Tasks::LastStatus,
            Tasks::StartedBy,
            Tasks::Overrides,
            Tasks::Containers,
            Tasks::Cpu,
            Tasks::Memory,
            Tasks::Tags,
            Tasks::CreatedAt,
            Tasks::UpdatedAt,
            Tasks::Version,
            Tasks::HostId,
            Tasks::Placement,
            Tasks::Queued,
            Tasks::HostPorts,
            Tasks::PendingAt,
            Tasks::PlacementSpec,
            Tasks::ServiceId,
            Tasks::DeploymentId,
            Tasks::LaunchType,
            Tasks::RequestedCpu,
            Tasks::RequestedMemory,
        ])
        .to_owned();
    for new in news {
        stmt.values_panic([
            new.id.0.into(),
            scope.uuid().into(),
            new.cluster_id.0.into(),
            new.task_definition_id.0.into(),
            new.family.into(),
            new.revision.into(),
            DesiredStatus::Running.as_str().into(),
            if new.placed.is_some() { TaskStatus::Pending } else { TaskStatus::Provisioning }.as_str().into(),
            new.started_by.map(str::to_owned).into(),
            json(new.overrides)?.into(),
            json(&new.containers)?.into(),
            i64::from(new.cpu).into(),
            i64::from(new.memory).into(),
            json(new.tags)?.into(),
            new.now.into(),
            new.now.into(),
            1i64.into(),
            new.placed.map(|(h, _, _)| h.0).into(),
            new.placed.map(|(_, d, _)| json(d)).transpose()?.into(),
            new.queued.into(),
            json(&new.placed.map(|(_, _, p)| p.to_vec()).unwrap_or_default())?.into(),
            new.placed.map(|_| new.now).into(),
            new.placement_spec.map(json).transpose()?.into(),
            new.service.map(|(s, _)| s.0).into(),
            new.service.map(|(_, d)| d.0).into(),
            new.launch_type.as_str().into(),
            new.requested.map(|s| i64::from(s.cpu)).into(),
            new.requested.map(|s| i64::from(s.memory)).into(),
        ]);
    }
    tx.execute(&stmt).await?;
    Ok(())
}

/// How many tasks of a family that are not STOPPED run on each host of the cluster.
pub async fn group_counts_by_host(
    tx: &mut Tx,
    scope: AccountScope,
    cluster: ClusterId,
    family: &str,
) -> StoreResult<std::collections::HashMap<uuid::Uuid, i64>> {
    #[derive(FromRow)]
    struct Row {
        host_id: Option<uuid::Uuid>,
        n: i64,
    }
    let stmt = Query::select()
        .column(Tasks::HostId)
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(Tasks::Table)
        .and_where(Expr::col(Tasks::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Tasks::ClusterId).eq(cluster.0))
        .and_where(Expr::col(Tasks::Family).eq(family))
        // A literal, not a parameter: the planner then matches the partial index on live tasks.
        .and_where(Expr::cust("last_status <> 'STOPPED'"))
        .and_where(Expr::col(Tasks::HostId).is_not_null())
        .group_by_col(Tasks::HostId)
        .to_owned();
    Ok(tx.fetch_all::<Row, _>(&stmt).await?.into_iter().filter_map(|r| r.host_id.map(|h| (h, r.n))).collect())
}

/// How many of the cluster's tasks are in each last status (stopped ones
/// included until retention removes them).
pub async fn count_by_status(tx: &mut Tx, scope: AccountScope, cluster: ClusterId) -> StoreResult<Vec<(String, i64)>> {
    #[derive(FromRow)]
    struct Row {
        last_status: String,
        n: i64,
    }
    let stmt = Query::select()
        .column(Tasks::LastStatus)
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(Tasks::Table)
        .and_where(Expr::col(Tasks::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Tasks::ClusterId).eq(cluster.0))
        .group_by_col(Tasks::LastStatus)
        .to_owned();
    Ok(tx.fetch_all::<Row, _>(&stmt).await?.into_iter().map(|r| (r.last_status, r.n)).collect())
}

/// Ids of the tasks not STOPPED on a host, of whatever account: a shared
/// host's agent runs many accounts' tasks, and only its own host's.
pub async fn live_on_host(reader: &mut impl super::Reader, host: HostId) -> StoreResult<Vec<TaskId>> {
    #[derive(FromRow)]
    struct Row {
        id: Uuid,
    }
    let stmt = Query::select()
        .column(Tasks::Id)
        .from(Tasks::Table)
        .and_where(Expr::col(Tasks::HostId).eq(host.0))
        .and_where(Expr::col(Tasks::LastStatus).ne("STOPPED"))
        .to_owned();
    Ok(reader.fetch_all::<Row, _>(&stmt).await?.into_iter().map(|r| TaskId(r.id)).collect())
}

/// Tasks not STOPPED on a host.
pub async fn count_active_on_host(tx: &mut Tx, scope: AccountScope, host: HostId) -> StoreResult<i64> {
    count_active_where(tx, scope, Tasks::HostId, host.0).await
}

pub async fn get(tx: &mut Tx, scope: AccountScope, cluster: ClusterId, id: TaskId) -> StoreResult<Option<TaskRow>> {
    let stmt = select(scope)
        .and_where(Expr::col(Tasks::ClusterId).eq(cluster.0))
        .and_where(Expr::col(Tasks::Id).eq(id.0))
        .to_owned();
    tx.fetch_optional(&stmt).await
}

#[derive(Clone, Debug, Default)]
pub struct TaskFilter<'a> {
    pub desired_status: Option<DesiredStatus>,
    pub last_status: Option<TaskStatus>,
    pub family: Option<&'a str>,
    pub host_id: Option<HostId>,
    pub started_by: Option<&'a str>,
    pub service_id: Option<ServiceId>,
}

/// Tasks of a cluster in id (creation) order, after `after` when given.
pub async fn list(
    tx: &mut Tx,
    scope: AccountScope,
    cluster: ClusterId,
    filter: &TaskFilter<'_>,
    after: Option<TaskId>,
    limit: u64,
) -> StoreResult<Vec<TaskRow>> {
    let mut stmt = select(scope).and_where(Expr::col(Tasks::ClusterId).eq(cluster.0)).to_owned();
    if let Some(s) = filter.desired_status {
        stmt.and_where(Expr::col(Tasks::DesiredStatus).eq(s.as_str()));
    }
    if let Some(s) = filter.last_status {
        stmt.and_where(Expr::col(Tasks::LastStatus).eq(s.as_str()));
    }
    if let Some(f) = filter.family {
        stmt.and_where(Expr::col(Tasks::Family).eq(f));
    }
    if let Some(h) = filter.host_id {
        stmt.and_where(Expr::col(Tasks::HostId).eq(h.0));
    }
    if let Some(s) = filter.started_by {
        stmt.and_where(Expr::col(Tasks::StartedBy).eq(s));
    }
    if let Some(s) = filter.service_id {
        stmt.and_where(Expr::col(Tasks::ServiceId).eq(s.0));
    }
    if let Some(after) = after {
        stmt.and_where(Expr::col(Tasks::Id).gt(after.0));
    }
    stmt.order_by(Tasks::Id, Order::Asc).limit(limit);
    tx.fetch_all(&stmt).await
}

/// Counts tasks that are not STOPPED and whose `column` equals `value`.
async fn count_active_where(tx: &mut Tx, scope: AccountScope, column: Tasks, value: Uuid) -> StoreResult<i64> {
    let stmt = Query::select()
        .from(Tasks::Table)
        .and_where(Expr::col(Tasks::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(column).eq(value))
        .and_where(Expr::col(Tasks::LastStatus).ne(TaskStatus::Stopped.as_str()))
        .to_owned();
    tx.count(stmt).await
}

/// Tasks of the cluster that are not STOPPED.
pub async fn count_active_in_cluster(tx: &mut Tx, scope: AccountScope, cluster: ClusterId) -> StoreResult<i64> {
    count_active_where(tx, scope, Tasks::ClusterId, cluster.0).await
}

/// The account's tasks not STOPPED, counted per value of `column` among
/// `values`; a value without any is absent from the map.
async fn count_active_grouped(
    tx: &mut Tx,
    scope: AccountScope,
    column: Tasks,
    values: &[Uuid],
) -> StoreResult<HashMap<Uuid, i64>> {
    #[derive(FromRow)]
    struct Row {
        // Nullable for `host_id`: a queued task has no host (and is never in `values`).
        value: Option<Uuid>,
        n: i64,
    }
    if values.is_empty() {
        return Ok(HashMap::new());
    }
    let stmt = Query::select()
        .expr_as(Expr::col(column), Alias::new("value"))
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(Tasks::Table)
        .and_where(Expr::col(Tasks::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(column).is_in(values.iter().copied()))
        .and_where(Expr::col(Tasks::LastStatus).ne(TaskStatus::Stopped.as_str()))
        .group_by_col(column)
        .to_owned();
    Ok(tx.fetch_all::<Row, _>(&stmt).await?.into_iter().filter_map(|r| r.value.map(|v| (v, r.n))).collect())
}

/// Tasks not STOPPED per cluster, for the clusters given; a cluster without
/// any is absent from the map.
pub async fn count_active_by_cluster(
    tx: &mut Tx,
    scope: AccountScope,
    clusters: &[ClusterId],
) -> StoreResult<HashMap<ClusterId, i64>> {
    let ids: Vec<Uuid> = clusters.iter().map(|c| c.0).collect();
    let counts = count_active_grouped(tx, scope, Tasks::ClusterId, &ids).await?;
    Ok(counts.into_iter().map(|(id, n)| (ClusterId(id), n)).collect())
}

/// Tasks not STOPPED on a capacity pool's hosts, of every account: a pool's
/// MANAGED tasks belong to their tenants' clusters, not to the pool.
pub async fn count_active_in_pool(tx: &mut Tx, pool: ClusterId) -> StoreResult<i64> {
    let stmt = Query::select()
        .from(Tasks::Table)
        .and_where(
            Expr::col(Tasks::HostId).in_subquery(
                Query::select()
                    .column(Hosts::Id)
                    .from(Hosts::Table)
                    .and_where(Expr::col(Hosts::ClusterId).eq(pool.0))
                    .to_owned(),
            ),
        )
        .and_where(Expr::col(Tasks::LastStatus).ne(TaskStatus::Stopped.as_str()))
        .to_owned();
    tx.count(stmt).await
}

/// Tasks not STOPPED that use the given task-definition revision.
pub async fn count_active_using_definition(tx: &mut Tx, scope: AccountScope, td: TaskDefinitionId) -> StoreResult<i64> {
    count_active_where(tx, scope, Tasks::TaskDefinitionId, td.0).await
}

/// A change of a task's state, applied only when the stored version matches
/// (optimistic concurrency: the caller read the row, decided, and writes back).
pub struct StateChange<'a> {
    pub desired_status: DesiredStatus,
    pub last_status: TaskStatus,
    pub containers: &'a [ContainerState],
    pub stop_code: Option<StopCode>,
    pub stopped_reason: Option<&'a str>,
    pub now: OffsetDateTime,
}

pub async fn change_state(
    tx: &mut Tx,
    scope: AccountScope,
    id: TaskId,
    expected_version: i64,
    change: StateChange<'_>,
) -> StoreResult<bool> {
    let stmt = state_update(&change)?
        .and_where(Expr::col(Tasks::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Tasks::Id).eq(id.0))
        .and_where(Expr::col(Tasks::Version).eq(expected_version))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}

/// The columns a state change sets, including each state's timestamp the
/// first time the task reaches it; callers add the conditions.
fn state_update(change: &StateChange<'_>) -> StoreResult<UpdateStatement> {
    let mut stmt = Query::update()
        .table(Tasks::Table)
        .value(Tasks::DesiredStatus, change.desired_status.as_str())
        .value(Tasks::LastStatus, change.last_status.as_str())
        .value(Tasks::Containers, json(&change.containers)?)
        .value(Tasks::StopCode, change.stop_code.map(|c| c.as_str().to_owned()))
        .value(Tasks::StoppedReason, change.stopped_reason.map(str::to_owned))
        .value(Tasks::UpdatedAt, change.now)
        .value(Tasks::Version, Expr::col(Tasks::Version).add(1))
        .to_owned();
    let stamp = match change.last_status {
        TaskStatus::Provisioning => None,
        TaskStatus::Pending => Some(Tasks::PendingAt),
        TaskStatus::Running => Some(Tasks::RunningAt),
        TaskStatus::Stopping => Some(Tasks::StoppingAt),
        TaskStatus::Stopped => Some(Tasks::StoppedAt),
    };
    if let Some(col) = stamp {
        stmt.value(col, Func::coalesce([Expr::col(col), Expr::val(change.now)]));
    }
    Ok(stmt)
}

/// Applies an agent's report if it is newer than the last one applied
/// (report sequence numbers per task); returns false for a stale or repeated one.
pub async fn apply_report(
    tx: &mut Tx,
    scope: AccountScope,
    id: TaskId,
    host: HostId,
    report_seq: i64,
    change: StateChange<'_>,
) -> StoreResult<bool> {
    let stmt = state_update(&change)?
        .value(Tasks::ReportSeq, report_seq)
        .and_where(Expr::col(Tasks::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Tasks::Id).eq(id.0))
        .and_where(Expr::col(Tasks::HostId).eq(host.0))
        .and_where(Expr::col(Tasks::ReportSeq).lt(report_seq))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}

/// Tasks by id within the account, in id order; missing ones are left out.
pub async fn get_many(tx: &mut Tx, scope: AccountScope, ids: &[TaskId]) -> StoreResult<Vec<TaskRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = select(scope)
        .and_where(Expr::col(Tasks::Id).is_in(ids.iter().map(|i| i.0)))
        .order_by(Tasks::Id, Order::Asc)
        .to_owned();
    tx.fetch_all(&stmt).await
}

/// Tasks placed on a host, by id, of whatever account (the agent's view:
/// what its host was given); missing ones are left out.
pub async fn on_host(tx: &mut impl super::Reader, host: HostId, ids: &[TaskId]) -> StoreResult<Vec<TaskRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = select_all_accounts()
        .and_where(Expr::col(Tasks::HostId).eq(host.0))
        .and_where(Expr::col(Tasks::Id).is_in(ids.iter().map(|i| i.0)))
        .order_by(Tasks::Id, Order::Asc)
        .to_owned();
    tx.fetch_all(&stmt).await
}

/// Every task not STOPPED on a host, of whatever account (a lost host's).
pub async fn live_rows_on_host(tx: &mut Tx, host: HostId) -> StoreResult<Vec<TaskRow>> {
    let stmt = select_all_accounts()
        .and_where(Expr::col(Tasks::HostId).eq(host.0))
        .and_where(Expr::cust("last_status <> 'STOPPED'"))
        .order_by(Tasks::Id, Order::Asc)
        .to_owned();
    tx.fetch_all(&stmt).await
}

/// How many of the account's tasks not STOPPED run on each of these hosts
/// (MANAGED tasks spread per account over a pool's hosts).
pub async fn account_counts_by_host(
    tx: &mut Tx,
    scope: AccountScope,
    hosts: &[Uuid],
) -> StoreResult<HashMap<Uuid, i64>> {
    count_active_grouped(tx, scope, Tasks::HostId, hosts).await
}

/// Accounts with MANAGED tasks waiting for capacity.
pub async fn accounts_with_queued_managed(tx: &mut Tx) -> StoreResult<Vec<Uuid>> {
    #[derive(FromRow)]
    struct Row {
        account_id: Uuid,
    }
    let stmt = Query::select()
        .distinct()
        .column(Tasks::AccountId)
        .from(Tasks::Table)
        .and_where(Expr::col(Tasks::Queued).eq(true))
        .and_where(Expr::col(Tasks::LaunchType).eq(LaunchType::Managed.as_str()))
        .to_owned();
    Ok(tx.fetch_all::<Row, _>(&stmt).await?.into_iter().map(|r| r.account_id).collect())
}

/// One account's queued MANAGED tasks, oldest first.
pub async fn queued_managed(tx: &mut Tx, scope: AccountScope, limit: u64) -> StoreResult<Vec<TaskRow>> {
    let stmt = select(scope)
        .and_where(Expr::col(Tasks::Queued).eq(true))
        .and_where(Expr::col(Tasks::LaunchType).eq(LaunchType::Managed.as_str()))
        .and_where(Expr::col(Tasks::LastStatus).eq(TaskStatus::Provisioning.as_str()))
        .and_where(Expr::col(Tasks::DesiredStatus).eq(DesiredStatus::Running.as_str()))
        .order_by(Tasks::Id, Order::Asc)
        .limit(limit)
        .to_owned();
    tx.fetch_all(&stmt).await
}

/// Queued EXTERNAL tasks (waiting in PROVISIONING for capacity in their own
/// cluster), oldest first, across accounts.
pub async fn queued(tx: &mut Tx, limit: u64) -> StoreResult<Vec<TaskRow>> {
    let stmt = select_all_accounts()
        .and_where(Expr::col(Tasks::LaunchType).eq(LaunchType::External.as_str()))
        .and_where(Expr::col(Tasks::Queued).eq(true))
        .and_where(Expr::col(Tasks::LastStatus).eq(TaskStatus::Provisioning.as_str()))
        .and_where(Expr::col(Tasks::DesiredStatus).eq(DesiredStatus::Running.as_str()))
        .order_by(Tasks::Id, Order::Asc)
        .limit(limit)
        .to_owned();
    tx.fetch_all(&stmt).await
}

/// Puts a queued task on a host, if it is still queued at the version read.
pub async fn assign_queued(
    tx: &mut Tx,
    scope: AccountScope,
    id: TaskId,
    expected_version: i64,
    (host, decision, ports): (HostId, &berth_api::hosts::PlacementDecision, &[u16]),
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let stmt = Query::update()
        .table(Tasks::Table)
        .value(Tasks::LastStatus, TaskStatus::Pending.as_str())
        .value(Tasks::HostId, host.0)
        .value(Tasks::Placement, json(decision)?)
        .value(Tasks::Queued, false)
        .value(Tasks::HostPorts, json(&ports)?)
        .value(Tasks::PendingAt, now)
        .value(Tasks::UpdatedAt, now)
        .value(Tasks::Version, Expr::col(Tasks::Version).add(1))
        .and_where(Expr::col(Tasks::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Tasks::Id).eq(id.0))
        .and_where(Expr::col(Tasks::Version).eq(expected_version))
        .and_where(Expr::col(Tasks::Queued).eq(true))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}

/// Records what the host's tasks use, from one heartbeat: one statement for
/// all of them, and only tasks on that host that are not STOPPED.
pub async fn record_usage(
    db: &super::Db,
    host: HostId,
    usage: &[(TaskId, berth_api::tasks::TaskUsage)],
) -> StoreResult<()> {
    if usage.is_empty() {
        return Ok(());
    }
    let mut case = sea_query::CaseStatement::new();
    for (id, u) in usage {
        case = case.case(Expr::col(Tasks::Id).eq(id.0), Expr::val(serde_json::to_value(u).unwrap_or_default()));
    }
    let value: sea_query::Expr = case.finally(Expr::col(Tasks::ResourceUsage)).into();
    let stmt = Query::update()
        .table(Tasks::Table)
        .value(Tasks::ResourceUsage, value)
        .and_where(Expr::col(Tasks::HostId).eq(host.0))
        .and_where(Expr::col(Tasks::Id).is_in(usage.iter().map(|(id, _)| id.0)))
        .and_where(Expr::col(Tasks::LastStatus).ne("STOPPED"))
        .to_owned();
    db.execute_alone(&stmt).await?;
    Ok(())
}

/// A service's tasks that the scheduler still has to look at: those not
/// STOPPED, and stopped ones whose stop it has not accounted for yet.
pub async fn for_service(tx: &mut Tx, scope: AccountScope, service: ServiceId) -> StoreResult<Vec<TaskRow>> {
    let stmt = select(scope)
        .and_where(Expr::col(Tasks::ServiceId).eq(service.0))
        // Literals, so the planner matches the partial index on exactly these rows.
        .and_where(Expr::cust("(last_status <> 'STOPPED' OR NOT service_counted)"))
        .order_by(Tasks::Id, Order::Asc)
        .to_owned();
    tx.fetch_all(&stmt).await
}

/// Marks stopped service tasks as accounted for by the scheduler.
pub async fn mark_counted(tx: &mut Tx, scope: AccountScope, ids: &[TaskId]) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let stmt = Query::update()
        .table(Tasks::Table)
        .value(Tasks::ServiceCounted, true)
        .and_where(Expr::col(Tasks::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Tasks::Id).is_in(ids.iter().map(|i| i.0)))
        .and_where(Expr::col(Tasks::LastStatus).eq(TaskStatus::Stopped.as_str()))
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// Moves a service's live tasks of one revision into a deployment: a
/// rollback keeps the tasks that already run the revision it goes back to.
pub async fn adopt_into_deployment(
    tx: &mut Tx,
    scope: AccountScope,
    service: ServiceId,
    task_definition: TaskDefinitionId,
    deployment: DeploymentId,
) -> StoreResult<u64> {
    let stmt = Query::update()
        .table(Tasks::Table)
        .value(Tasks::DeploymentId, deployment.0)
        .and_where(Expr::col(Tasks::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Tasks::ServiceId).eq(service.0))
        .and_where(Expr::col(Tasks::TaskDefinitionId).eq(task_definition.0))
        .and_where(Expr::col(Tasks::DesiredStatus).eq(DesiredStatus::Running.as_str()))
        .and_where(Expr::col(Tasks::LastStatus).ne(TaskStatus::Stopped.as_str()))
        .to_owned();
    tx.execute(&stmt).await
}
