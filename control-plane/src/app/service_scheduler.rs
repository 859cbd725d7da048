//! One pass of a service's scheduler: read the service and its tasks, account
//! for tasks that stopped, trip the circuit breaker, ask the pure planner
//! ([`crate::reconcilers::service_plan`]) what to do, and do it, all in one
//! transaction that holds the service's row lock and re-checks this
//! replica's lease. A replica that lost its lease (paused, or too slow)
//! changes nothing; a crash mid-pass rolls the whole pass back.

use std::time::Duration;

use berth_api::services::{DeploymentState, SchedulingStrategy, ServiceEvent, ServiceStatus};
use berth_api::tasks::StopCode;
use berth_api::{DeploymentId, HostId, ServiceId, TaskDefinitionId};
use serde_json::json;
use time::OffsetDateTime;

use super::tasks::{ClusterView, Launch, launch_in_tx, request_stop};
use super::{App, AppError, AppResult, placement};
use crate::reconcilers::service_plan::{self, DaemonHost, ServiceSpec, StopWhy, TaskFacts};
use crate::store::services::{DeploymentRow, ServiceRow};
use crate::store::tasks::TaskRow;
use crate::store::{self, AccountScope, Tx};

/// Timings of the service scheduler.
#[derive(Clone, Debug)]
pub struct ServiceSchedulerSettings {
    /// How often each replica reconciles the services it holds, besides on events.
    pub interval: Duration,
    /// How long a replica's claim on a service lasts without renewal: the
    /// longest a service waits for another replica after its holder died.
    pub lease: Duration,
    /// The first wait after a service's task failed; it doubles with every
    /// failure in a row, up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for ServiceSchedulerSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            lease: Duration::from_secs(10),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
        }
    }
}

/// The most recent scheduler messages a service keeps on itself.
const RECENT_EVENTS: usize = 20;
/// The same message again within this long is not repeated.
const REPEAT_AFTER: time::Duration = time::Duration::minutes(5);

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassOutcome {
    pub started: u32,
    pub stopped: u32,
    /// Another replica holds the service now: nothing was done.
    pub not_ours: bool,
}

/// The circuit breaker's threshold: as configured, else half the desired
/// count clamped to 10..=200 (ECS's rule).
pub fn failure_threshold(configured: Option<u32>, desired: u32) -> u32 {
    configured.unwrap_or_else(|| desired.div_ceil(2).clamp(10, 200)).max(1)
}

fn seconds(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// Messages for the service and the account's event log, collected during a pass.
struct Messages<'a> {
    row: &'a ServiceRow,
    recent: Vec<ServiceEvent>,
    new: Vec<String>,
    now: OffsetDateTime,
}

impl<'a> Messages<'a> {
    fn new(row: &'a ServiceRow, now: OffsetDateTime) -> Self {
        Self { row, recent: row.recent_events.0.clone(), new: Vec::new(), now }
    }

    fn say(&mut self, message: String) {
        let repeated = self.recent.iter().any(|e| e.message == message && self.now - e.at < REPEAT_AFTER);
        if repeated {
            return;
        }
        self.recent.insert(0, ServiceEvent { at: self.now, message: message.clone() });
        self.recent.truncate(RECENT_EVENTS);
        self.new.push(message);
    }

    fn latest_is(&self, message: &str) -> bool {
        self.recent.first().is_some_and(|e| e.message == message)
    }

    async fn append(&self, tx: &mut Tx, scope: AccountScope) -> AppResult<()> {
        let events = self
            .new
            .iter()
            .map(|m| store::events::NewEvent {
                event_type: "service.event",
                resource_id: self.row.id.to_string(),
                detail: json!({"cluster": self.row.cluster_name, "service": self.row.name, "message": m}),
            })
            .collect();
        store::events::append_many(tx, scope, events, self.now).await?;
        Ok(())
    }
}

/// What the planner knows of a task; `draining` lists the hosts being drained.
pub(crate) fn facts(t: &TaskRow, draining: &[uuid::Uuid]) -> AppResult<TaskFacts> {
    Ok(TaskFacts {
        id: t.task_id(),
        deployment: t.deployment_id.map(DeploymentId),
        status: t.last_status()?,
        desired_running: t.desired_status()? == berth_api::tasks::DesiredStatus::Running,
        host: t.host_id.map(HostId),
        host_draining: t.host_id.is_some_and(|h| draining.contains(&h)),
        running_at: t.running_at,
        health: berth_api::tasks::HealthStatus::of_task(t.containers.0.iter().map(|c| (c, c.essential))),
        created_at: t.created_at,
    })
}

/// Whether a stopped task had counted as healthy before it stopped.
fn was_healthy(t: &TaskRow, min_healthy_time: Duration) -> bool {
    match (t.running_at, t.stopped_at) {
        (Some(r), Some(s)) => Duration::try_from(s - r).unwrap_or(Duration::ZERO) >= min_healthy_time,
        _ => false,
    }
}

impl App {
    pub fn service_scheduler_settings(&self) -> &ServiceSchedulerSettings {
        &self.agent_settings().services
    }

    /// Claims the leases of services that are free or expired, renews this
    /// replica's, and returns the services this replica holds.
    pub async fn claim_service_leases(&self) -> AppResult<Vec<(AccountScope, ServiceId)>> {
        let now = store::now();
        let lease =
            time::Duration::try_from(self.service_scheduler_settings().lease).unwrap_or(time::Duration::seconds(10));
        let mut tx = self.db().begin_write().await?;
        // An even share for each live replica (rounded up), so a new replica
        // takes over part of the work and a departed one's is spread out.
        let replicas =
            store::rate_limits::live_replicas(&mut tx, now - super::rate_limits::REPLICA_ALIVE_WITHIN).await?;
        let services = store::services::count_live(&mut tx).await?;
        let share = u64::try_from(services).unwrap_or(0).div_ceil(u64::try_from(replicas).unwrap_or(1).max(1));
        let held = store::services::claim_leases(&mut tx, self.replica_id(), now, now + lease, share).await?;
        tx.commit().await?;
        Ok(held
            .into_iter()
            .map(|(id, account)| (AccountScope::new(berth_api::AccountId(account)), ServiceId(id)))
            .collect())
    }

    /// Gives up this replica's leases, so another replica takes over at once.
    pub async fn release_service_leases(&self) -> AppResult<u64> {
        let mut tx = self.db().begin_write().await?;
        let n = store::services::release_leases(&mut tx, self.replica_id()).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// One reconciling pass over one service (see the module documentation).
    pub async fn reconcile_service(&self, scope: AccountScope, id: ServiceId) -> AppResult<PassOutcome> {
        let mut tx = self.db().begin_write().await?;
        let outcome = self.reconcile_in_tx(&mut tx, scope, id).await;
        match outcome {
            Ok(o) if !o.not_ours => {
                tx.commit().await?;
                Ok(o)
            }
            other => {
                tx.rollback().await?;
                other
            }
        }
    }

    async fn reconcile_in_tx(&self, tx: &mut Tx, scope: AccountScope, id: ServiceId) -> AppResult<PassOutcome> {
        let now = store::now();
        let Some(row) = store::services::lock(tx, scope, id).await? else {
            return Ok(PassOutcome { not_ours: true, ..Default::default() });
        };
        // The fence: only the lease holder acts, and the row lock keeps a
        // new holder from taking over until this transaction ends.
        let ours = row.lease_owner == Some(self.replica_id()) && row.lease_expires_at.is_some_and(|t| t > now);
        let status = super::services::status_of(&row)?;
        if !ours || status == ServiceStatus::Inactive {
            return Ok(PassOutcome { not_ours: true, ..Default::default() });
        }
        let strategy = super::services::strategy_of(&row)?;
        let config = row.deployment_configuration.0.resolved(strategy);
        let min_healthy_time = seconds(config.min_healthy_time_seconds.unwrap_or(0));
        let cluster = store::clusters::get_by_id(tx, scope, row.cluster_id())
            .await?
            .ok_or_else(|| AppError::Internal(format!("service {} lost its cluster", row.id)))?;
        store::clusters::lock_for_placement(tx, scope, cluster.cluster_id()).await?;
        let mut tasks = store::tasks::for_service(tx, scope, id).await?;
        let mut messages = Messages::new(&row, now);
        let mut streak = row.failure_streak;
        let mut next_launch_at = row.next_launch_at;
        let mut primary = row.primary();
        let mut primary_deployment = store::services::deployments_by_id(tx, scope, id, &[primary])
            .await?
            .pop()
            .ok_or_else(|| AppError::Internal(format!("service {} lost its primary deployment", row.id)))?;
        let mut failed_in_primary = primary_deployment.failed_tasks;

        // Account for every stop once: failures feed the backoff and the circuit breaker.
        let mut counted = Vec::new();
        let mut failures = 0i64;
        for t in tasks.iter().filter(|t| t.last_status == "STOPPED" && !t.service_counted) {
            counted.push(t.task_id());
            let code = t.stop_code()?;
            if !matches!(code, Some(StopCode::TaskFailedToStart | StopCode::EssentialContainerExited)) {
                continue;
            }
            failures += 1;
            if t.deployment_id == Some(primary.0) && !was_healthy(t, min_healthy_time) {
                failed_in_primary += 1;
            }
            messages.say(format!(
                "task {} stopped: {}{}",
                t.id,
                code.map_or("", |c| c.as_str()),
                t.stopped_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
            ));
        }
        store::tasks::mark_counted(tx, scope, &counted).await?;

        // The circuit breaker.
        let breaker = config.circuit_breaker;
        if primary_deployment.state()? == DeploymentState::InProgress
            && breaker.enable
            && failed_in_primary >= primary_deployment.failure_threshold
        {
            let tripped = primary;
            let rollback_to =
                if breaker.rollback { store::services::last_completed(tx, scope, id, primary).await? } else { None };
            let failed_text = format!(
                "{failed_in_primary} task(s) of {}:{} failed to start or to become healthy",
                primary_deployment.family, primary_deployment.revision
            );
            match rollback_to {
                Some(target) => {
                    let reason = format!("{failed_text}; rolled back to {}:{}", target.family, target.revision);
                    store::services::update_deployment(
                        tx,
                        scope,
                        primary,
                        DeploymentState::RolledBack,
                        failed_in_primary,
                        Some(&reason),
                        now,
                    )
                    .await?;
                    let rollback = self
                        .start_rollback(tx, scope, &row, &primary_deployment, &target, failed_in_primary, now)
                        .await?;
                    messages.say(format!("deployment {primary} rolled back: {reason}"));
                    primary = rollback.deployment_id();
                    primary_deployment = rollback;
                    // Re-read: the adopted tasks now belong to the rollback.
                    tasks = store::tasks::for_service(tx, scope, id).await?;
                    failed_in_primary = 0;
                    streak = 0;
                    next_launch_at = None;
                }
                None => {
                    let reason = if breaker.rollback {
                        format!("{failed_text}; no earlier deployment completed, so there is nothing to roll back to")
                    } else {
                        failed_text
                    };
                    store::services::update_deployment(
                        tx,
                        scope,
                        primary,
                        DeploymentState::Failed,
                        failed_in_primary,
                        Some(&reason),
                        now,
                    )
                    .await?;
                    messages.say(format!("deployment {primary} failed: {reason}"));
                    primary_deployment.state = DeploymentState::Failed.as_str().to_owned();
                    primary_deployment.failed_tasks = failed_in_primary;
                }
            }
            self.deployment_event(tx, scope, &row, tripped, now).await?;
            if primary != tripped {
                self.deployment_event(tx, scope, &row, primary, now).await?;
            }
        }
        if failures > 0 {
            streak += failures;
            let base = self.service_scheduler_settings().backoff_base;
            let cap = self.service_scheduler_settings().backoff_cap;
            let exp = u32::try_from(streak - 1).unwrap_or(u32::MAX).min(20);
            let wait = base.saturating_mul(1u32 << exp).min(cap);
            next_launch_at = Some(now + time::Duration::try_from(wait).unwrap_or(time::Duration::minutes(5)));
            messages.say(format!(
                "{streak} task failure(s) in a row: waiting {}s before launching replacements",
                wait.as_secs()
            ));
        }

        // The plan.
        let hosts = store::hosts::for_placement(tx, scope, cluster.cluster_id()).await?;
        let mut draining: Vec<uuid::Uuid> = hosts.iter().filter(|h| h.status == "DRAINING").map(|h| h.id).collect();
        let launch_type = row.launch_type()?;
        if launch_type == berth_api::capacity::LaunchType::Managed {
            // The operator draining a pool's host moves MANAGED service tasks off it too.
            draining.extend(store::hosts::draining_shared(tx).await?);
        }
        let live: Vec<&TaskRow> = tasks.iter().filter(|t| t.last_status != "STOPPED").collect();
        let facts = live.iter().map(|t| facts(t, &draining)).collect::<AppResult<Vec<_>>>()?;
        let daemon_hosts = match strategy {
            SchedulingStrategy::Daemon => {
                let member_of: Vec<berth_placement::Expr> =
                    placement::spec_from(&row.placement_spec.0.strategy, &row.placement_spec.0.constraints)?
                        .constraints
                        .into_iter()
                        .filter_map(|c| match c {
                            berth_placement::Constraint::MemberOf(e) => Some(e),
                            _ => None,
                        })
                        .collect();
                hosts
                    .iter()
                    .map(|h| {
                        let mut attrs = h.attributes.0.clone();
                        attrs.insert("host.id".into(), h.id.to_string());
                        DaemonHost {
                            id: h.host_id(),
                            eligible: matches!(h.status.as_str(), "ACTIVE" | "DISCONNECTED")
                                && member_of.iter().all(|e| e.matches(&attrs)),
                            draining: h.status == "DRAINING",
                        }
                    })
                    .collect()
            }
            SchedulingStrategy::Replica => Vec::new(),
        };
        let desired = match (status, strategy) {
            (ServiceStatus::Draining, _) => 0,
            (_, SchedulingStrategy::Daemon) => daemon_hosts.iter().filter(|h| h.eligible && !h.draining).count() as u32,
            (_, SchedulingStrategy::Replica) => u32::try_from(row.desired_count).unwrap_or(0),
        };
        let spec = ServiceSpec {
            desired,
            minimum_healthy_percent: config.minimum_healthy_percent.unwrap_or(100),
            maximum_percent: config.maximum_percent.unwrap_or(200),
            min_healthy_time,
            grace: seconds(u32::try_from(row.health_check_grace_period_seconds).unwrap_or(0)),
            primary,
            launch_allowed: next_launch_at.is_none_or(|t| now >= t),
        };
        let plan = match strategy {
            SchedulingStrategy::Replica => service_plan::plan_replica(&spec, &facts, now),
            SchedulingStrategy::Daemon => service_plan::plan_daemon(&spec, &daemon_hosts, &facts, now),
        };

        // Stops.
        let mut outcome = PassOutcome::default();
        for (task, why) in &plan.stops {
            let Some(t) = live.iter().find(|t| t.task_id() == *task) else { continue };
            request_stop(tx, scope, t, why.stop_code(), why.reason()).await?;
            outcome.stopped += 1;
            if *why == StopWhy::FailedHealthChecks {
                // Counted here, not when the stop is reported: it is the scheduler's stop.
                streak += 1;
                if t.deployment_id == Some(primary.0) && primary_deployment.state()? == DeploymentState::InProgress {
                    failed_in_primary += 1;
                }
            }
        }
        let mut stopped_by_why: Vec<(StopWhy, u32)> = Vec::new();
        for (_, why) in &plan.stops {
            match stopped_by_why.iter_mut().find(|(w, _)| w == why) {
                Some((_, n)) => *n += 1,
                None => stopped_by_why.push((*why, 1)),
            }
        }
        for (why, n) in stopped_by_why {
            messages.say(format!("stopped {n} task(s): {}", why.reason()));
        }

        // Starts.
        let targets: Vec<Option<HostId>> = match strategy {
            SchedulingStrategy::Replica if plan.start > 0 => vec![None],
            SchedulingStrategy::Replica => Vec::new(),
            SchedulingStrategy::Daemon => plan.start_on.iter().map(|h| Some(*h)).collect(),
        };
        if !targets.is_empty() {
            let td =
                store::task_definitions::get_by_id(tx, scope, TaskDefinitionId(primary_deployment.task_definition_id))
                    .await?
                    .ok_or_else(|| AppError::Internal(format!("deployment {primary} lost its task definition")))?;
            let started_by = format!("service:{}", row.name);
            let mut unplaced = Vec::new();
            let mut quota_failures = Vec::new();
            let mut view = ClusterView::default();
            for only_host in targets {
                let launched = launch_in_tx(
                    tx,
                    scope,
                    self.quota_defaults(),
                    Launch {
                        cluster: &cluster,
                        td: &td,
                        count: if only_host.is_some() { 1 } else { plan.start },
                        overrides: &Default::default(),
                        started_by: Some(&started_by),
                        tags: &row.tags.0,
                        strategy: &row.placement_spec.0.strategy,
                        constraints: &row.placement_spec.0.constraints,
                        queue: false,
                        service: Some((id, primary)),
                        only_host,
                        launch_type,
                        sizes: self.managed_task_sizes(),
                    },
                    &mut view,
                )
                .await?;
                outcome.started += launched.tasks.len() as u32;
                unplaced.extend(launched.unplaced);
                quota_failures.extend(launched.failures.into_iter().filter(|f| f.reason.starts_with("QUOTA:")));
            }
            if outcome.started > 0 {
                messages.say(format!("started {} task(s) of {}:{}", outcome.started, td.family, td.revision));
            }
            if let Some(first) = unplaced.first() {
                messages.say(format!("unable to place {} task(s): {}", unplaced.len(), first.describe()));
            }
            if let Some(first) = quota_failures.first() {
                messages.say(format!(
                    "unable to start {} task(s): quota {} reached ({})",
                    quota_failures.len(),
                    first.reason.trim_start_matches("QUOTA:"),
                    first.detail.as_deref().unwrap_or("")
                ));
            }
        }

        // Completion and the steady state.
        let mut new_status = status;
        if plan.steady {
            streak = 0;
            next_launch_at = None;
            if primary_deployment.state()? == DeploymentState::InProgress {
                primary_deployment.failed_tasks = failed_in_primary;
                store::services::update_deployment(
                    tx,
                    scope,
                    primary,
                    DeploymentState::Completed,
                    failed_in_primary,
                    primary_deployment.reason.as_deref(),
                    now,
                )
                .await?;
                messages.say(format!(
                    "deployment {primary} completed: {} task(s) of {}:{} are healthy",
                    desired, primary_deployment.family, primary_deployment.revision
                ));
                self.deployment_event(tx, scope, &row, primary, now).await?;
            }
            if status == ServiceStatus::Draining {
                new_status = ServiceStatus::Inactive;
                super::quotas::release(tx, scope, &[(berth_api::quotas::QuotaName::Services, 1)]).await?;
                messages.say("service deleted: its last task stopped".into());
                store::events::append(
                    tx,
                    scope,
                    "service.deleted",
                    &row.id.to_string(),
                    json!({"cluster": row.cluster_name, "name": row.name}),
                    now,
                )
                .await?;
            } else {
                let steady = "service has reached a steady state".to_owned();
                if !messages.latest_is(&steady) {
                    messages.say(steady);
                }
            }
        }
        // The pass's failed launches, written once (completion and the breaker write their own).
        if failed_in_primary != primary_deployment.failed_tasks {
            store::services::update_deployment(
                tx,
                scope,
                primary,
                primary_deployment.state()?,
                failed_in_primary,
                primary_deployment.reason.as_deref(),
                now,
            )
            .await?;
        }
        messages.append(tx, scope).await?;
        store::services::save_scheduler_state(
            tx,
            scope,
            id,
            store::services::SchedulerState {
                status: new_status.as_str(),
                desired_count: if strategy == SchedulingStrategy::Daemon {
                    desired
                } else {
                    u32::try_from(row.desired_count).unwrap_or(0)
                },
                failure_streak: streak,
                next_launch_at,
                recent_events: &messages.recent,
            },
        )
        .await?;
        Ok(outcome)
    }

    /// Starts a rollback deployment to `target`'s revision and makes it primary.
    #[allow(clippy::too_many_arguments)]
    async fn start_rollback(
        &self,
        tx: &mut Tx,
        scope: AccountScope,
        row: &ServiceRow,
        failed: &DeploymentRow,
        target: &DeploymentRow,
        failed_tasks: i64,
        now: OffsetDateTime,
    ) -> AppResult<DeploymentRow> {
        let id = DeploymentId::generate();
        let td = (TaskDefinitionId(target.task_definition_id), target.family.as_str(), target.revision);
        let reason = format!("rollback from {}:{} after {failed_tasks} failed task(s)", failed.family, failed.revision);
        store::services::insert_deployment(
            tx,
            scope,
            store::services::NewDeployment {
                id,
                service_id: row.service_id(),
                task_definition: td,
                failure_threshold: u32::try_from(target.failure_threshold).unwrap_or(10),
                cause: "rollback",
                reason: Some(&reason),
                rollback_of: Some(failed.deployment_id()),
                now,
            },
        )
        .await?;
        store::services::set_primary(tx, scope, row.service_id(), id, td, now).await?;
        // Tasks still running the revision rolled back to stay: they are what the rollback wants.
        store::tasks::adopt_into_deployment(tx, scope, row.service_id(), td.0, id).await?;
        store::services::deployments_by_id(tx, scope, row.service_id(), &[id])
            .await?
            .pop()
            .ok_or_else(|| AppError::Internal("the rollback deployment vanished".into()))
    }

    async fn deployment_event(
        &self,
        tx: &mut Tx,
        scope: AccountScope,
        row: &ServiceRow,
        deployment: DeploymentId,
        now: OffsetDateTime,
    ) -> AppResult<()> {
        let d = store::services::deployments_by_id(tx, scope, row.service_id(), &[deployment]).await?;
        if let Some(d) = d.first() {
            store::events::append(
                tx,
                scope,
                "deployment.state_changed",
                &d.id.to_string(),
                json!({"cluster": row.cluster_name, "service": row.name, "state": d.state,
                       "task_definition": format!("{}:{}", d.family, d.revision), "reason": d.reason}),
                now,
            )
            .await?;
        }
        Ok(())
    }
}
