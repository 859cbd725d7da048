//! Services and their deployments.

use berth_api::services::{DeploymentConfiguration, DeploymentState, ServiceEvent};
use berth_api::{ClusterId, DeploymentId, ServiceId, Tags, TaskDefinitionId};
use sea_query::{Alias, Expr, ExprTrait, Order, Query, SelectStatement};
use sqlx::FromRow;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::{Deployments, Services};
use super::tasks::PlacementSpec;
use super::{AccountScope, StoreError, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct ServiceRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub cluster_id: Uuid,
    pub cluster_name: String,
    pub name: String,
    pub status: String,
    pub scheduling_strategy: String,
    pub task_definition_id: Uuid,
    pub family: String,
    pub revision: i64,
    pub desired_count: i64,
    pub placement_spec: Json<PlacementSpec>,
    pub deployment_configuration: Json<DeploymentConfiguration>,
    pub health_check_grace_period_seconds: i64,
    pub tags: Json<Tags>,
    pub primary_deployment_id: Uuid,
    pub failure_streak: i64,
    pub next_launch_at: Option<OffsetDateTime>,
    pub recent_events: Json<Vec<ServiceEvent>>,
    pub lease_owner: Option<Uuid>,
    pub lease_expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
    pub launch_type: String,
}

impl ServiceRow {
    pub fn service_id(&self) -> ServiceId {
        ServiceId(self.id)
    }
    pub fn cluster_id(&self) -> ClusterId {
        ClusterId(self.cluster_id)
    }
    pub fn primary(&self) -> DeploymentId {
        DeploymentId(self.primary_deployment_id)
    }
    pub fn launch_type(&self) -> StoreResult<berth_api::capacity::LaunchType> {
        super::parse_column(&self.launch_type, "services.launch_type", berth_api::capacity::LaunchType::parse)
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct DeploymentRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub service_id: Uuid,
    pub task_definition_id: Uuid,
    pub family: String,
    pub revision: i64,
    pub state: String,
    pub failed_tasks: i64,
    pub failure_threshold: i64,
    pub cause: String,
    pub reason: Option<String>,
    pub rollback_of: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

impl DeploymentRow {
    pub fn deployment_id(&self) -> DeploymentId {
        DeploymentId(self.id)
    }
    pub fn state(&self) -> StoreResult<DeploymentState> {
        super::parse_column(&self.state, "deployments.state", DeploymentState::parse)
    }
}

const SERVICE_COLUMNS: [Services; 24] = [
    Services::Id,
    Services::AccountId,
    Services::ClusterId,
    Services::Name,
    Services::Status,
    Services::SchedulingStrategy,
    Services::TaskDefinitionId,
    Services::Family,
    Services::Revision,
    Services::DesiredCount,
    Services::PlacementSpec,
    Services::DeploymentConfiguration,
    Services::HealthCheckGracePeriodSeconds,
    Services::Tags,
    Services::PrimaryDeploymentId,
    Services::FailureStreak,
    Services::NextLaunchAt,
    Services::RecentEvents,
    Services::LeaseOwner,
    Services::LeaseExpiresAt,
    Services::CreatedAt,
    Services::UpdatedAt,
    Services::Version,
    Services::LaunchType,
];

const DEPLOYMENT_COLUMNS: [Deployments; 15] = [
    Deployments::Id,
    Deployments::AccountId,
    Deployments::ServiceId,
    Deployments::TaskDefinitionId,
    Deployments::Family,
    Deployments::Revision,
    Deployments::State,
    Deployments::FailedTasks,
    Deployments::FailureThreshold,
    Deployments::Cause,
    Deployments::Reason,
    Deployments::RollbackOf,
    Deployments::CreatedAt,
    Deployments::UpdatedAt,
    Deployments::FinishedAt,
];

fn select(scope: AccountScope) -> SelectStatement {
    Query::select()
        .columns(SERVICE_COLUMNS)
        .expr_as(
            Expr::cust("(SELECT name FROM clusters WHERE clusters.id = services.cluster_id)"),
            Alias::new("cluster_name"),
        )
        .from(Services::Table)
        .and_where(Expr::col(Services::AccountId).eq(scope.uuid()))
        .to_owned()
}

fn json<T: serde::Serialize>(v: &T) -> StoreResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub struct NewService<'a> {
    pub id: ServiceId,
    pub cluster_id: ClusterId,
    pub name: &'a str,
    pub scheduling_strategy: &'static str,
    pub task_definition: (TaskDefinitionId, &'a str, i64),
    pub desired_count: u32,
    pub placement_spec: &'a PlacementSpec,
    pub deployment_configuration: &'a DeploymentConfiguration,
    pub health_check_grace_period_seconds: u32,
    pub tags: &'a Tags,
    pub primary_deployment_id: DeploymentId,
    pub now: OffsetDateTime,
    pub launch_type: &'static str,
}

pub async fn insert(tx: &mut Tx, scope: AccountScope, new: NewService<'_>) -> StoreResult<()> {
    let stmt = Query::insert()
        .into_table(Services::Table)
        .columns(SERVICE_COLUMNS)
        .values_panic([
            new.id.0.into(),
            scope.uuid().into(),
            new.cluster_id.0.into(),
            new.name.into(),
            "ACTIVE".into(),
            new.scheduling_strategy.into(),
            new.task_definition.0.0.into(),
            new.task_definition.1.into(),
            new.task_definition.2.into(),
            i64::from(new.desired_count).into(),
            json(new.placement_spec)?.into(),
            json(new.deployment_configuration)?.into(),
            i64::from(new.health_check_grace_period_seconds).into(),
            json(new.tags)?.into(),
            new.primary_deployment_id.0.into(),
            0i64.into(),
            Option::<OffsetDateTime>::None.into(),
            json(&Vec::<ServiceEvent>::new())?.into(),
            Option::<Uuid>::None.into(),
            Option::<OffsetDateTime>::None.into(),
            new.now.into(),
            new.now.into(),
            1i64.into(),
            new.launch_type.into(),
        ])
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// A service of the cluster by id, or by name among those not INACTIVE.
pub async fn get(
    tx: &mut Tx,
    scope: AccountScope,
    cluster: ClusterId,
    reference: &str,
) -> StoreResult<Option<ServiceRow>> {
    let mut stmt = select(scope).and_where(Expr::col(Services::ClusterId).eq(cluster.0)).to_owned();
    match reference.parse::<ServiceId>() {
        Ok(id) => stmt.and_where(Expr::col(Services::Id).eq(id.0)),
        Err(_) => stmt
            .and_where(Expr::col(Services::Name).eq(reference))
            .and_where(Expr::col(Services::Status).ne("INACTIVE")),
    };
    tx.fetch_optional(&stmt).await
}

/// A service by id, its row locked until the transaction ends (PostgreSQL;
/// SQLite writers are serialized anyway), so the scheduler and API updates
/// of one service take turns.
pub async fn lock(tx: &mut Tx, scope: AccountScope, id: ServiceId) -> StoreResult<Option<ServiceRow>> {
    let mut stmt = select(scope).and_where(Expr::col(Services::Id).eq(id.0)).to_owned();
    if tx.backend() == super::Backend::Postgres {
        stmt.lock(sea_query::LockType::Update);
    }
    tx.fetch_optional(&stmt).await
}

/// Services of a cluster that are not INACTIVE, in id order.
pub async fn list(
    tx: &mut Tx,
    scope: AccountScope,
    cluster: ClusterId,
    after: Option<ServiceId>,
    limit: u64,
) -> StoreResult<Vec<ServiceRow>> {
    let mut stmt = select(scope)
        .and_where(Expr::col(Services::ClusterId).eq(cluster.0))
        .and_where(Expr::col(Services::Status).ne("INACTIVE"))
        .to_owned();
    if let Some(after) = after {
        stmt.and_where(Expr::col(Services::Id).gt(after.0));
    }
    stmt.order_by(Services::Id, Order::Asc).limit(limit);
    tx.fetch_all(&stmt).await
}

/// Services of the cluster that are not INACTIVE.
pub async fn count_live_in_cluster(tx: &mut Tx, scope: AccountScope, cluster: ClusterId) -> StoreResult<i64> {
    let stmt = Query::select()
        .from(Services::Table)
        .and_where(Expr::col(Services::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Services::ClusterId).eq(cluster.0))
        .and_where(Expr::col(Services::Status).ne("INACTIVE"))
        .to_owned();
    tx.count(stmt).await
}

/// What an API update sets: the user's columns, checked against the version read.
pub struct ServiceUpdate<'a> {
    pub status: &'static str,
    pub task_definition: (TaskDefinitionId, &'a str, i64),
    pub desired_count: u32,
    pub placement_spec: &'a PlacementSpec,
    pub deployment_configuration: &'a DeploymentConfiguration,
    pub health_check_grace_period_seconds: u32,
    pub tags: &'a Tags,
    pub primary_deployment_id: DeploymentId,
    pub now: OffsetDateTime,
}

pub async fn update(
    tx: &mut Tx,
    scope: AccountScope,
    id: ServiceId,
    expected_version: i64,
    u: ServiceUpdate<'_>,
) -> StoreResult<bool> {
    let stmt = Query::update()
        .table(Services::Table)
        .value(Services::Status, u.status)
        .value(Services::TaskDefinitionId, u.task_definition.0.0)
        .value(Services::Family, u.task_definition.1)
        .value(Services::Revision, u.task_definition.2)
        .value(Services::DesiredCount, i64::from(u.desired_count))
        .value(Services::PlacementSpec, json(u.placement_spec)?)
        .value(Services::DeploymentConfiguration, json(u.deployment_configuration)?)
        .value(Services::HealthCheckGracePeriodSeconds, i64::from(u.health_check_grace_period_seconds))
        .value(Services::Tags, json(u.tags)?)
        .value(Services::PrimaryDeploymentId, u.primary_deployment_id.0)
        .value(Services::UpdatedAt, u.now)
        .value(Services::Version, Expr::col(Services::Version).add(1))
        .and_where(Expr::col(Services::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Services::Id).eq(id.0))
        .and_where(Expr::col(Services::Version).eq(expected_version))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}

/// What the scheduler keeps on the service. It does not change the version,
/// so a client's `If-Match` is not invalidated by the scheduler's bookkeeping.
pub struct SchedulerState<'a> {
    pub status: &'static str,
    pub desired_count: u32,
    pub failure_streak: i64,
    pub next_launch_at: Option<OffsetDateTime>,
    pub recent_events: &'a [ServiceEvent],
}

pub async fn save_scheduler_state(
    tx: &mut Tx,
    scope: AccountScope,
    id: ServiceId,
    s: SchedulerState<'_>,
) -> StoreResult<()> {
    let stmt = Query::update()
        .table(Services::Table)
        .value(Services::Status, s.status)
        .value(Services::DesiredCount, i64::from(s.desired_count))
        .value(Services::FailureStreak, s.failure_streak)
        .value(Services::NextLaunchAt, s.next_launch_at)
        .value(Services::RecentEvents, json(&s.recent_events)?)
        .and_where(Expr::col(Services::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Services::Id).eq(id.0))
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// The primary deployment after a rollback, set by the scheduler (also without a version change).
pub async fn set_primary(
    tx: &mut Tx,
    scope: AccountScope,
    id: ServiceId,
    deployment: DeploymentId,
    task_definition: (TaskDefinitionId, &str, i64),
    now: OffsetDateTime,
) -> StoreResult<()> {
    let stmt = Query::update()
        .table(Services::Table)
        .value(Services::PrimaryDeploymentId, deployment.0)
        .value(Services::TaskDefinitionId, task_definition.0.0)
        .value(Services::Family, task_definition.1)
        .value(Services::Revision, task_definition.2)
        .value(Services::UpdatedAt, now)
        .and_where(Expr::col(Services::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Services::Id).eq(id.0))
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// Renews this replica's leases and takes free or expired ones, up to
/// `share` services in all; gives back any above the share, so services
/// spread over the replicas as they come and go. Returns the services this
/// replica holds, across accounts.
pub async fn claim_leases(
    tx: &mut Tx,
    owner: Uuid,
    now: OffsetDateTime,
    until: OffsetDateTime,
    share: u64,
) -> StoreResult<Vec<(Uuid, Uuid)>> {
    #[derive(FromRow)]
    struct Claimed {
        id: Uuid,
        account_id: Uuid,
    }
    let live = || Expr::col(Services::Status).ne("INACTIVE");
    let mine = Query::update()
        .table(Services::Table)
        .value(Services::LeaseExpiresAt, until)
        .and_where(live())
        .and_where(Expr::col(Services::LeaseOwner).eq(owner))
        .returning(Query::returning().columns([Services::Id, Services::AccountId]))
        .to_owned();
    let mut held: Vec<Claimed> = tx.fetch_all(&mine).await?;
    held.sort_by_key(|c| c.id);
    let share = usize::try_from(share).unwrap_or(usize::MAX);
    if held.len() > share {
        // The newest ones go back: another replica picks them up next round.
        let extra: Vec<Uuid> = held.split_off(share).into_iter().map(|c| c.id).collect();
        let release = Query::update()
            .table(Services::Table)
            .value(Services::LeaseOwner, Option::<Uuid>::None)
            .value(Services::LeaseExpiresAt, Option::<OffsetDateTime>::None)
            .and_where(Expr::col(Services::Id).is_in(extra))
            .and_where(Expr::col(Services::LeaseOwner).eq(owner))
            .to_owned();
        tx.execute(&release).await?;
    } else if held.len() < share {
        let free = Query::select()
            .column(Services::Id)
            .from(Services::Table)
            .and_where(live())
            .and_where(Expr::col(Services::LeaseOwner).is_null().or(Expr::col(Services::LeaseExpiresAt).lt(now)))
            .order_by(Services::Id, Order::Asc)
            .limit((share - held.len()) as u64)
            .to_owned();
        // Re-checked per row under its lock: a replica that took one meanwhile keeps it.
        let take = Query::update()
            .table(Services::Table)
            .value(Services::LeaseOwner, owner)
            .value(Services::LeaseExpiresAt, until)
            .and_where(Expr::col(Services::Id).in_subquery(free))
            .and_where(live())
            .and_where(Expr::col(Services::LeaseOwner).is_null().or(Expr::col(Services::LeaseExpiresAt).lt(now)))
            .returning(Query::returning().columns([Services::Id, Services::AccountId]))
            .to_owned();
        held.extend(tx.fetch_all::<Claimed, _>(&take).await?);
    }
    Ok(held.into_iter().map(|r| (r.id, r.account_id)).collect())
}

/// Services that are not INACTIVE, in every account.
pub async fn count_live(tx: &mut Tx) -> StoreResult<i64> {
    let stmt = Query::select().from(Services::Table).and_where(Expr::col(Services::Status).ne("INACTIVE")).to_owned();
    tx.count(stmt).await
}

/// Gives up this replica's leases (on a clean shutdown), so another replica takes over at once.
pub async fn release_leases(tx: &mut Tx, owner: Uuid) -> StoreResult<u64> {
    let stmt = Query::update()
        .table(Services::Table)
        .value(Services::LeaseOwner, Option::<Uuid>::None)
        .value(Services::LeaseExpiresAt, Option::<OffsetDateTime>::None)
        .and_where(Expr::col(Services::LeaseOwner).eq(owner))
        .to_owned();
    tx.execute(&stmt).await
}

pub struct NewDeployment<'a> {
    pub id: DeploymentId,
    pub service_id: ServiceId,
    pub task_definition: (TaskDefinitionId, &'a str, i64),
    pub failure_threshold: u32,
    pub cause: &'a str,
    pub reason: Option<&'a str>,
    pub rollback_of: Option<DeploymentId>,
    pub now: OffsetDateTime,
}

pub async fn insert_deployment(tx: &mut Tx, scope: AccountScope, new: NewDeployment<'_>) -> StoreResult<()> {
    let stmt = Query::insert()
        .into_table(Deployments::Table)
        .columns(DEPLOYMENT_COLUMNS)
        .values_panic([
            new.id.0.into(),
            scope.uuid().into(),
            new.service_id.0.into(),
            new.task_definition.0.0.into(),
            new.task_definition.1.into(),
            new.task_definition.2.into(),
            DeploymentState::InProgress.as_str().into(),
            0i64.into(),
            i64::from(new.failure_threshold).into(),
            new.cause.into(),
            new.reason.map(str::to_owned).into(),
            new.rollback_of.map(|d| d.0).into(),
            new.now.into(),
            new.now.into(),
            Option::<OffsetDateTime>::None.into(),
        ])
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

fn select_deployments(scope: AccountScope, service: ServiceId) -> SelectStatement {
    Query::select()
        .columns(DEPLOYMENT_COLUMNS)
        .from(Deployments::Table)
        .and_where(Expr::col(Deployments::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Deployments::ServiceId).eq(service.0))
        .to_owned()
}

/// A service's deployments, newest first, before `before` when given.
pub async fn list_deployments(
    tx: &mut Tx,
    scope: AccountScope,
    service: ServiceId,
    before: Option<DeploymentId>,
    limit: u64,
) -> StoreResult<Vec<DeploymentRow>> {
    let mut stmt = select_deployments(scope, service);
    if let Some(before) = before {
        stmt.and_where(Expr::col(Deployments::Id).lt(before.0));
    }
    stmt.order_by(Deployments::Id, Order::Desc).limit(limit);
    tx.fetch_all(&stmt).await
}

/// Deployments of a service by id (the primary and those that still have tasks).
pub async fn deployments_by_id(
    tx: &mut Tx,
    scope: AccountScope,
    service: ServiceId,
    ids: &[DeploymentId],
) -> StoreResult<Vec<DeploymentRow>> {
    let stmt = select_deployments(scope, service)
        .and_where(Expr::col(Deployments::Id).is_in(ids.iter().map(|d| d.0)))
        .order_by(Deployments::Id, Order::Desc)
        .to_owned();
    tx.fetch_all(&stmt).await
}

/// The newest COMPLETED deployment of a service other than `except`.
pub async fn last_completed(
    tx: &mut Tx,
    scope: AccountScope,
    service: ServiceId,
    except: DeploymentId,
) -> StoreResult<Option<DeploymentRow>> {
    let stmt = select_deployments(scope, service)
        .and_where(Expr::col(Deployments::State).eq(DeploymentState::Completed.as_str()))
        .and_where(Expr::col(Deployments::Id).ne(except.0))
        .order_by(Deployments::Id, Order::Desc)
        .limit(1)
        .to_owned();
    tx.fetch_optional(&stmt).await
}

/// Ends or updates a deployment: its state, failure count and reason.
pub async fn update_deployment(
    tx: &mut Tx,
    scope: AccountScope,
    id: DeploymentId,
    state: DeploymentState,
    failed_tasks: i64,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let finished = state != DeploymentState::InProgress;
    let stmt = Query::update()
        .table(Deployments::Table)
        .value(Deployments::State, state.as_str())
        .value(Deployments::FailedTasks, failed_tasks)
        .value(Deployments::Reason, reason.map(str::to_owned))
        .value(Deployments::UpdatedAt, now)
        .value(Deployments::FinishedAt, if finished { Some(now) } else { None })
        .and_where(Expr::col(Deployments::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Deployments::Id).eq(id.0))
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}
