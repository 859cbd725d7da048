//! The control plane's side of the host agent protocol
//! (docs/agent-protocol.md): heartbeats, the assignment stream, status reports,
//! and noticing hosts that went quiet.

use std::collections::HashMap;
use std::time::Duration;

use berth_api::agent::{
    AgentTask, Assignment, AssignmentsResponse, HeartbeatRequest, HeartbeatResponse, HostPortBinding, TaskStatusReport,
    TaskStatusReportBatch, TaskStatusReportResponse,
};
use berth_api::capacity::LaunchType;
use berth_api::hosts::HostStatus;
use berth_api::quotas::QuotaName;
use berth_api::task_definitions::NetworkMode;
use berth_api::tasks::{DesiredStatus, StopCode, TaskStatus};
use berth_api::{HostId, TaskId};
use serde_json::json;

use super::{App, AppError, AppResult, lifecycle, validate};
use crate::auth::HostPrincipal;
use crate::store::tasks::{StateChange, TaskRow};
use crate::store::{self, AccountScope, Tx};

/// Timings of the protocol, and how long records are kept.
#[derive(Clone, Debug)]
pub struct AgentSettings {
    pub heartbeat_interval: Duration,
    /// A host that missed three heartbeats is DISCONNECTED; after this long it is LOST.
    pub lost_timeout: Duration,
    /// How long STOPPED tasks stay readable (ECS keeps them about an hour).
    pub task_retention: Duration,
    pub event_retention: Duration,
    /// How long an idempotency key is remembered.
    pub idempotency_retention: Duration,
    /// The service scheduler's timings.
    pub services: super::service_scheduler::ServiceSchedulerSettings,
    /// The sizes MANAGED tasks are rounded up to, smallest first.
    pub managed_task_sizes: Vec<berth_api::capacity::TaskSize>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            lost_timeout: Duration::from_secs(60),
            task_retention: Duration::from_secs(7 * 24 * 3600),
            event_retention: Duration::from_secs(30 * 24 * 3600),
            idempotency_retention: Duration::from_secs(24 * 3600),
            services: Default::default(),
            managed_task_sizes: super::capacity::default_task_sizes(),
        }
    }
}

/// What one retention pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub tasks: u64,
    pub events: u64,
    pub idempotency_records: u64,
    pub assignments: u64,
}

const MAX_WAIT_SECONDS: u32 = 30;
const MAX_BATCH: u64 = 100;
const MAX_REPORTS_PER_BATCH: usize = 1000;

fn own_host(host: &HostPrincipal, host_ref: &str) -> AppResult<()> {
    if host_ref == host.host_id.to_string() {
        Ok(())
    } else {
        Err(AppError::AccessDenied("a host credential reaches only its own host's endpoints".into()))
    }
}

/// What the agent needs to run a task: its containers with the run's
/// overrides applied, and which host port each mapping got.
async fn agent_task(
    reader: &mut impl store::Reader,
    keyring: &crate::auth::keyring::Keyring,
    definitions: &super::definition_cache::DefinitionCache,
    row: &TaskRow,
) -> AppResult<AgentTask> {
    // A shared host's tasks belong to many accounts: each is read in its own.
    let scope = AccountScope::new(berth_api::AccountId(row.account_id));
    let launch_type = row.launch_type()?;
    let def = definitions.get(reader, scope, row.task_definition_id).await?;
    let mut containers = super::tasks::apply_overrides(&def.container_definitions, &row.overrides.0)?;
    // The group's restart policy, on every container without its own.
    if let Some(policy) = &def.restart_policy {
        for c in containers.iter_mut().filter(|c| c.restart_policy.is_none()) {
            c.restart_policy = Some(policy.clone());
        }
    }
    let network_mode = match (launch_type, def.network_mode) {
        // Never on a shared host: validation refuses it, and the agent would too.
        (LaunchType::Managed, NetworkMode::Host) => NetworkMode::None,
        (_, mode) => mode,
    };
    let dynamic = row.placement.as_ref().map(|p| p.0.dynamic_host_ports.clone()).unwrap_or_default();
    let mut dynamic = dynamic.into_iter();
    let mut port_bindings = Vec::new();
    for c in containers.iter().filter(|_| launch_type == LaunchType::External) {
        for m in &c.port_mappings {
            let host_port = match def.network_mode {
                NetworkMode::None => continue,
                NetworkMode::Host => m.container_port,
                NetworkMode::Bridge if m.host_port != 0 => m.host_port,
                NetworkMode::Bridge => dynamic.next().unwrap_or(0),
            };
            port_bindings.push(HostPortBinding {
                container_name: c.name.clone(),
                container_port: m.container_port,
                host_port,
                protocol: m.protocol,
            });
        }
    }
    let registry_credentials = super::registry_credentials::for_containers(reader, scope, keyring, &containers).await?;
    Ok(AgentTask {
        task_id: row.task_id(),
        task_definition: format!("{}:{}", row.family, row.revision),
        cpu: u32::try_from(row.cpu).unwrap_or(0),
        memory: u32::try_from(row.memory).unwrap_or(0),
        network_mode,
        launch_type,
        account_id: scope.account_id(),
        volumes: def.volumes.clone(),
        containers,
        port_bindings,
        registry_credentials,
    })
}

/// Stops a task in the store: state, stop code, freed host resources, event.
pub(crate) async fn stop_in_store(
    tx: &mut Tx,
    scope: AccountScope,
    row: &TaskRow,
    stop_code: StopCode,
    reason: &str,
) -> AppResult<()> {
    let now = store::now();
    let mut containers = row.containers.0.clone();
    containers.iter_mut().for_each(|c| c.last_status = TaskStatus::Stopped);
    let change = StateChange {
        desired_status: DesiredStatus::Stopped,
        last_status: TaskStatus::Stopped,
        containers: &containers,
        stop_code: Some(stop_code),
        stopped_reason: Some(reason),
        now,
    };
    if !store::tasks::change_state(tx, scope, row.task_id(), row.version, change).await? {
        return Err(AppError::Contention);
    }
    if row.service_id.is_some() {
        tx.wake(crate::reconcilers::services::WAKE_KEY);
    }
    // Quotas before hosts: the order RunTask takes their locks in.
    super::quotas::release(tx, scope, &super::quotas::held_by(row)).await?;
    if let Some(host) = row.host_id {
        store::hosts::release(tx, HostId(host), row_cpu(row), row_memory(row), &row.host_ports.0, now).await?;
    }
    if row.is_managed() {
        store::usage::close(tx, row.id, now).await?;
    }
    store::events::append(
        tx,
        scope,
        "task.state_changed",
        &row.id.to_string(),
        json!({"last_status": "STOPPED", "desired_status": "STOPPED", "stop_code": stop_code.as_str(), "stopped_reason": reason}),
        now,
    )
    .await?;
    Ok(())
}

fn row_cpu(row: &TaskRow) -> u32 {
    u32::try_from(row.cpu).unwrap_or(0)
}

fn row_memory(row: &TaskRow) -> u32 {
    u32::try_from(row.memory).unwrap_or(0)
}

impl App {
    pub fn agent_settings(&self) -> &AgentSettings {
        &self.inner.agent
    }

    pub async fn heartbeat(
        &self,
        host: &HostPrincipal,
        host_ref: &str,
        req: HeartbeatRequest,
    ) -> AppResult<HeartbeatResponse> {
        own_host(host, host_ref)?;
        if req.observed.len() > 10_000 {
            return Err(AppError::validation("observed", "at most 10000 tasks per heartbeat"));
        }
        let logs = match &req.logs_endpoint {
            Some(endpoint) => {
                let url = &endpoint.url;
                if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 512 {
                    return Err(AppError::validation("logs_endpoint.url", "must be an http:// or https:// URL"));
                }
                validate::text("logs_endpoint.token", &endpoint.token, 256)?;
                let (token_key_id, token_ciphertext) = self.auth().keyring.encrypt(endpoint.token.as_bytes());
                Some(store::hosts::LogsEndpointRow { url: url.clone(), token_key_id, token_ciphertext })
            }
            None => None,
        };
        // Three statements that each commit by themselves, with no transaction
        // around them: nothing here must change together, and an agent that
        // retries a failed heartbeat repeats each one harmlessly. With 1,000
        // hosts, heartbeats' BEGIN and COMMIT were 7 % of all statements.
        let status = store::hosts::heartbeat(self.db(), host.host_id, store::now(), logs.as_ref())
            .await?
            .ok_or_else(|| AppError::AccessDenied("the host is deregistered".into()))?;
        // Tell the agent what the control plane has given up on: tasks it
        // stopped (for example when the host was lost), or does not know here.
        let live: std::collections::HashSet<TaskId> =
            store::tasks::live_on_host(&mut self.db(), host.host_id).await?.into_iter().collect();
        let stop_tasks = req
            .observed
            .iter()
            .filter(|o| o.last_status != TaskStatus::Stopped && !live.contains(&o.task_id))
            .map(|o| o.task_id)
            .collect();
        let now = store::now();
        let usage: Vec<(TaskId, berth_api::tasks::TaskUsage)> = req
            .observed
            .iter()
            .filter(|o| live.contains(&o.task_id))
            .filter_map(|o| {
                o.usage.map(|u| {
                    (o.task_id, berth_api::tasks::TaskUsage { cpu: u.cpu, memory: u.memory, measured_at: now })
                })
            })
            .collect();
        store::tasks::record_usage(self.db(), host.host_id, &usage).await?;
        Ok(HeartbeatResponse {
            host_status: HostStatus::parse(&status).unwrap_or(HostStatus::Active),
            heartbeat_interval_seconds: u32::try_from(self.agent_settings().heartbeat_interval.as_secs()).unwrap_or(5),
            stop_tasks,
        })
    }

    /// The host's changes after `after` (default: after the acknowledged
    /// position), waiting up to `wait` seconds for one to appear. With `ack`,
    /// the changes up to it are acknowledged first.
    pub async fn assignments(
        &self,
        host: &HostPrincipal,
        host_ref: &str,
        after: Option<i64>,
        ack: Option<i64>,
        wait: Option<u32>,
    ) -> AppResult<AssignmentsResponse> {
        own_host(host, host_ref)?;
        let wait = wait.unwrap_or(20);
        if wait > MAX_WAIT_SECONDS {
            return Err(AppError::bad_request(Some("wait"), format!("wait must be 0-{MAX_WAIT_SECONDS} seconds")));
        }
        if let Some(cursor) = ack {
            self.acknowledge(host, cursor, "ack").await?;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
        // `answer`: reply even when there is nothing new (the deadline passed,
        // or the server is shutting down).
        let read = |answer: bool| async move {
            let (after, rows) = store::assignments::pending(self.db(), host.host_id, after, MAX_BATCH)
                .await?
                .ok_or_else(|| AppError::not_found("host", host_ref))?;
            if rows.is_empty() {
                return Ok::<_, AppError>(if answer || tokio::time::Instant::now() >= deadline {
                    Some(AssignmentsResponse { assignments: Vec::new(), cursor: after })
                } else {
                    None
                });
            }
            // The tasks behind the changes are read after the changes
            // themselves, in a statement of their own: a change is committed
            // with its task, and a task removed since is skipped below.
            let mut db = self.db();
            let mut assignments = Vec::with_capacity(rows.len());
            let ids: Vec<TaskId> = rows.iter().map(|a| TaskId(a.task_id)).collect();
            let tasks: HashMap<uuid::Uuid, TaskRow> =
                store::tasks::on_host(&mut db, host.host_id, &ids).await?.into_iter().map(|t| (t.id, t)).collect();
            for a in &rows {
                // A task past its retention is gone; its change is skipped, and the cursor moves past it.
                let Some(task) = tasks.get(&a.task_id) else {
                    continue;
                };
                assignments.push(Assignment {
                    seq: a.seq,
                    task_id: TaskId(a.task_id),
                    desired_status: DesiredStatus::parse(&a.desired_status)
                        .ok_or_else(|| AppError::Internal("bad desired status".into()))?,
                    task: agent_task(&mut db, &self.auth().keyring, self.definitions(), task).await?,
                });
            }
            let cursor = rows.last().map_or(after, |a| a.seq);
            Ok(Some(AssignmentsResponse { assignments, cursor }))
        };
        let subscription = self.db().wakeups().subscribe(host.host_id.0);
        let mut down = self.shutting_down();
        let waited = tokio::select! {
            r = subscription.wait_until(deadline, || read(false)) => r?,
            // A stopping server answers at once, so its graceful shutdown does not wait out the poll.
            _ = down.wait_for(|d| *d) => None,
        };
        match waited {
            Some(response) => Ok(response),
            // The deadline passed between reads, or the server is stopping: answer with the cursor.
            None => read(true).await?.ok_or_else(|| AppError::Internal("no assignments answer".into())),
        }
    }

    pub async fn ack_assignments(&self, host: &HostPrincipal, host_ref: &str, cursor: i64) -> AppResult<()> {
        own_host(host, host_ref)?;
        self.acknowledge(host, cursor, "cursor").await
    }

    /// Moves the host's acknowledged cursor; `field` names where the cursor came from.
    async fn acknowledge(&self, host: &HostPrincipal, cursor: i64, field: &'static str) -> AppResult<()> {
        if !store::hosts::ack(self.db(), host.host_id, cursor).await?
            && let Some(end) = store::hosts::assignment_end(self.db(), host.host_id).await?
            && cursor > end
        {
            return Err(AppError::validation(field, format!("{field} {cursor} is past the stream's end ({end})")));
        }
        Ok(())
    }

    /// Applies an agent's report on one task. Older or repeated reports (by
    /// sequence number) change nothing; a report may not move a task back.
    pub async fn report_task_status(
        &self,
        host: &HostPrincipal,
        host_ref: &str,
        task: &str,
        report: TaskStatusReport,
    ) -> AppResult<TaskStatusReportResponse> {
        own_host(host, host_ref)?;
        let task_id: TaskId = task.parse().map_err(|_| AppError::not_found("task", task))?;
        let mut tx = self.db().begin_write().await?;
        let mut events = Vec::new();
        let result = report_in_tx(&mut tx, host, task_id, &report, &mut events).await?;
        append_task_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(result)
    }

    /// Applies several reports in one transaction. Each is judged as if sent
    /// alone: a report the store refuses (unknown task, illegal transition)
    /// gets its error in its place and changes nothing; the others apply.
    pub async fn report_task_statuses(
        &self,
        host: &HostPrincipal,
        host_ref: &str,
        batch: TaskStatusReportBatch,
    ) -> AppResult<Vec<(TaskId, AppResult<TaskStatusReportResponse>)>> {
        own_host(host, host_ref)?;
        if batch.reports.len() > MAX_REPORTS_PER_BATCH {
            return Err(AppError::validation(
                "reports",
                format!("at most {MAX_REPORTS_PER_BATCH} reports per request"),
            ));
        }
        let mut tx = self.db().begin_write().await?;
        let mut events = Vec::new();
        let mut results = Vec::with_capacity(batch.reports.len());
        for item in &batch.reports {
            let outcome = match report_in_tx(&mut tx, host, item.task_id, &item.report, &mut events).await {
                Err(e @ (AppError::Unavailable(_) | AppError::Internal(_) | AppError::Contention)) => return Err(e),
                other => other,
            };
            results.push((item.task_id, outcome));
        }
        append_task_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(results)
    }

    /// Marks hosts that stopped heartbeating: DISCONNECTED after three missed
    /// intervals, LOST after the loss timeout, when their tasks stop with
    /// `HostLost`. Every replica may run this at once: each host changes once.
    pub async fn sweep_hosts(&self) -> AppResult<(usize, usize)> {
        let settings = self.agent_settings().clone();
        let now = store::now();
        let disconnect_after =
            time::Duration::try_from(settings.heartbeat_interval * 3).unwrap_or(time::Duration::seconds(15));
        let lost_after = time::Duration::try_from(settings.lost_timeout).unwrap_or(time::Duration::seconds(60));
        let mut tx = self.db().begin_write().await?;
        let disconnected =
            store::hosts::mark_stale(&mut tx, &["ACTIVE", "DRAINING"], "DISCONNECTED", now - disconnect_after).await?;
        for h in &disconnected {
            let scope = AccountScope::new(berth_api::AccountId(h.account_id));
            store::events::append(&mut tx, scope, "host.disconnected", &h.id.to_string(), json!({}), now).await?;
        }
        tx.commit().await?;
        let mut tx = self.db().begin_write().await?;
        let lost = store::hosts::mark_stale(&mut tx, &["DISCONNECTED"], "LOST", now - lost_after).await?;
        for h in &lost {
            let scope = AccountScope::new(berth_api::AccountId(h.account_id));
            store::events::append(&mut tx, scope, "host.lost", &h.id.to_string(), json!({}), now).await?;
            // A shared host's tasks are many accounts': each stops in its own.
            for t in store::tasks::live_rows_on_host(&mut tx, HostId(h.id)).await? {
                let scope = AccountScope::new(berth_api::AccountId(t.account_id));
                stop_in_store(&mut tx, scope, &t, StopCode::HostLost, "the host stopped heartbeating").await?;
            }
        }
        tx.commit().await?;
        Ok((disconnected.len(), lost.len()))
    }
}

impl App {
    /// Places queued tasks where capacity has appeared, oldest first. Each
    /// task is committed on its own (host reservation and task update in one
    /// transaction); a conflict with another replica just leaves the task for
    /// the next round. Returns how many were placed.
    pub async fn place_queued(&self) -> AppResult<usize> {
        let mut tx = self.db().begin_read().await?;
        let queued = store::tasks::queued(&mut tx, 1000).await?;
        tx.rollback().await?;
        // Oldest first within each (account, cluster), clusters in order of their oldest task.
        let mut groups: Vec<((uuid::Uuid, uuid::Uuid), Vec<TaskRow>)> = Vec::new();
        for t in queued {
            let key = (t.account_id, t.cluster_id);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(t),
                None => groups.push((key, vec![t])),
            }
        }
        let mut placed = 0;
        for ((account, cluster), tasks) in groups {
            placed +=
                self.place_queued_in_cluster(AccountScope::new(berth_api::AccountId(account)), cluster, tasks).await?;
        }
        placed += self.place_queued_managed().await?;
        Ok(placed)
    }

    /// Admits queued MANAGED tasks as the pools' capacity appears, fairly
    /// between accounts: each task placed goes to the account with the least
    /// MANAGED CPU running (then the oldest waiting task), so one tenant's
    /// burst cannot keep another tenant's single task waiting behind it.
    /// Within an account, oldest first: when its oldest does not fit, its
    /// younger ones wait this round too.
    async fn place_queued_managed(&self) -> AppResult<usize> {
        const PER_ACCOUNT: u64 = 100;
        let mut tx = self.db().begin_read().await?;
        let now = store::now();
        let mut queues = Vec::new();
        for account in store::tasks::accounts_with_queued_managed(&mut tx).await? {
            let scope = AccountScope::new(berth_api::AccountId(account));
            let waiting: std::collections::VecDeque<TaskRow> =
                store::tasks::queued_managed(&mut tx, scope, PER_ACCOUNT).await?.into();
            let share = store::quotas::count(&mut tx, scope, QuotaName::ManagedCpu, now).await?;
            queues.push((scope, waiting, share));
        }
        tx.rollback().await?;
        let mut placed = 0;
        loop {
            let next = queues
                .iter()
                .enumerate()
                .filter_map(|(i, (_, waiting, share))| waiting.front().map(|t| ((*share, t.id), i)))
                .min();
            let Some((_, i)) = next else { break };
            let Some(task) = queues[i].1.pop_front() else { break };
            let scope = queues[i].0;
            match self.place_one_managed(scope, &task).await? {
                Queued::Placed => {
                    queues[i].2 += task.cpu;
                    placed += 1;
                }
                // No room for its oldest: the account waits for the next round.
                Queued::NoRoom => queues[i].1.clear(),
                Queued::Gone => {}
            }
        }
        Ok(placed)
    }

    /// One queued MANAGED task onto a pool.
    async fn place_one_managed(&self, scope: AccountScope, task: &TaskRow) -> AppResult<Queued> {
        let mut tx = self.db().begin_write().await?;
        let td =
            store::task_definitions::get_by_id(&mut tx, scope, berth_api::TaskDefinitionId(task.task_definition_id))
                .await?
                .ok_or_else(|| AppError::Internal(format!("queued task {} lost its definition", task.id)))?;
        let containers = super::tasks::apply_overrides(&td.definition.0.container_definitions, &task.overrides.0)?;
        let needs = super::placement::needs_of(row_cpu(task), row_memory(task), NetworkMode::None, &containers);
        let spec = super::placement::spec_from(&[], &[])?;
        let (rows, plan) = super::tasks::place_managed(&mut tx, scope, &needs, 1, &spec).await?;
        let Some(Ok(p)) = plan.tasks.into_iter().next() else { return Ok(Queued::NoRoom) };
        self.commit_queued(tx, scope, task, &rows, &p, &needs, &Default::default()).await
    }

    async fn place_queued_in_cluster(
        &self,
        scope: AccountScope,
        cluster: uuid::Uuid,
        tasks: Vec<TaskRow>,
    ) -> AppResult<usize> {
        let cluster_id = berth_api::ClusterId(cluster);
        let mut placed = 0;
        for task in tasks {
            let mut tx = self.db().begin_write().await?;
            let td = store::task_definitions::get_by_id(
                &mut tx,
                scope,
                berth_api::TaskDefinitionId(task.task_definition_id),
            )
            .await?
            .ok_or_else(|| AppError::Internal(format!("queued task {} lost its definition", task.id)))?;
            let def = td.definition.0;
            let containers = super::tasks::apply_overrides(&def.container_definitions, &task.overrides.0)?;
            let needs = super::placement::needs_of(row_cpu(&task), row_memory(&task), def.network_mode, &containers);
            let rows = store::hosts::for_placement(&mut tx, scope, cluster_id).await?;
            let counts = store::tasks::group_counts_by_host(&mut tx, scope, cluster_id, &task.family).await?;
            let hosts = super::placement::engine_hosts(&rows);
            let asked = task.placement_spec.as_ref().map(|s| s.0.clone()).unwrap_or_default();
            let spec = super::placement::spec_from(&asked.strategy, &asked.constraints)?;
            let plan = berth_placement::place(
                &hosts,
                &super::placement::group_counts(&rows, &counts),
                &needs,
                1,
                &spec,
                super::placement::seed(),
            );
            // Oldest first: if the oldest does not fit, the younger ones wait behind it.
            let Some(Ok(p)) = plan.tasks.into_iter().next() else { break };
            match self.commit_queued(tx, scope, &task, &rows, &p, &needs, &asked).await? {
                Queued::Placed => placed += 1,
                Queued::NoRoom => break,
                Queued::Gone => continue,
            }
        }
        Ok(placed)
    }
}

/// What placing one queued task came to.
enum Queued {
    Placed,
    /// No room on the host after all, or a quota at its limit: try again next round.
    NoRoom,
    /// Stopped or placed meanwhile (by the user, or another replica).
    Gone,
}

impl App {
    /// Commits a queued task's placement on the planned host: moves it from
    /// the pending quota to the running ones (an account at its limit keeps
    /// waiting, as for capacity), reserves the host conditionally, assigns
    /// the task and tells the host, all in `tx`, committed when placed.
    #[allow(clippy::too_many_arguments)]
    async fn commit_queued(
        &self,
        mut tx: Tx,
        scope: AccountScope,
        task: &TaskRow,
        rows: &[store::hosts::HostRow],
        p: &berth_placement::Placement,
        needs: &berth_placement::TaskNeeds,
        asked: &store::tasks::PlacementSpec,
    ) -> AppResult<Queued> {
        let row = &rows[p.host_index];
        let managed = task.is_managed();
        let ports: Vec<u16> = needs.static_ports.iter().copied().chain(p.dynamic_ports.iter().copied()).collect();
        let mut used = row.ports_used.0.clone();
        used.extend(&ports);
        used.sort_unstable();
        used.dedup();
        let mut ledger =
            super::quotas::Ledger::open(&mut tx, scope, self.quota_defaults(), &super::quotas::PLACEMENT_QUOTAS)
                .await?;
        let running = super::quotas::placed_task(task.cpu, task.memory, managed);
        if ledger.room(&running, 1).0 == 0 {
            return Ok(Queued::NoRoom);
        }
        ledger.take(&running, 1);
        ledger.give_back(&[(QuotaName::PendingTasks, 1)], 1);
        ledger.save(&mut tx, scope).await?;
        let now = store::now();
        let Some(sequence_end) = store::hosts::reserve(&mut tx, row, needs.cpu, needs.memory, &used, 1, now).await?
        else {
            return Ok(Queued::NoRoom);
        };
        let decision = berth_api::hosts::PlacementDecision {
            host_id: p.host,
            strategy: asked.strategy.clone(),
            constraints: asked.constraints.clone(),
            hosts_considered: u32::try_from(rows.len()).unwrap_or(u32::MAX),
            dynamic_host_ports: p.dynamic_ports.clone(),
            decided_at: now,
        };
        if !store::tasks::assign_queued(&mut tx, scope, task.task_id(), task.version, (p.host, &decision, &ports), now)
            .await?
        {
            return Ok(Queued::Gone);
        }
        let change = std::collections::BTreeMap::from([(p.host, vec![(task.task_id(), DesiredStatus::Running)])]);
        store::assignments::insert_numbered(&mut tx, scope, &change, &[sequence_end], now).await?;
        store::events::append(
            &mut tx,
            scope,
            "task.state_changed",
            &task.id.to_string(),
            json!({"cluster": task.cluster_name, "last_status": "PENDING", "from_queue": true,
                   "launch_type": if managed { "MANAGED" } else { "EXTERNAL" },
                   // A MANAGED task's host is the operator's, not the tenant's to see.
                   "host_id": (!managed).then(|| p.host.to_string())}),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Queued::Placed)
    }
}

impl App {
    /// Deletes stopped tasks, events and idempotency records past their retention.
    pub async fn purge_expired(&self) -> AppResult<Purged> {
        let s = self.agent_settings().clone();
        let now = store::now();
        let ago = |d: Duration| now - time::Duration::try_from(d).unwrap_or(time::Duration::days(7));
        let mut tx = self.db().begin_write().await?;
        let purged = Purged {
            tasks: store::retention::purge_stopped_tasks(&mut tx, ago(s.task_retention)).await?,
            events: store::retention::purge_events(&mut tx, ago(s.event_retention)).await?,
            idempotency_records: store::retention::purge_idempotency_records(&mut tx, ago(s.idempotency_retention))
                .await?,
            assignments: store::retention::purge_acknowledged_assignments(&mut tx).await?,
        };
        tx.commit().await?;
        Ok(purged)
    }
}

/// Appends reports' events, each to its task's account, one statement per account.
async fn append_task_events(tx: &mut Tx, events: Vec<(AccountScope, store::events::NewEvent)>) -> AppResult<()> {
    let mut by_account: Vec<(AccountScope, Vec<store::events::NewEvent>)> = Vec::new();
    for (scope, event) in events {
        match by_account.iter_mut().find(|(s, _)| *s == scope) {
            Some((_, list)) => list.push(event),
            None => by_account.push((scope, vec![event])),
        }
    }
    let now = store::now();
    for (scope, list) in by_account {
        store::events::append_many(tx, scope, list, now).await?;
    }
    Ok(())
}

/// One report inside the caller's transaction. Every check comes before the
/// first write, so an error leaves the transaction as it was. The event for
/// a transition is added to `events`, for the caller to append last.
async fn report_in_tx(
    tx: &mut Tx,
    host: &HostPrincipal,
    task_id: TaskId,
    report: &TaskStatusReport,
    events: &mut Vec<(AccountScope, store::events::NewEvent)>,
) -> AppResult<TaskStatusReportResponse> {
    if report.seq < 1 {
        return Err(AppError::validation("seq", "seq starts at 1 and increases with every report"));
    }
    if let Some(r) = &report.reason {
        validate::text("reason", r, 1024)?;
    }
    let row = store::tasks::on_host(tx, host.host_id, &[task_id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::not_found("task", task_id.to_string()))?;
    // The task's own account, which on a shared host is not the host's.
    let scope = AccountScope::new(berth_api::AccountId(row.account_id));
    let from = row.last_status()?;
    let desired = row.desired_status()?;
    if report.seq <= row.report_seq {
        return Ok(TaskStatusReportResponse { applied: false, desired_status: desired, last_status: from });
    }
    let to = report.last_status;
    if to != from && !lifecycle::can_transition(from, to) {
        return Err(AppError::InvalidTransition(format!("a {} task cannot become {}", from.as_str(), to.as_str())));
    }
    let now = store::now();
    let stop_code = match (to, report.stop_code, row.stop_code()?) {
        (TaskStatus::Stopped, Some(code), _) => Some(code),
        (TaskStatus::Stopped, None, Some(existing)) => Some(existing),
        (TaskStatus::Stopped, None, None) if row.running_at.is_none() => Some(StopCode::TaskFailedToStart),
        (TaskStatus::Stopped, None, None) => Some(StopCode::EssentialContainerExited),
        (_, _, existing) => existing,
    };
    let reason = report.reason.clone().or(row.stopped_reason.clone());
    let containers = if report.containers.is_empty() { row.containers.0.clone() } else { report.containers.clone() };
    let change = StateChange {
        desired_status: if to == TaskStatus::Stopped { DesiredStatus::Stopped } else { desired },
        last_status: to,
        containers: &containers,
        stop_code,
        stopped_reason: reason.as_deref(),
        now,
    };
    if !store::tasks::apply_report(tx, scope, task_id, host.host_id, report.seq, change).await? {
        // A concurrent report with a newer sequence number won.
        return Ok(TaskStatusReportResponse { applied: false, desired_status: desired, last_status: from });
    }
    if row.service_id.is_some() && (to != from || report.health_status.is_some()) {
        tx.wake(crate::reconcilers::services::WAKE_KEY);
    }
    if to == TaskStatus::Stopped && from != TaskStatus::Stopped {
        // Quotas before hosts: the order RunTask takes their locks in.
        super::quotas::release(tx, scope, &super::quotas::held_by(&row)).await?;
        store::hosts::release(tx, host.host_id, row_cpu(&row), row_memory(&row), &row.host_ports.0, now).await?;
    }
    let managed = row.is_managed();
    if managed && to != from {
        // The agent's time of the transition, within what the control plane knows to be possible.
        let earliest = row.pending_at.unwrap_or(row.created_at);
        let at = report.observed_at.map_or(now, |t| t.clamp(earliest, now));
        if to == TaskStatus::Running {
            store::usage::open(tx, &row, at).await?;
        } else if to == TaskStatus::Stopped {
            store::usage::close(tx, row.id, at).await?;
        }
    }
    if to != from {
        events.push((
            scope,
            store::events::NewEvent {
                event_type: "task.state_changed",
                resource_id: row.id.to_string(),
                detail: json!({"cluster": row.cluster_name, "last_status": to.as_str(),
                           // A MANAGED task's host is the operator's, not the tenant's to see.
                           "host_id": (!managed).then(|| host.host_id.to_string()),
                           "stop_code": stop_code.map(|c| c.as_str()), "stopped_reason": reason}),
            },
        ));
    }
    let desired = if to == TaskStatus::Stopped { DesiredStatus::Stopped } else { desired };
    Ok(TaskStatusReportResponse { applied: true, desired_status: desired, last_status: to })
}
