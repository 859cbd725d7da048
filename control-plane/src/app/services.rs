//! Service operations: create, read, update (which may start a deployment),
//! delete. The scheduler ([`super::service_scheduler`]) does the rest.

use berth_api::capacity::LaunchType;
use berth_api::quotas::QuotaName;
use berth_api::services::{
    CreateServiceRequest, Deployment, DeploymentConfiguration, DeploymentState, ListDeploymentsResponse,
    ListServicesResponse, SchedulingStrategy, Service, ServiceStatus, UpdateServiceRequest,
};
use berth_api::tasks::StopCode;
use berth_api::{DeploymentId, Page, ServiceId, TaskDefinitionId};
use serde_json::json;

use super::paging::{self, PageRequest};
use super::service_scheduler::failure_threshold;
use super::{App, AppError, AppResult, IdempotencyRequest, Written, check_version, clusters, placement, quotas};
use super::{task_definitions, validate};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::reconcilers::services::WAKE_KEY;
use crate::store::services::{DeploymentRow, NewDeployment, NewService, ServiceRow, ServiceUpdate};
use crate::store::task_definitions::TaskDefinitionRow;
use crate::store::tasks::{PlacementSpec, TaskRow};
use crate::store::{self, AccountScope, StoreError, Tx};

pub const MAX_DESIRED_COUNT: u32 = 1000;
const MAX_MIN_HEALTHY_TIME_SECONDS: u32 = 3600;
const MAX_GRACE_PERIOD_SECONDS: u32 = 7 * 24 * 3600;

pub(crate) fn status_of(row: &ServiceRow) -> AppResult<ServiceStatus> {
    Ok(store::parse_column(&row.status, "services.status", ServiceStatus::parse)?)
}

/// Refuses a revision the service's launch type cannot run, before any task fails on it.
fn launchable(
    td: &TaskDefinitionRow,
    launch_type: LaunchType,
    strategy: &[berth_api::hosts::PlacementStrategy],
    constraints: &[berth_api::hosts::PlacementConstraint],
    sizes: &[berth_api::capacity::TaskSize],
) -> AppResult<()> {
    if launch_type == LaunchType::Managed {
        let def = &td.definition.0;
        super::capacity::check_managed(def, &def.container_definitions, strategy, constraints, sizes)?;
    }
    Ok(())
}

pub(crate) fn strategy_of(row: &ServiceRow) -> AppResult<SchedulingStrategy> {
    Ok(store::parse_column(&row.scheduling_strategy, "services.scheduling_strategy", SchedulingStrategy::parse)?)
}

fn validate_configuration(c: &DeploymentConfiguration) -> AppResult<()> {
    const F: &str = "deployment_configuration";
    if let Some(min) = c.minimum_healthy_percent
        && min > 100
    {
        return Err(AppError::validation(format!("{F}.minimum_healthy_percent"), "must be 0-100"));
    }
    if let Some(max) = c.maximum_percent
        && !(100..=400).contains(&max)
    {
        return Err(AppError::validation(format!("{F}.maximum_percent"), "must be 100-400"));
    }
    if let Some(t) = c.min_healthy_time_seconds
        && t > MAX_MIN_HEALTHY_TIME_SECONDS
    {
        return Err(AppError::validation(
            format!("{F}.min_healthy_time_seconds"),
            format!("must be 0-{MAX_MIN_HEALTHY_TIME_SECONDS}"),
        ));
    }
    if let Some(t) = c.circuit_breaker.threshold
        && !(1..=1000).contains(&t)
    {
        return Err(AppError::validation(format!("{F}.circuit_breaker.threshold"), "must be 1-1000"));
    }
    Ok(())
}

fn validate_desired(strategy: SchedulingStrategy, desired: Option<u32>) -> AppResult<u32> {
    match (strategy, desired) {
        (SchedulingStrategy::Daemon, Some(_)) => Err(AppError::validation(
            "desired_count",
            "a DAEMON service runs one task per eligible host; it takes no desired_count",
        )),
        (SchedulingStrategy::Daemon, None) => Ok(0),
        (SchedulingStrategy::Replica, Some(n)) if n > MAX_DESIRED_COUNT => {
            Err(AppError::validation("desired_count", format!("must be 0-{MAX_DESIRED_COUNT}, got {n}")))
        }
        (SchedulingStrategy::Replica, n) => Ok(n.unwrap_or(1)),
    }
}

fn validate_placement(
    strategy: SchedulingStrategy,
    strategies: &[berth_api::hosts::PlacementStrategy],
    constraints: &[berth_api::hosts::PlacementConstraint],
) -> AppResult<()> {
    if strategy == SchedulingStrategy::Daemon && !strategies.is_empty() {
        return Err(AppError::validation(
            "placement_strategy",
            "a DAEMON service places one task on every eligible host; it takes no placement strategy",
        ));
    }
    placement::spec_from(strategies, constraints).map(|_| ())
}

fn deployment_to_wire(
    d: DeploymentRow,
    primary: DeploymentId,
    tasks: &[TaskRow],
    min_healthy_time: u32,
) -> AppResult<Deployment> {
    let now = store::now();
    let mine: Vec<&TaskRow> = tasks
        .iter()
        .filter(|t| t.deployment_id == Some(d.id) && t.desired_status == "RUNNING" && t.last_status != "STOPPED")
        .collect();
    let healthy = mine.iter().filter(|t| is_healthy(t, now, min_healthy_time)).count();
    Ok(Deployment {
        id: d.deployment_id(),
        service_id: ServiceId(d.service_id),
        task_definition_id: TaskDefinitionId(d.task_definition_id),
        task_definition: format!("{}:{}", d.family, d.revision),
        state: d.state()?,
        primary: d.id == primary.0,
        running_count: mine.len() as u32,
        healthy_count: healthy as u32,
        failed_tasks: u32::try_from(d.failed_tasks).unwrap_or(u32::MAX),
        failure_threshold: u32::try_from(d.failure_threshold).unwrap_or(u32::MAX),
        trigger: d.cause,
        reason: d.reason,
        rollback_of: d.rollback_of.map(DeploymentId),
        created_at: d.created_at,
        updated_at: d.updated_at,
        finished_at: d.finished_at,
    })
}

/// Whether the scheduler counts the task as healthy: the planner's own rule.
fn is_healthy(t: &TaskRow, now: time::OffsetDateTime, min_healthy_time: u32) -> bool {
    super::service_scheduler::facts(t, &[])
        .is_ok_and(|f| f.healthy(now, std::time::Duration::from_secs(u64::from(min_healthy_time))))
}

/// The service as the API shows it: counts from its tasks, its live deployments.
async fn to_wire(tx: &mut Tx, scope: AccountScope, row: ServiceRow) -> AppResult<Service> {
    let strategy = strategy_of(&row)?;
    let config = row.deployment_configuration.0.resolved(strategy);
    let min_time = config.min_healthy_time_seconds.unwrap_or(0);
    let tasks: Vec<TaskRow> = store::tasks::for_service(tx, scope, row.service_id())
        .await?
        .into_iter()
        .filter(|t| t.last_status != "STOPPED")
        .collect();
    let counted: Vec<&TaskRow> = tasks.iter().filter(|t| t.desired_status == "RUNNING").collect();
    let now = store::now();
    let mut deployment_ids: Vec<DeploymentId> = vec![row.primary()];
    for t in &tasks {
        if let Some(d) = t.deployment_id.map(DeploymentId)
            && !deployment_ids.contains(&d)
        {
            deployment_ids.push(d);
        }
    }
    let deployments = store::services::deployments_by_id(tx, scope, row.service_id(), &deployment_ids)
        .await?
        .into_iter()
        .map(|d| deployment_to_wire(d, row.primary(), &tasks, min_time))
        .collect::<AppResult<Vec<_>>>()?;
    let launch_type = row.launch_type()?;
    Ok(Service {
        id: row.service_id(),
        cluster_id: row.cluster_id(),
        cluster: row.cluster_name,
        name: row.name,
        status: store::parse_column(&row.status, "services.status", ServiceStatus::parse)?,
        scheduling_strategy: strategy,
        launch_type,
        task_definition_id: TaskDefinitionId(row.task_definition_id),
        task_definition: format!("{}:{}", row.family, row.revision),
        desired_count: u32::try_from(row.desired_count).unwrap_or(0),
        running_count: counted.iter().filter(|t| t.last_status == "RUNNING").count() as u32,
        pending_count: counted.iter().filter(|t| t.last_status != "RUNNING").count() as u32,
        healthy_count: counted.iter().filter(|t| is_healthy(t, now, min_time)).count() as u32,
        placement_strategy: row.placement_spec.0.strategy,
        placement_constraints: row.placement_spec.0.constraints,
        deployment_configuration: config,
        health_check_grace_period_seconds: u32::try_from(row.health_check_grace_period_seconds).unwrap_or(0),
        deployments,
        events: row.recent_events.0,
        tags: row.tags.0,
        created_at: row.created_at,
        updated_at: row.updated_at,
        version: row.version,
    })
}

async fn resolve(tx: &mut Tx, scope: AccountScope, cluster: &str, service: &str) -> AppResult<ServiceRow> {
    let cluster = clusters::resolve(tx, scope, cluster).await?;
    store::services::get(tx, scope, cluster.cluster_id(), service)
        .await?
        .ok_or_else(|| AppError::not_found("service", service))
}

/// The task definition a service runs, checked usable for a new deployment.
async fn active_definition(tx: &mut Tx, scope: AccountScope, reference: &str) -> AppResult<TaskDefinitionRow> {
    let (family, revision) = task_definitions::parse_reference("task_definition", reference)?;
    let td = task_definitions::resolve(tx, scope, &family, revision).await?;
    if td.status != "ACTIVE" {
        return Err(AppError::validation(
            "task_definition",
            format!("{}:{} is INACTIVE; deploy an ACTIVE revision", td.family, td.revision),
        ));
    }
    Ok(td)
}

/// Registers a new revision of `base` with the container changes applied.
async fn register_changed(
    tx: &mut Tx,
    scope: AccountScope,
    app: &App,
    base: &TaskDefinitionRow,
    changes: &[berth_api::services::ContainerChange],
) -> AppResult<(TaskDefinitionRow, String)> {
    let mut def = base.definition.0.clone();
    let mut described = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, change) in changes.iter().enumerate() {
        let field = format!("container_changes[{i}]");
        if !seen.insert(change.name.as_str()) {
            return Err(AppError::validation(
                format!("{field}.name"),
                format!("container {:?} is changed twice", change.name),
            ));
        }
        let Some(c) = def.container_definitions.iter_mut().find(|c| c.name == change.name) else {
            return Err(AppError::validation(
                format!("{field}.name"),
                format!("{}:{} has no container named {:?}", base.family, base.revision, change.name),
            ));
        };
        if change.image.is_none() && change.environment.is_empty() {
            return Err(AppError::validation(field, "a container change sets an image or environment variables"));
        }
        if let Some(image) = &change.image {
            described.push(format!("{} image {} -> {}", c.name, c.image, image));
            c.image = image.clone();
        }
        for (k, v) in &change.environment {
            match v {
                Some(v) => {
                    c.environment.insert(k.clone(), v.clone());
                    described.push(format!("{} env {k} set", c.name));
                }
                None => {
                    c.environment.remove(k);
                    described.push(format!("{} env {k} removed", c.name));
                }
            }
        }
    }
    def.client_token = None;
    // The changed definition is validated like any registration, with errors
    // pointing at the change that made it invalid.
    task_definitions::validate_definition(&def, app.limits()).map_err(|e| match e {
        AppError::Validation { message, .. } => AppError::validation("container_changes", message),
        other => other,
    })?;
    let row = task_definitions::register_in_tx(tx, scope, app.quota_defaults(), &def).await?;
    let text = format!(
        "registered {}:{} from {}:{} ({})",
        row.family,
        row.revision,
        base.family,
        base.revision,
        described.join(", ")
    );
    Ok((row, text))
}

impl App {
    pub async fn create_service(
        &self,
        principal: &Principal,
        cluster: &str,
        req: CreateServiceRequest,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<Service>> {
        authorize(principal, Action::CreateService, None)?;
        validate::name("name", &req.name)?;
        validate::tags("tags", &req.tags)?;
        let desired = validate_desired(req.scheduling_strategy, req.desired_count)?;
        validate_placement(req.scheduling_strategy, &req.placement_strategy, &req.placement_constraints)?;
        if req.launch_type == LaunchType::Managed && req.scheduling_strategy == SchedulingStrategy::Daemon {
            return Err(AppError::validation(
                "scheduling_strategy",
                "a MANAGED service is a REPLICA service: DAEMON places one task on each of the cluster's own hosts",
            ));
        }
        let config = req.deployment_configuration.unwrap_or_default();
        validate_configuration(&config)?;
        if req.health_check_grace_period_seconds > MAX_GRACE_PERIOD_SECONDS {
            return Err(AppError::validation(
                "health_check_grace_period_seconds",
                format!("must be 0-{MAX_GRACE_PERIOD_SECONDS}"),
            ));
        }
        task_definitions::parse_reference("task_definition", &req.task_definition)?;
        let scope = principal.scope();
        let defaults = self.quota_defaults().clone();
        let sizes = self.managed_task_sizes().to_vec();
        let (cluster, principal) = (cluster.to_owned(), principal.clone());
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let cluster = clusters::resolve(tx, scope, &cluster).await?;
                authorize(&principal, Action::CreateService, Some(&cluster.name))?;
                super::capacity::not_a_pool(&cluster)?;
                let td = active_definition(tx, scope, &req.task_definition).await?;
                launchable(&td, req.launch_type, &req.placement_strategy, &req.placement_constraints, &sizes)?;
                quotas::require(tx, scope, &defaults, &[(QuotaName::Services, 1)]).await?;
                let now = store::now();
                let id = ServiceId::generate();
                let deployment = DeploymentId::generate();
                let td_ref = (TaskDefinitionId(td.id), td.family.as_str(), td.revision);
                let spec = PlacementSpec {
                    strategy: req.placement_strategy.clone(),
                    constraints: req.placement_constraints.clone(),
                };
                let inserted = store::services::insert(
                    tx,
                    scope,
                    NewService {
                        id,
                        cluster_id: cluster.cluster_id(),
                        name: &req.name,
                        scheduling_strategy: req.scheduling_strategy.as_str(),
                        task_definition: td_ref,
                        desired_count: desired,
                        placement_spec: &spec,
                        deployment_configuration: &config,
                        health_check_grace_period_seconds: req.health_check_grace_period_seconds,
                        tags: &req.tags,
                        primary_deployment_id: deployment,
                        now,
                        launch_type: req.launch_type.as_str(),
                    },
                )
                .await;
                match inserted {
                    Err(StoreError::UniqueViolation(_)) => {
                        return Err(AppError::AlreadyExists { kind: "service", name: req.name.clone(), field: "name" });
                    }
                    other => other?,
                }
                store::services::insert_deployment(
                    tx,
                    scope,
                    NewDeployment {
                        id: deployment,
                        service_id: id,
                        task_definition: td_ref,
                        failure_threshold: failure_threshold(config.circuit_breaker.threshold, desired),
                        cause: "created",
                        reason: None,
                        rollback_of: None,
                        now,
                    },
                )
                .await?;
                store::events::append(
                    tx,
                    scope,
                    "service.created",
                    &id.to_string(),
                    json!({"cluster": cluster.name, "name": req.name,
                           "task_definition": format!("{}:{}", td.family, td.revision), "desired_count": desired}),
                    now,
                )
                .await?;
                tx.wake(WAKE_KEY);
                let row = resolve(tx, scope, &cluster.id.to_string(), &id.to_string()).await?;
                to_wire(tx, scope, row).await
            })
        })
        .await
    }

    pub async fn list_services(
        &self,
        principal: &Principal,
        cluster: &str,
        page: &Page,
    ) -> AppResult<ListServicesResponse> {
        authorize(principal, Action::ReadService, None)?;
        let page = PageRequest::<ServiceId>::parse(page.limit, page.next_token.as_deref())?;
        let scope = principal.scope();
        let mut tx = self.db().begin_read().await?;
        let cluster = clusters::resolve(&mut tx, scope, cluster).await?;
        authorize(principal, Action::ReadService, Some(&cluster.name))?;
        let rows = store::services::list(&mut tx, scope, cluster.cluster_id(), page.after, page.fetch_limit()).await?;
        let (rows, next_token) = paging::finish(rows, page.limit, ServiceRow::service_id);
        let mut services = Vec::with_capacity(rows.len());
        for row in rows {
            services.push(to_wire(&mut tx, scope, row).await?);
        }
        tx.rollback().await?;
        Ok(ListServicesResponse { services, next_token })
    }

    pub async fn get_service(&self, principal: &Principal, cluster: &str, service: &str) -> AppResult<Service> {
        authorize(principal, Action::ReadService, None)?;
        let scope = principal.scope();
        let mut tx = self.db().begin_read().await?;
        let row = resolve(&mut tx, scope, cluster, service).await?;
        authorize(principal, Action::ReadService, Some(&row.cluster_name))?;
        let service = to_wire(&mut tx, scope, row).await?;
        tx.rollback().await?;
        Ok(service)
    }

    pub async fn list_deployments(
        &self,
        principal: &Principal,
        cluster: &str,
        service: &str,
        page: &Page,
    ) -> AppResult<ListDeploymentsResponse> {
        authorize(principal, Action::ReadService, None)?;
        let page = PageRequest::<DeploymentId>::parse(page.limit, page.next_token.as_deref())?;
        let scope = principal.scope();
        let mut tx = self.db().begin_read().await?;
        let row = resolve(&mut tx, scope, cluster, service).await?;
        authorize(principal, Action::ReadService, Some(&row.cluster_name))?;
        let min_time =
            row.deployment_configuration.0.resolved(strategy_of(&row)?).min_healthy_time_seconds.unwrap_or(0);
        let tasks = store::tasks::for_service(&mut tx, scope, row.service_id()).await?;
        let rows =
            store::services::list_deployments(&mut tx, scope, row.service_id(), page.after, page.fetch_limit()).await?;
        tx.rollback().await?;
        let (rows, next_token) = paging::finish(rows, page.limit, DeploymentRow::deployment_id);
        let deployments = rows
            .into_iter()
            .map(|d| deployment_to_wire(d, row.primary(), &tasks, min_time))
            .collect::<AppResult<_>>()?;
        Ok(ListDeploymentsResponse { deployments, next_token })
    }

    /// Changes a service. A new task definition, container changes or
    /// `force_new_deployment` start a deployment; the rest applies to the
    /// current one.
    pub async fn update_service(
        &self,
        principal: &Principal,
        cluster: &str,
        service: &str,
        if_match: Option<i64>,
        req: UpdateServiceRequest,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<Service>> {
        authorize(principal, Action::UpdateService, None)?;
        if let Some(tags) = &req.tags {
            validate::tags("tags", tags)?;
        }
        if let Some(c) = &req.deployment_configuration {
            validate_configuration(c)?;
        }
        if let Some(r) = &req.task_definition {
            task_definitions::parse_reference("task_definition", r)?;
        }
        if let Some(g) = req.health_check_grace_period_seconds
            && g > MAX_GRACE_PERIOD_SECONDS
        {
            return Err(AppError::validation(
                "health_check_grace_period_seconds",
                format!("must be 0-{MAX_GRACE_PERIOD_SECONDS}"),
            ));
        }
        let scope = principal.scope();
        let (cluster, service, principal, app) =
            (cluster.to_owned(), service.to_owned(), principal.clone(), self.clone());
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let found = resolve(tx, scope, &cluster, &service).await?;
                authorize(&principal, Action::UpdateService, Some(&found.cluster_name))?;
                // Taken in the order the scheduler takes it, so the two serialize.
                let row = store::services::lock(tx, scope, found.service_id())
                    .await?
                    .ok_or_else(|| AppError::not_found("service", &service))?;
                check_version("service", if_match, row.version)?;
                if status_of(&row)? != ServiceStatus::Active {
                    return Err(AppError::InUse(format!("service {:?} is being deleted", row.name)));
                }
                let strategy = strategy_of(&row)?;
                let desired = match req.desired_count {
                    Some(n) => validate_desired(strategy, Some(n))?,
                    None => u32::try_from(row.desired_count).unwrap_or(0),
                };
                let placement_strategy = req.placement_strategy.clone().unwrap_or(row.placement_spec.0.strategy.clone());
                let placement_constraints =
                    req.placement_constraints.clone().unwrap_or(row.placement_spec.0.constraints.clone());
                validate_placement(strategy, &placement_strategy, &placement_constraints)?;
                let config = req.deployment_configuration.unwrap_or(row.deployment_configuration.0);
                let now = store::now();

                // Which revision, and whether a deployment starts.
                let mut td = match &req.task_definition {
                    Some(r) => active_definition(tx, scope, r).await?,
                    None => store::task_definitions::get_by_id(tx, scope, TaskDefinitionId(row.task_definition_id))
                        .await?
                        .ok_or_else(|| AppError::Internal(format!("service {} lost its task definition", row.id)))?,
                };
                let mut cause = None;
                let mut reason = None;
                if td.id != row.task_definition_id {
                    cause = Some("task_definition");
                    reason = Some(format!("{}:{} -> {}:{}", row.family, row.revision, td.family, td.revision));
                }
                if !req.container_changes.is_empty() {
                    let (changed, text) = register_changed(tx, scope, &app, &td, &req.container_changes).await?;
                    td = changed;
                    cause = Some("container_changes");
                    reason = Some(text);
                }
                let launch_type = row.launch_type()?;
                launchable(&td, launch_type, &placement_strategy, &placement_constraints, app.managed_task_sizes())?;
                if cause.is_none() && req.force_new_deployment {
                    cause = Some("force_new_deployment");
                    reason = Some("every task replaced with a new one of the same revision".into());
                }
                let mut primary = row.primary();
                if let Some(cause) = cause {
                    let previous = store::services::deployments_by_id(tx, scope, row.service_id(), &[primary]).await?;
                    if let Some(p) = previous.first()
                        && p.state()? == DeploymentState::InProgress
                    {
                        let why = "replaced by a newer deployment before it completed";
                        store::services::update_deployment(tx, scope, primary, DeploymentState::Stopped, p.failed_tasks, Some(why), now)
                            .await?;
                    }
                    primary = DeploymentId::generate();
                    store::services::insert_deployment(
                        tx,
                        scope,
                        NewDeployment {
                            id: primary,
                            service_id: row.service_id(),
                            task_definition: (TaskDefinitionId(td.id), td.family.as_str(), td.revision),
                            failure_threshold: failure_threshold(config.circuit_breaker.threshold, desired),
                            cause,
                            reason: reason.as_deref(),
                            rollback_of: None,
                            now,
                        },
                    )
                    .await?;
                }
                let spec = PlacementSpec { strategy: placement_strategy, constraints: placement_constraints };
                let tags = req.tags.clone().unwrap_or(row.tags.0.clone());
                let updated = store::services::update(
                    tx,
                    scope,
                    row.service_id(),
                    row.version,
                    ServiceUpdate {
                        status: ServiceStatus::Active.as_str(),
                        task_definition: (TaskDefinitionId(td.id), td.family.as_str(), td.revision),
                        desired_count: desired,
                        placement_spec: &spec,
                        deployment_configuration: &config,
                        health_check_grace_period_seconds: req
                            .health_check_grace_period_seconds
                            .unwrap_or(u32::try_from(row.health_check_grace_period_seconds).unwrap_or(0)),
                        tags: &tags,
                        primary_deployment_id: primary,
                        now,
                    },
                )
                .await?;
                if !updated {
                    return Err(AppError::concurrent("service"));
                }
                // A new desired count resets the crash-loop backoff: the user asked for it.
                if req.desired_count.is_some() || cause.is_some() {
                    store::services::save_scheduler_state(
                        tx,
                        scope,
                        row.service_id(),
                        store::services::SchedulerState {
                            status: ServiceStatus::Active.as_str(),
                            desired_count: desired,
                            failure_streak: 0,
                            next_launch_at: None,
                            recent_events: &row.recent_events.0,
                        },
                    )
                    .await?;
                }
                store::events::append(
                    tx,
                    scope,
                    "service.updated",
                    &row.id.to_string(),
                    json!({"cluster": row.cluster_name, "name": row.name, "desired_count": desired,
                           "task_definition": format!("{}:{}", td.family, td.revision),
                           "deployment": cause.map(|c| json!({"id": primary.to_string(), "trigger": c, "reason": reason}))}),
                    now,
                )
                .await?;
                tx.wake(WAKE_KEY);
                let row = resolve(tx, scope, &row.cluster_id.to_string(), &row.id.to_string()).await?;
                to_wire(tx, scope, row).await
            })
        })
        .await
    }

    /// Deletes a service: it scales to zero and becomes INACTIVE when its
    /// last task stopped; with `force`, its tasks are told to stop and it is
    /// INACTIVE at once.
    pub async fn delete_service(
        &self,
        principal: &Principal,
        cluster: &str,
        service: &str,
        force: bool,
        if_match: Option<i64>,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<Service>> {
        authorize(principal, Action::DeleteService, None)?;
        let scope = principal.scope();
        let (cluster, service, principal) = (cluster.to_owned(), service.to_owned(), principal.clone());
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let found = resolve(tx, scope, &cluster, &service).await?;
                authorize(&principal, Action::DeleteService, Some(&found.cluster_name))?;
                let row = store::services::lock(tx, scope, found.service_id())
                    .await?
                    .ok_or_else(|| AppError::not_found("service", &service))?;
                check_version("service", if_match, row.version)?;
                let status = status_of(&row)?;
                if status == ServiceStatus::Inactive || (status == ServiceStatus::Draining && !force) {
                    return to_wire(tx, scope, row).await;
                }
                let now = store::now();
                let mut new_status = ServiceStatus::Draining;
                if force {
                    let tasks = store::tasks::for_service(tx, scope, row.service_id()).await?;
                    for t in tasks.iter().filter(|t| t.last_status != "STOPPED" && t.desired_status == "RUNNING") {
                        super::tasks::request_stop(
                            tx,
                            scope,
                            t,
                            StopCode::ServiceSchedulerInitiated,
                            "The service was deleted",
                        )
                        .await?;
                    }
                    new_status = ServiceStatus::Inactive;
                    quotas::release(tx, scope, &[(QuotaName::Services, 1)]).await?;
                }
                store::services::save_scheduler_state(
                    tx,
                    scope,
                    row.service_id(),
                    store::services::SchedulerState {
                        status: new_status.as_str(),
                        desired_count: 0,
                        failure_streak: 0,
                        next_launch_at: None,
                        recent_events: &row.recent_events.0,
                    },
                )
                .await?;
                let event = if force { "service.deleted" } else { "service.draining" };
                store::events::append(
                    tx,
                    scope,
                    event,
                    &row.id.to_string(),
                    json!({"cluster": row.cluster_name, "name": row.name, "force": force}),
                    now,
                )
                .await?;
                tx.wake(WAKE_KEY);
                let row = store::services::get(tx, scope, row.cluster_id(), &row.id.to_string())
                    .await?
                    .ok_or_else(|| AppError::not_found("service", &service))?;
                to_wire(tx, scope, row).await
            })
        })
        .await
    }
}
