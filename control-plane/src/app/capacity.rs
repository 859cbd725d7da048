//! Managed capacity (the ACI / Fargate model): the operator's capacity
//! pools, what a MANAGED task may ask for, which pool takes it, and the
//! usage record.
//!
//! A capacity pool is a cluster of the operator's account with a priority,
//! so its hosts join, heartbeat, drain and take assignments exactly as a
//! tenant's do; what differs is that they are `shared` (they run MANAGED
//! tasks of every account) and that tenants never see them.

use berth_api::ClusterId;
use berth_api::capacity::{
    AccountUsage, CapacityPool, CreateCapacityPoolRequest, ListCapacityPoolsResponse, ListTaskSizesResponse, TaskSize,
    UsageQuery, UsageRecord, UsageResponse,
};
use berth_api::hosts::{PlacementConstraint, PlacementStrategy};
use berth_api::task_definitions::{ContainerDefinition, NetworkMode, RegisterTaskDefinitionRequest};
use serde_json::json;

use super::{App, AppError, AppResult, IdempotencyRequest, Written, validate};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::store::clusters::{ClusterRow, NewCluster};
use crate::store::{self, AccountScope, StoreError, Tx};

/// A pool's priority when the operator gives none.
pub const DEFAULT_POOL_PRIORITY: i64 = 100;
/// The longest window one usage request covers.
const MAX_USAGE_WINDOW: time::Duration = time::Duration::days(93);

/// Fargate's table of sizes: for each CPU size, the memory sizes it allows.
pub fn default_task_sizes() -> Vec<TaskSize> {
    let mut sizes = Vec::new();
    let mut add =
        |cpu: u32, memory: &mut dyn Iterator<Item = u32>| sizes.extend(memory.map(|m| TaskSize { cpu, memory: m }));
    add(256, &mut [512, 1024, 2048].into_iter());
    add(512, &mut (1..=4).map(|g| g * 1024));
    add(1024, &mut (2..=8).map(|g| g * 1024));
    add(2048, &mut (4..=16).map(|g| g * 1024));
    add(4096, &mut (8..=30).map(|g| g * 1024));
    sizes
}

/// Parses `cpu:memory,...` (the `--managed-task-sizes` setting).
pub fn parse_task_sizes(s: &str) -> Result<Vec<TaskSize>, String> {
    let mut sizes = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (cpu, memory) = item.split_once(':').ok_or_else(|| format!("{item:?}: write a size as cpu:memory"))?;
        let cpu: u32 = cpu.trim().parse().map_err(|_| format!("{item:?}: the CPU units are not a number"))?;
        let memory: u32 = memory.trim().parse().map_err(|_| format!("{item:?}: the memory (MiB) is not a number"))?;
        if cpu == 0 || memory == 0 {
            return Err(format!("{item:?}: a size needs some CPU and memory"));
        }
        sizes.push(TaskSize { cpu, memory });
    }
    if sizes.is_empty() {
        return Err("at least one size is needed".into());
    }
    sizes.sort();
    sizes.dedup();
    Ok(sizes)
}

/// The smallest allowed size that holds the request: fewest CPU units first,
/// then least memory (what a bill charges most for is CPU).
pub fn round_up(sizes: &[TaskSize], cpu: u32, memory: u32) -> Option<TaskSize> {
    sizes.iter().copied().filter(|s| s.cpu >= cpu && s.memory >= memory).min()
}

/// What a MANAGED task may not ask for: everything that would reach past
/// its own sandbox on a host shared with other accounts.
pub(crate) fn check_managed(
    def: &RegisterTaskDefinitionRequest,
    containers: &[ContainerDefinition],
    strategy: &[PlacementStrategy],
    constraints: &[PlacementConstraint],
    sizes: &[TaskSize],
) -> AppResult<TaskSize> {
    let refuse = |field: String, why: &str| Err(AppError::validation(field, format!("MANAGED tasks {why}")));
    if !strategy.is_empty() {
        return refuse("placement_strategy".into(), "are placed by the operator's policy: give no placement_strategy");
    }
    if !constraints.is_empty() {
        return refuse(
            "placement_constraints".into(),
            "run on the operator's hosts, whose attributes are not yours: give no placement_constraints",
        );
    }
    if def.network_mode == NetworkMode::Host {
        return refuse("task_definition.network_mode".into(), "cannot use the host's network: use bridge or none");
    }
    for (i, v) in def.volumes.iter().enumerate() {
        if v.host.is_some() {
            return refuse(
                format!("task_definition.volumes[{i}].host"),
                "cannot mount the host's directories: leave out host for a task-scoped volume",
            );
        }
    }
    for (i, c) in containers.iter().enumerate() {
        let at = |f: &str| format!("task_definition.container_definitions[{i}].{f}");
        if c.privileged {
            return refuse(at("privileged"), "cannot be privileged");
        }
        if c.linux_parameters.as_ref().and_then(|l| l.capabilities.as_ref()).is_some_and(|caps| !caps.add.is_empty()) {
            return refuse(at("linux_parameters.capabilities.add"), "cannot add capabilities (dropping is fine)");
        }
        if let Some(j) = c.port_mappings.iter().position(|m| m.host_port != 0) {
            return refuse(
                at(&format!("port_mappings[{j}].host_port")),
                "are reached at their own address, not the host's: host_port must be 0 or absent",
            );
        }
    }
    let (Some(cpu), Some(memory)) = (def.cpu, def.memory) else {
        return refuse(
            "task_definition".into(),
            &format!(
                "need task-level cpu and memory; {} sets {}",
                def.family,
                match (def.cpu, def.memory) {
                    (None, None) => "neither",
                    (None, Some(_)) => "no cpu",
                    _ => "no memory",
                }
            ),
        );
    };
    round_up(sizes, cpu, memory).ok_or_else(|| {
        let largest =
            sizes.iter().max().map_or_else(String::new, |s| format!(" (the largest is {}:{})", s.cpu, s.memory));
        AppError::validation(
            "task_definition",
            format!("no allowed MANAGED size holds cpu {cpu} and memory {memory}{largest}"),
        )
    })
}

/// Refuses EXTERNAL work in a capacity pool: a pool runs MANAGED tasks only.
pub(crate) fn not_a_pool(cluster: &ClusterRow) -> AppResult<()> {
    if cluster.pool_priority.is_some() {
        return Err(AppError::validation(
            "cluster",
            format!(
                "{} is a capacity pool: it runs MANAGED tasks of every account; run tasks in a cluster with launch_type MANAGED",
                cluster.name
            ),
        ));
    }
    Ok(())
}

async fn resolve_pool(tx: &mut Tx, scope: AccountScope, pool: &str) -> AppResult<ClusterRow> {
    let row =
        super::clusters::resolve(tx, scope, pool).await.map_err(|_| AppError::not_found("capacity pool", pool))?;
    if row.pool_priority.is_none() {
        return Err(AppError::not_found("capacity pool", pool));
    }
    Ok(row)
}

async fn pool_to_wire(tx: &mut Tx, row: ClusterRow) -> AppResult<CapacityPool> {
    let hosts = store::hosts::of_pool(tx, row.cluster_id()).await?;
    let running_tasks = store::tasks::count_active_in_pool(tx, row.cluster_id()).await?;
    Ok(CapacityPool {
        id: row.cluster_id(),
        name: row.name,
        priority: row.pool_priority.unwrap_or(DEFAULT_POOL_PRIORITY),
        hosts: u32::try_from(hosts.len()).unwrap_or(u32::MAX),
        active_hosts: u32::try_from(hosts.iter().filter(|h| h.status == "ACTIVE").count()).unwrap_or(u32::MAX),
        cpu_total: hosts.iter().map(|h| h.cpu_total - h.cpu_reserved).sum(),
        cpu_used: hosts.iter().map(|h| h.cpu_used).sum(),
        memory_total: hosts.iter().map(|h| h.memory_total - h.memory_reserved).sum(),
        memory_used: hosts.iter().map(|h| h.memory_used).sum(),
        running_tasks,
        created_at: row.created_at,
    })
}

impl App {
    pub fn managed_task_sizes(&self) -> &[TaskSize] {
        &self.agent_settings().managed_task_sizes
    }

    /// `GET /v1/capacity/sizes`: any account may read what it can ask for.
    pub fn list_task_sizes(&self, principal: &Principal) -> AppResult<ListTaskSizesResponse> {
        authorize(principal, Action::ReadTaskDefinition, None)?;
        Ok(ListTaskSizesResponse { sizes: self.managed_task_sizes().to_vec() })
    }

    /// `POST /v1/capacity-pools` (operator): a pool that agents join with its registration tokens.
    pub async fn create_capacity_pool(
        &self,
        principal: &Principal,
        req: CreateCapacityPoolRequest,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<CapacityPool>> {
        authorize(principal, Action::ManageCapacity, None)?;
        validate::name("name", &req.name)?;
        let priority = req.priority.unwrap_or(DEFAULT_POOL_PRIORITY);
        if !(0..=1_000_000).contains(&priority) {
            return Err(AppError::validation("priority", "priority must be 0-1000000"));
        }
        let scope = principal.scope();
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let now = store::now();
                let id = ClusterId::generate();
                let tags = Default::default();
                let new = NewCluster { id, name: &req.name, tags: &tags, now, pool_priority: Some(priority) };
                let row = match store::clusters::insert(tx, scope, new).await {
                    Err(StoreError::UniqueViolation(_)) => {
                        return Err(AppError::AlreadyExists {
                            kind: "capacity pool or cluster",
                            name: req.name.clone(),
                            field: "name",
                        });
                    }
                    other => other?,
                };
                store::events::append(
                    tx,
                    scope,
                    "capacity_pool.created",
                    &id.to_string(),
                    json!({"name": req.name, "priority": priority}),
                    now,
                )
                .await?;
                pool_to_wire(tx, row).await
            })
        })
        .await
    }

    /// `GET /v1/capacity-pools` (operator), in the order placement tries them.
    pub async fn list_capacity_pools(&self, principal: &Principal) -> AppResult<ListCapacityPoolsResponse> {
        authorize(principal, Action::ManageCapacity, None)?;
        let mut tx = self.db().begin_read().await?;
        let rows = store::clusters::pools(&mut tx).await?;
        let mut capacity_pools = Vec::with_capacity(rows.len());
        for row in rows {
            capacity_pools.push(pool_to_wire(&mut tx, row).await?);
        }
        tx.rollback().await?;
        Ok(ListCapacityPoolsResponse { capacity_pools })
    }

    pub async fn get_capacity_pool(&self, principal: &Principal, pool: &str) -> AppResult<CapacityPool> {
        authorize(principal, Action::ManageCapacity, None)?;
        let mut tx = self.db().begin_read().await?;
        let row = resolve_pool(&mut tx, principal.scope(), pool).await?;
        let wire = pool_to_wire(&mut tx, row).await?;
        tx.rollback().await?;
        Ok(wire)
    }

    /// For the pool's host endpoints: the operator's admin only, and the name must be a pool's.
    pub async fn pool_cluster(&self, principal: &Principal, pool: &str) -> AppResult<String> {
        authorize(principal, Action::ManageCapacity, None)?;
        let mut tx = self.db().begin_read().await?;
        let row = resolve_pool(&mut tx, principal.scope(), pool).await?;
        tx.rollback().await?;
        Ok(row.name)
    }

    /// `GET /v1/usage`: MANAGED vCPU-seconds and GiB-seconds per task in a
    /// window, for the caller's account, or (operator) for every account.
    pub async fn usage(&self, principal: &Principal, query: &UsageQuery) -> AppResult<UsageResponse> {
        authorize(principal, Action::ReadUsage, None)?;
        if query.all_accounts {
            authorize(principal, Action::ManageCapacity, None)?;
        }
        let now = store::now();
        let to = query.to.unwrap_or(now);
        let from = query.from.unwrap_or(to - time::Duration::days(1));
        if from >= to {
            return Err(AppError::validation("from", "from must be before to"));
        }
        if to - from > MAX_USAGE_WINDOW {
            return Err(AppError::validation("to", "a window is at most 93 days"));
        }
        let scope = (!query.all_accounts).then(|| principal.scope());
        let mut tx = self.db().begin_read().await?;
        let rows = store::usage::overlapping(&mut tx, scope, from, to).await?;
        tx.rollback().await?;
        let mut records = Vec::with_capacity(rows.len());
        let mut accounts: std::collections::BTreeMap<uuid::Uuid, AccountUsage> = Default::default();
        for r in rows {
            let start = r.started_at.max(from);
            let end = r.stopped_at.unwrap_or(now).min(to).min(now);
            let seconds = (end - start).whole_seconds().max(0);
            let cpu = u32::try_from(r.cpu).unwrap_or(0);
            let memory = u32::try_from(r.memory).unwrap_or(0);
            let vcpu_seconds = f64::from(cpu) / 1024.0 * seconds as f64;
            let gib_seconds = f64::from(memory) / 1024.0 * seconds as f64;
            let total = accounts.entry(r.account_id).or_insert(AccountUsage {
                account_id: berth_api::AccountId(r.account_id),
                tasks: 0,
                vcpu_seconds: 0.0,
                gib_seconds: 0.0,
            });
            total.tasks += 1;
            total.vcpu_seconds += vcpu_seconds;
            total.gib_seconds += gib_seconds;
            records.push(UsageRecord {
                account_id: berth_api::AccountId(r.account_id),
                task_id: berth_api::TaskId(r.task_id),
                cluster: r.cluster_name,
                task_definition: r.task_definition,
                cpu,
                memory,
                started_at: r.started_at,
                stopped_at: r.stopped_at,
                seconds,
                vcpu_seconds,
                gib_seconds,
            });
        }
        if let Some(scope) = scope
            && accounts.is_empty()
        {
            accounts.insert(
                scope.uuid(),
                AccountUsage { account_id: scope.account_id(), tasks: 0, vcpu_seconds: 0.0, gib_seconds: 0.0 },
            );
        }
        Ok(UsageResponse { from, to, accounts: accounts.into_values().collect(), records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_up_to_the_smallest_size_that_holds_them() {
        let sizes = default_task_sizes();
        assert_eq!(round_up(&sizes, 100, 100), Some(TaskSize { cpu: 256, memory: 512 }));
        assert_eq!(round_up(&sizes, 256, 600), Some(TaskSize { cpu: 256, memory: 1024 }));
        // 256 CPU units allow at most 2 GiB: more memory needs the next CPU size.
        assert_eq!(round_up(&sizes, 256, 3000), Some(TaskSize { cpu: 512, memory: 3072 }));
        assert_eq!(round_up(&sizes, 300, 512), Some(TaskSize { cpu: 512, memory: 1024 }));
        assert_eq!(round_up(&sizes, 4096, 30 * 1024), Some(TaskSize { cpu: 4096, memory: 30 * 1024 }));
        assert_eq!(round_up(&sizes, 4097, 512), None);
    }

    #[test]
    fn sizes_parse_from_settings() {
        assert_eq!(
            parse_task_sizes("512:1024, 256:512").expect("valid sizes"),
            [TaskSize { cpu: 256, memory: 512 }, TaskSize { cpu: 512, memory: 1024 }]
        );
        assert!(parse_task_sizes("256").expect_err("no memory").contains("cpu:memory"));
        assert!(parse_task_sizes("0:512").is_err());
        assert!(parse_task_sizes("").is_err());
    }
}
