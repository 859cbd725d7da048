//! Task operations. Until placement lands, tasks wait in PROVISIONING.

use std::collections::{BTreeSet, HashMap};

use berth_api::capacity::{LaunchType, TaskSize};
use berth_api::hosts::{PlacementConstraint, PlacementDecision, PlacementStrategy};
use berth_api::task_definitions::{ContainerDefinition, NetworkMode};
use berth_api::tasks::{
    ContainerState, DesiredStatus, Failure, ListTasksQuery, ListTasksResponse, RunTaskRequest, RunTaskResponse,
    StopCode, StopTaskRequest, Task, TaskOverrides, TaskStatus,
};
use berth_api::{DeploymentId, HostId, ServiceId, TaskId};
use serde_json::json;

use super::paging::{self, PageRequest};
use super::{
    App, AppError, AppResult, IdempotencyRequest, Written, capacity, check_version, clusters, lifecycle, placement,
    quotas, task_definitions, validate,
};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::store::clusters::ClusterRow;
use crate::store::task_definitions::TaskDefinitionRow;
use crate::store::tasks::{NewTask, StateChange, TaskFilter, TaskRow};
use crate::store::{self, AccountScope, Tx};
use berth_api::quotas::{QuotaExceeded, QuotaName};

pub const MAX_RUN_COUNT: u32 = 10;
/// How often RunTask plans again when a chosen host changed under it.
const PLACEMENT_ATTEMPTS: usize = 8;

/// One RunTask inside the transaction its batch shares (see
/// [`super::run_task_batches`]), which holds the cluster's placement lock.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_in_tx(
    tx: &mut Tx,
    scope: AccountScope,
    principal: &Principal,
    cluster: &str,
    family: &str,
    revision: Option<i64>,
    req: &RunTaskRequest,
    defaults: &quotas::QuotaDefaults,
    sizes: &[TaskSize],
    view: &mut ClusterView,
) -> AppResult<RunTaskResponse> {
    let cluster = clusters::resolve(tx, scope, cluster).await?;
    authorize(principal, Action::RunTask, Some(&cluster.name))?;
    capacity::not_a_pool(&cluster)?;
    if view.locked != Some(cluster.cluster_id()) {
        store::clusters::lock_for_placement(tx, scope, cluster.cluster_id()).await?;
        view.locked = Some(cluster.cluster_id());
    }
    let td = task_definitions::resolve(tx, scope, family, revision).await?;
    if td.status != "ACTIVE" {
        return Err(AppError::validation(
            "task_definition",
            format!("{}:{} is INACTIVE; run an ACTIVE revision", td.family, td.revision),
        ));
    }
    let launched = launch_in_tx(
        tx,
        scope,
        defaults,
        Launch {
            cluster: &cluster,
            td: &td,
            count: req.count,
            overrides: &req.overrides,
            started_by: req.started_by.as_deref(),
            tags: &req.tags,
            strategy: &req.placement_strategy,
            constraints: &req.placement_constraints,
            queue: req.queue,
            service: None,
            only_host: None,
            launch_type: req.launch_type,
            sizes,
        },
        view,
    )
    .await?;
    if launched.tasks.is_empty()
        && let Some(refusal) = launched.quota_refusal
    {
        return Err(AppError::LimitExceeded(QuotaExceeded { requested: i64::from(req.count), ..refusal }));
    }
    let tasks =
        store::tasks::get_many(tx, scope, &launched.tasks).await?.into_iter().map(to_wire).collect::<AppResult<_>>()?;
    Ok(RunTaskResponse { tasks, failures: launched.failures })
}

/// What to start: RunTask's request, or a service scheduler's.
pub(crate) struct Launch<'a> {
    pub cluster: &'a ClusterRow,
    pub td: &'a TaskDefinitionRow,
    pub count: u32,
    pub overrides: &'a TaskOverrides,
    pub started_by: Option<&'a str>,
    pub tags: &'a berth_api::Tags,
    pub strategy: &'a [PlacementStrategy],
    pub constraints: &'a [PlacementConstraint],
    /// Keep what cannot be placed in PROVISIONING, waiting for capacity.
    pub queue: bool,
    pub service: Option<(ServiceId, DeploymentId)>,
    /// Place only on this host (a daemon service fills hosts one by one).
    pub only_host: Option<HostId>,
    pub launch_type: LaunchType,
    /// The sizes MANAGED tasks are rounded up to.
    pub sizes: &'a [TaskSize],
}

/// What launches in one transaction have read of a cluster, kept as their
/// own reservations changed it, so the next launch in the same transaction
/// (which holds the cluster's placement lock) plans without reading again.
/// The conditional reservation still checks every host against the database.
#[derive(Default)]
pub(crate) struct ClusterView {
    /// The cluster whose placement lock the transaction holds.
    pub locked: Option<berth_api::ClusterId>,
    /// The cluster's hosts as [`store::hosts::for_placement`] reads them.
    hosts: Option<Vec<store::hosts::HostRow>>,
    /// Per family: its live tasks on each host.
    group_counts: HashMap<String, HashMap<uuid::Uuid, i64>>,
}

impl ClusterView {
    /// Drops what was read (after a launch was rolled back), keeping the lock.
    pub fn forget_reads(&mut self) {
        self.hosts = None;
        self.group_counts.clear();
    }
}

/// What a launch started and what it could not.
pub(crate) struct Launched {
    /// In id order.
    pub tasks: Vec<TaskId>,
    pub failures: Vec<Failure>,
    /// Why the engine could not place each task that was not placed (not queued).
    pub unplaced: Vec<berth_placement::Unplaced>,
    /// The first quota that refused a task.
    pub quota_refusal: Option<QuotaExceeded>,
}

/// What one RunTask call takes from one host: resources, the host's port
/// list once the call's ports are added, and how many tasks it places there.
#[derive(Default)]
struct HostShare {
    cpu: u32,
    memory: u32,
    ports_used: Vec<u16>,
    tasks: u32,
}

/// Places and starts tasks inside the caller's transaction (which holds the
/// cluster's placement lock): quotas first (ECS's rule for count > 1: what
/// fits starts, the rest are failures), in plan order; then one conditional
/// reservation of all the hosts at once, so a host changed since it was read
/// makes the whole transaction fail with `Contention` and plan again.
pub(crate) async fn launch_in_tx(
    tx: &mut Tx,
    scope: AccountScope,
    defaults: &quotas::QuotaDefaults,
    launch: Launch<'_>,
    view: &mut ClusterView,
) -> AppResult<Launched> {
    let Launch {
        cluster,
        td,
        count,
        overrides,
        started_by,
        tags,
        strategy,
        constraints,
        queue,
        service,
        only_host,
        launch_type,
        sizes,
    } = launch;
    let def = &td.definition.0;
    let containers = apply_overrides(&def.container_definitions, overrides)?;
    let managed = launch_type == LaunchType::Managed;
    let (cpu, memory, requested) = if managed {
        let size = capacity::check_managed(def, &containers, strategy, constraints, sizes)?;
        let (cpu, memory) = task_resources(def.cpu, def.memory, &containers);
        (size.cpu, size.memory, Some(TaskSize { cpu, memory }))
    } else {
        let (cpu, memory) = task_resources(def.cpu, def.memory, &containers);
        (cpu, memory, None)
    };
    let states: Vec<ContainerState> = containers
        .iter()
        .map(|c| ContainerState {
            name: c.name.clone(),
            image: c.image.clone(),
            last_status: TaskStatus::Provisioning,
            exit_code: None,
            reason: None,
            essential: c.essential,
            health_status: None,
            network_bindings: Vec::new(),
            restart_count: 0,
        })
        .collect();

    let spec = placement::spec_from(strategy, constraints)?;
    // A MANAGED task takes no host ports: it is reached at its own address.
    let network_mode = if managed { NetworkMode::None } else { def.network_mode };
    let needs = placement::needs_of(cpu, memory, network_mode, &containers);
    // What this launch read of the cluster, taken out of the view and put
    // back (with this launch's reservations) only once its writes are done:
    // a launch that fails leaves nothing stale behind.
    let mut counts: Option<HashMap<uuid::Uuid, i64>> = None;
    let (mut host_rows, plan) = if managed {
        place_managed(tx, scope, &needs, count, &spec).await?
    } else {
        let mut host_rows = match view.hosts.take() {
            Some(rows) => rows,
            None => store::hosts::for_placement(tx, scope, cluster.cluster_id()).await?,
        };
        if let Some(only) = only_host {
            host_rows.retain(|h| h.id == only.0);
        }
        // Taken out even when unused: this launch adds to the family's counts.
        let cached_counts = view.group_counts.remove(&td.family);
        let family_counts = if spec.uses_group_counts() {
            match cached_counts {
                Some(c) => c,
                None => store::tasks::group_counts_by_host(tx, scope, cluster.cluster_id(), &td.family).await?,
            }
        } else {
            HashMap::new()
        };
        let hosts = placement::engine_hosts(&host_rows);
        let plan = berth_placement::place(
            &hosts,
            &placement::group_counts(&host_rows, &family_counts),
            &needs,
            count as usize,
            &spec,
            placement::seed(),
        );
        if spec.uses_group_counts() {
            counts = Some(family_counts);
        }
        (host_rows, plan)
    };
    // Gives the view back what this launch read, as it now stands; not when
    // the rows were narrowed to one host, or are a pool's.
    let keep_view = !managed && only_host.is_none();
    let give_back = |view: &mut ClusterView, rows: Vec<store::hosts::HostRow>, counts: Option<_>| {
        if keep_view {
            view.hosts = Some(rows);
            if let Some(c) = counts {
                view.group_counts.insert(td.family.clone(), c);
            }
        }
    };

    let now = store::now();
    let mut ledger = quotas::Ledger::open(tx, scope, defaults, &quotas::PLACEMENT_QUOTAS).await?;
    let launched = [(QuotaName::TasksLaunchedPerMinute, 1)];
    let placed_amounts: Vec<_> =
        launched.iter().copied().chain(quotas::placed_task(i64::from(cpu), i64::from(memory), managed)).collect();
    let queued_amounts: Vec<_> = launched.iter().copied().chain([(QuotaName::PendingTasks, 1)]).collect();
    let mut failures = Vec::new();
    let mut unplaced_tasks = Vec::new();
    let mut first_refusal = None;
    let mut admitted = Vec::with_capacity(plan.tasks.len());
    for outcome in &plan.tasks {
        let amounts = match outcome {
            Ok(_) => &placed_amounts,
            Err(_) if queue => &queued_amounts,
            Err(unplaced) => {
                let reason = unplaced.rejected.keys().next().map_or("RESOURCE:NO_HOSTS", |r| r.as_str());
                failures.push(Failure { reason: reason.to_owned(), detail: Some(unplaced.describe()) });
                unplaced_tasks.push(unplaced.clone());
                continue;
            }
        };
        match ledger.room(amounts, 1) {
            (1, _) => {
                ledger.take(amounts, 1);
                admitted.push(outcome);
            }
            (_, refusal) => {
                let refusal =
                    refusal.ok_or_else(|| AppError::Internal("a quota refused without naming itself".into()))?;
                failures.push(Failure {
                    reason: format!("QUOTA:{}", refusal.quota),
                    detail: Some(format!("limit {}, usage {}", refusal.limit, refusal.usage)),
                });
                first_refusal.get_or_insert(refusal);
            }
        }
    }
    if admitted.is_empty() {
        give_back(view, host_rows, counts);
        return Ok(Launched { tasks: Vec::new(), failures, unplaced: unplaced_tasks, quota_refusal: first_refusal });
    }
    ledger.save(tx, scope).await?;

    // Reserve every host in one conditional update, all or nothing, which
    // also numbers each host's new assignments.
    let mut per_host: std::collections::BTreeMap<usize, HostShare> = Default::default();
    for p in admitted.iter().filter_map(|o| o.as_ref().ok()) {
        let share = per_host.entry(p.host_index).or_insert_with(|| HostShare {
            ports_used: host_rows[p.host_index].ports_used.0.clone(),
            ..Default::default()
        });
        share.cpu += needs.cpu;
        share.memory += needs.memory;
        share.ports_used.extend(needs.static_ports.iter().copied().chain(p.dynamic_ports.iter().copied()));
        share.tasks += 1;
    }
    for share in per_host.values_mut() {
        share.ports_used.sort_unstable();
        share.ports_used.dedup();
    }
    let reservations: Vec<store::hosts::Reservation<'_>> = per_host
        .iter()
        .map(|(index, share)| store::hosts::Reservation {
            host: &host_rows[*index],
            cpu: share.cpu,
            memory: share.memory,
            ports_used: &share.ports_used,
            assignments: share.tasks,
        })
        .collect();
    let Some(sequence_ends) = store::hosts::reserve_many(tx, &reservations, now).await? else {
        return Err(AppError::Contention);
    };

    let spec_record = store::tasks::PlacementSpec { strategy: strategy.to_vec(), constraints: constraints.to_vec() };
    let decisions: Vec<Option<(HostId, PlacementDecision, Vec<u16>)>> = admitted
        .iter()
        .map(|outcome| {
            outcome.as_ref().ok().map(|p| {
                (
                    p.host,
                    PlacementDecision {
                        host_id: p.host,
                        strategy: strategy.to_vec(),
                        constraints: constraints.to_vec(),
                        hosts_considered: u32::try_from(host_rows.len()).unwrap_or(u32::MAX),
                        dynamic_host_ports: p.dynamic_ports.clone(),
                        decided_at: now,
                    },
                    needs.static_ports.iter().copied().chain(p.dynamic_ports.iter().copied()).collect(),
                )
            })
        })
        .collect();
    // One statement per table, not one per task: the transaction holds the
    // cluster's placement lock and, once events are appended, the account's.
    let ids: Vec<TaskId> = decisions.iter().map(|_| TaskId::generate()).collect();
    let news: Vec<NewTask<'_>> = ids
        .iter()
        .zip(&decisions)
        .map(|(id, placed)| NewTask {
            id: *id,
            cluster_id: cluster.cluster_id(),
            task_definition_id: berth_api::TaskDefinitionId(td.id),
            family: &td.family,
            revision: td.revision,
            started_by,
            overrides,
            containers: &states,
            cpu,
            memory,
            tags,
            now,
            placed: placed.as_ref().map(|(h, d, p)| (*h, d, p.as_slice())),
            queued: placed.is_none(),
            placement_spec: Some(&spec_record),
            service,
            launch_type,
            requested,
        })
        .collect();
    store::tasks::insert_many(tx, scope, &news).await?;
    let mut by_host: std::collections::BTreeMap<HostId, Vec<(TaskId, DesiredStatus)>> = Default::default();
    for (id, placed) in ids.iter().zip(&decisions) {
        if let Some((host, _, _)) = placed {
            by_host.entry(*host).or_default().push((*id, DesiredStatus::Running));
        }
    }
    store::assignments::insert_numbered(tx, scope, &by_host, &sequence_ends, now).await?;
    let events = ids
        .iter()
        .zip(&decisions)
        .map(|(id, placed)| store::events::NewEvent {
            event_type: "task.state_changed",
            resource_id: id.to_string(),
            detail: json!({"cluster": cluster.name,
                           "last_status": if placed.is_some() { "PENDING" } else { "PROVISIONING" },
                           "desired_status": "RUNNING",
                           "task_definition": format!("{}:{}", td.family, td.revision),
                           "service_id": service.map(|(s, _)| s.to_string()),
                           "launch_type": launch_type.as_str(),
                           // A MANAGED task's host is the operator's, not shown to the tenant.
                           "host_id": placed.as_ref().filter(|_| !managed).map(|p| p.0.to_string())}),
        })
        .collect();
    store::events::append_many(tx, scope, events, now).await?;

    // The rows as the reservation left them (the update bumps each version).
    let ends: std::collections::HashMap<uuid::Uuid, i64> =
        sequence_ends.iter().map(|end| (end.id, end.assignment_seq)).collect();
    for (index, share) in per_host {
        let row = &mut host_rows[index];
        row.cpu_used += i64::from(share.cpu);
        row.memory_used += i64::from(share.memory);
        row.ports_used = sqlx::types::Json(share.ports_used);
        row.version += 1;
        if let Some(end) = ends.get(&row.id) {
            row.assignment_seq = *end;
        }
        if let Some(c) = counts.as_mut() {
            *c.entry(row.id).or_default() += i64::from(share.tasks);
        }
    }
    give_back(view, host_rows, counts);
    Ok(Launched { tasks: ids, failures, unplaced: unplaced_tasks, quota_refusal: first_refusal })
}

/// Plans MANAGED tasks over the capacity pools in the operator's order:
/// the first pool that fits them all takes them; when none does, the one
/// that fits the most (the rest are failures, or queue). Each pool tried is
/// locked for placement, always in the same order, so concurrent MANAGED
/// launches of all accounts queue there rather than conflict.
pub(crate) async fn place_managed(
    tx: &mut Tx,
    scope: AccountScope,
    needs: &berth_placement::TaskNeeds,
    count: u32,
    spec: &berth_placement::Spec,
) -> AppResult<(Vec<store::hosts::HostRow>, berth_placement::Plan)> {
    let mut best: Option<(Vec<store::hosts::HostRow>, berth_placement::Plan)> = None;
    for (pool, operator) in store::clusters::pool_order(tx).await? {
        store::clusters::lock_for_placement(tx, operator, pool).await?;
        let rows = store::hosts::of_pool(tx, pool).await?;
        // Spread by host over the account's own tasks: one tenant's tasks
        // spread out, whatever other tenants run.
        let ids: Vec<uuid::Uuid> = rows.iter().map(|h| h.id).collect();
        let counts = store::tasks::account_counts_by_host(tx, scope, &ids).await?;
        let hosts = placement::engine_hosts(&rows);
        let plan = berth_placement::place(
            &hosts,
            &placement::group_counts(&rows, &counts),
            needs,
            count as usize,
            spec,
            placement::seed(),
        );
        let placed = plan.tasks.iter().filter(|t| t.is_ok()).count();
        if placed == count as usize {
            return Ok((rows, plan));
        }
        if best.as_ref().is_none_or(|(_, b)| b.tasks.iter().filter(|t| t.is_ok()).count() < placed) {
            best = Some((rows, plan));
        }
    }
    Ok(best.unwrap_or_else(|| {
        let plan = berth_placement::place(&[], &[], needs, count as usize, spec, 0);
        (Vec::new(), plan)
    }))
}

pub(crate) fn to_wire(row: TaskRow) -> AppResult<Task> {
    let launch_type = row.launch_type()?;
    let managed = launch_type == LaunchType::Managed;
    Ok(Task {
        id: row.task_id(),
        cluster_id: berth_api::ClusterId(row.cluster_id),
        task_definition_id: berth_api::TaskDefinitionId(row.task_definition_id),
        task_definition: format!("{}:{}", row.family, row.revision),
        desired_status: row.desired_status()?,
        last_status: row.last_status()?,
        stop_code: row.stop_code()?,
        host_id: row.host_id.filter(|_| !managed).map(berth_api::HostId),
        launch_type,
        requested_size: match (row.requested_cpu, row.requested_memory) {
            (Some(cpu), Some(memory)) => Some(TaskSize {
                cpu: u32::try_from(cpu).unwrap_or(u32::MAX),
                memory: u32::try_from(memory).unwrap_or(u32::MAX),
            }),
            _ => None,
        },
        cluster: row.cluster_name,
        started_by: row.started_by,
        service_id: row.service_id.map(ServiceId),
        deployment_id: row.deployment_id.map(DeploymentId),
        health_status: berth_api::tasks::HealthStatus::of_task(row.containers.0.iter().map(|c| (c, c.essential))),
        usage: row.resource_usage.map(|u| u.0),
        containers: row.containers.0,
        overrides: row.overrides.0,
        cpu: u32::try_from(row.cpu).unwrap_or(u32::MAX),
        memory: u32::try_from(row.memory).unwrap_or(u32::MAX),
        stopped_reason: row.stopped_reason,
        placement: row.placement.filter(|_| !managed).map(|p| p.0),
        tags: row.tags.0,
        created_at: row.created_at,
        pending_at: row.pending_at,
        running_at: row.running_at,
        stopping_at: row.stopping_at,
        stopped_at: row.stopped_at,
        version: row.version,
    })
}

/// The resources a task reserves: the task-level values when the definition
/// sets them, else the sum over its containers (after overrides).
fn task_resources(def_cpu: Option<u32>, def_memory: Option<u32>, containers: &[ContainerDefinition]) -> (u32, u32) {
    let cpu = def_cpu.unwrap_or_else(|| containers.iter().map(|c| c.cpu.unwrap_or(0)).sum());
    let memory =
        def_memory.unwrap_or_else(|| containers.iter().map(|c| c.memory.or(c.memory_reservation).unwrap_or(0)).sum());
    (cpu, memory)
}

/// The resources a task of this definition reserves, without overrides.
pub(crate) fn resources_of(def: &berth_api::task_definitions::RegisterTaskDefinitionRequest) -> (u32, u32) {
    task_resources(def.cpu, def.memory, &def.container_definitions)
}

/// Applies overrides to the definition's containers, checking each names a container.
pub(crate) fn apply_overrides(
    containers: &[ContainerDefinition],
    overrides: &TaskOverrides,
) -> AppResult<Vec<ContainerDefinition>> {
    let mut out = containers.to_vec();
    let mut seen = BTreeSet::new();
    for (i, o) in overrides.container_overrides.iter().enumerate() {
        let field = format!("overrides.container_overrides[{i}]");
        if !seen.insert(o.name.as_str()) {
            return Err(AppError::validation(
                format!("{field}.name"),
                format!("container {:?} is overridden twice", o.name),
            ));
        }
        let Some(c) = out.iter_mut().find(|c| c.name == o.name) else {
            return Err(AppError::validation(
                format!("{field}.name"),
                format!("the task definition has no container named {:?}", o.name),
            ));
        };
        if let Some(cmd) = &o.command {
            c.command = Some(cmd.clone());
        }
        for (k, v) in &o.environment {
            if k.is_empty() || k.contains('=') {
                return Err(AppError::validation(
                    format!("{field}.environment.{k}"),
                    "environment names must be non-empty and contain no '='",
                ));
            }
            c.environment.insert(k.clone(), v.clone());
        }
        if let Some(cpu) = o.cpu {
            if cpu > task_definitions::MAX_CPU_UNITS {
                return Err(AppError::validation(format!("{field}.cpu"), "cpu is out of range"));
            }
            c.cpu = Some(cpu);
        }
        if let Some(memory) = o.memory {
            if !(task_definitions::MIN_MEMORY_MIB..=task_definitions::MAX_MEMORY_MIB).contains(&memory) {
                return Err(AppError::validation(format!("{field}.memory"), "memory is out of range"));
            }
            c.memory = Some(memory);
        }
    }
    Ok(out)
}

/// Asks a task to stop, in the caller's transaction: a task never placed
/// stops at once (and gives back what it held); a placed one gets desired
/// status STOPPED and its host's agent is told to stop it.
pub(crate) async fn request_stop(
    tx: &mut Tx,
    scope: AccountScope,
    row: &TaskRow,
    stop_code: StopCode,
    reason: &str,
) -> AppResult<()> {
    let from = row.last_status()?;
    let to = if from == TaskStatus::Provisioning { TaskStatus::Stopped } else { from };
    if to != from && !lifecycle::can_transition(from, to) {
        return Err(AppError::InvalidTransition(format!("a {} task cannot become {}", from.as_str(), to.as_str())));
    }
    let mut containers = row.containers.0.clone();
    if to == TaskStatus::Stopped {
        for c in &mut containers {
            c.last_status = TaskStatus::Stopped;
        }
    }
    let now = store::now();
    let change = StateChange {
        desired_status: DesiredStatus::Stopped,
        last_status: to,
        containers: &containers,
        stop_code: Some(stop_code),
        stopped_reason: Some(reason),
        now,
    };
    if !store::tasks::change_state(tx, scope, row.task_id(), row.version, change).await? {
        return Err(AppError::concurrent("task"));
    }
    if to == TaskStatus::Stopped {
        super::quotas::release(tx, scope, &super::quotas::held_by(row)).await?;
    }
    if let Some(host) = row.host_id {
        store::assignments::append(tx, scope, HostId(host), row.task_id(), DesiredStatus::Stopped, now).await?;
    }
    if row.service_id.is_some() {
        tx.wake(crate::reconcilers::services::WAKE_KEY);
    }
    store::events::append(
        tx,
        scope,
        "task.state_changed",
        &row.id.to_string(),
        json!({"cluster": row.cluster_name, "last_status": to.as_str(), "desired_status": "STOPPED",
               "stop_code": stop_code.as_str(), "stopped_reason": reason}),
        now,
    )
    .await?;
    Ok(())
}

pub(crate) async fn resolve_task(tx: &mut Tx, scope: AccountScope, cluster: &str, task: &str) -> AppResult<TaskRow> {
    let cluster = clusters::resolve(tx, scope, cluster).await?;
    let id: TaskId = task.parse().map_err(|_| AppError::not_found("task", task))?;
    store::tasks::get(tx, scope, cluster.cluster_id(), id).await?.ok_or_else(|| AppError::not_found("task", task))
}

impl App {
    /// Starts `count` tasks of a task definition: places them with the
    /// engine and reserves each host's resources with a conditional update.
    /// Tasks that fit start PENDING on their host; the rest are reported in
    /// `failures[]` (or, with `queue`, wait in PROVISIONING for capacity).
    /// When another placement changed a chosen host in the meantime, the whole
    /// call is planned again against fresh state.
    pub async fn run_task(
        &self,
        principal: &Principal,
        cluster: &str,
        req: RunTaskRequest,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<RunTaskResponse>> {
        authorize(principal, Action::RunTask, None)?;
        let _slot = self.expensive_call(principal.account_id)?;
        if req.count == 0 || req.count > MAX_RUN_COUNT {
            return Err(AppError::validation("count", format!("count must be 1-{MAX_RUN_COUNT}, got {}", req.count)));
        }
        let (family, revision) = task_definitions::parse_reference("task_definition", &req.task_definition)?;
        if let Some(s) = &req.started_by {
            validate::text("started_by", s, 128)?;
        }
        validate::tags("tags", &req.tags)?;
        // Validated now so a bad spec is a 422 before anything is read.
        placement::spec_from(&req.placement_strategy, &req.placement_constraints)?;
        let exhausted = || AppError::InUse("placement kept conflicting with concurrent placements; retry".into());
        super::retry_on_contention(PLACEMENT_ATTEMPTS, exhausted, || {
            self.run_task_batches().submit(
                self,
                super::run_task_batches::RunTaskCall {
                    principal: principal.clone(),
                    cluster: cluster.to_owned(),
                    family: family.clone(),
                    revision,
                    req: req.clone(),
                    idem: idem.cloned(),
                },
            )
        })
        .await
    }

    pub async fn list_tasks(
        &self,
        principal: &Principal,
        cluster: &str,
        query: &ListTasksQuery,
    ) -> AppResult<ListTasksResponse> {
        authorize(principal, Action::ReadTask, None)?;
        let page = PageRequest::<TaskId>::parse(query.limit, query.next_token.as_deref())?;
        let scope = principal.scope();
        let mut tx = self.db().begin_read().await?;
        let cluster = clusters::resolve(&mut tx, scope, cluster).await?;
        authorize(principal, Action::ReadTask, Some(&cluster.name))?;
        let filter = TaskFilter {
            desired_status: query.desired_status,
            last_status: query.last_status,
            family: query.family.as_deref(),
            host_id: query.host_id,
            started_by: query.started_by.as_deref(),
            service_id: query.service_id,
        };
        let rows =
            store::tasks::list(&mut tx, scope, cluster.cluster_id(), &filter, page.after, page.fetch_limit()).await?;
        tx.rollback().await?;
        let (rows, next_token) = paging::finish(rows, page.limit, TaskRow::task_id);
        Ok(ListTasksResponse { tasks: rows.into_iter().map(to_wire).collect::<AppResult<_>>()?, next_token })
    }

    /// How many of the cluster's tasks are in each status, in lifecycle order.
    pub async fn count_tasks_by_status(
        &self,
        principal: &Principal,
        cluster: &str,
    ) -> AppResult<Vec<(TaskStatus, i64)>> {
        authorize(principal, Action::ReadTask, None)?;
        let scope = principal.scope();
        let mut tx = self.db().begin_read().await?;
        let cluster = clusters::resolve(&mut tx, scope, cluster).await?;
        authorize(principal, Action::ReadTask, Some(&cluster.name))?;
        let counts = store::tasks::count_by_status(&mut tx, scope, cluster.cluster_id()).await?;
        tx.rollback().await?;
        Ok(TaskStatus::ALL
            .into_iter()
            .map(|status| (status, counts.iter().find(|(s, _)| s == status.as_str()).map_or(0, |(_, n)| *n)))
            .collect())
    }

    pub async fn get_task(&self, principal: &Principal, cluster: &str, task: &str) -> AppResult<Task> {
        authorize(principal, Action::ReadTask, None)?;
        let mut tx = self.db().begin_read().await?;
        let row = resolve_task(&mut tx, principal.scope(), cluster, task).await?;
        tx.rollback().await?;
        authorize(principal, Action::ReadTask, Some(&row.cluster_name))?;
        to_wire(row)
    }

    /// Asks a task to stop. A task that was never placed stops at once; a
    /// placed one gets desired status STOPPED and its host's agent stops it.
    /// Stopping a stopped task changes nothing.
    pub async fn stop_task(
        &self,
        principal: &Principal,
        cluster: &str,
        task: &str,
        req: StopTaskRequest,
        if_match: Option<i64>,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<Task>> {
        authorize(principal, Action::StopTask, None)?;
        if let Some(reason) = &req.reason {
            validate::text("reason", reason, 255)?;
        }
        let scope = principal.scope();
        let (cluster, task, principal) = (cluster.to_owned(), task.to_owned(), principal.clone());
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let row = resolve_task(tx, scope, &cluster, &task).await?;
                authorize(&principal, Action::StopTask, Some(&row.cluster_name))?;
                check_version("task", if_match, row.version)?;
                if row.desired_status()? == DesiredStatus::Stopped {
                    return to_wire(row);
                }
                let reason = req.reason.clone().unwrap_or_else(|| "Task stopped by user".to_owned());
                request_stop(tx, scope, &row, StopCode::UserInitiated, &reason).await?;
                to_wire(resolve_task(tx, scope, &cluster, &task).await?)
            })
        })
        .await
    }
}
