//! The tenant-facing hosts API and the placement dry run.

use std::collections::BTreeMap;

use berth_api::hosts::{
    DeregisterHostRequest, Host, HostStatus, HostVerdict, ListHostsResponse, Resources, SimulatePlacementRequest,
    SimulatePlacementResponse, UpdateHostAttributesRequest,
};
use berth_api::tasks::{Failure, StopCode};
use berth_api::{ClusterId, HostId, Page};
use serde_json::json;

use super::paging::{self, PageRequest};
use super::{
    App, AppError, AppResult, IdempotencyRequest, Written, check_version, clusters, placement, task_definitions,
    validate,
};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::store::hosts::HostRow;
use crate::store::tasks::TaskFilter;
use crate::store::{self, AccountScope, Tx};

/// Attributes the agent reports about itself; a user's update keeps them.
const AGENT_ATTRIBUTES: [&str; 6] = ["os", "arch", "hostname", "agent.version", "runtime.name", "runtime.version"];

pub(crate) fn to_wire(row: HostRow) -> AppResult<Host> {
    let n = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    let p = |v: i64| u16::try_from(v.clamp(0, 65535)).unwrap_or(0);
    Ok(Host {
        id: row.host_id(),
        cluster_id: ClusterId(row.cluster_id),
        status: HostStatus::parse(&row.status)
            .ok_or_else(|| AppError::Internal(format!("host status {:?}", row.status)))?,
        hostname: row.hostname,
        agent_version: row.agent_version,
        total: Resources { cpu: n(row.cpu_total), memory: n(row.memory_total) },
        reserved: Resources { cpu: n(row.cpu_reserved), memory: n(row.memory_reserved) },
        used: Resources { cpu: n(row.cpu_used), memory: n(row.memory_used) },
        dynamic_port_range: [p(row.port_range_start), p(row.port_range_end)],
        attributes: row.attributes.0,
        registered_at: row.created_at,
        last_heartbeat_at: row.last_heartbeat_at,
        version: row.version,
    })
}

async fn resolve(
    tx: &mut Tx,
    scope: AccountScope,
    principal: &Principal,
    action: Action,
    cluster: &str,
    host: &str,
) -> AppResult<(ClusterId, HostRow)> {
    let cluster = clusters::resolve(tx, scope, cluster).await?;
    authorize(principal, action, Some(&cluster.name))?;
    let id: HostId = host.parse().map_err(|_| AppError::not_found("host", host))?;
    let row = store::hosts::get(tx, scope, cluster.cluster_id(), id)
        .await?
        .ok_or_else(|| AppError::not_found("host", host))?;
    Ok((cluster.cluster_id(), row))
}

impl App {
    pub async fn list_hosts(&self, principal: &Principal, cluster: &str, page: &Page) -> AppResult<ListHostsResponse> {
        authorize(principal, Action::ReadHost, None)?;
        let page = PageRequest::<uuid::Uuid>::parse(page.limit, page.next_token.as_deref())?;
        let scope = principal.scope();
        let mut tx = self.db().begin_read().await?;
        let cluster = clusters::resolve(&mut tx, scope, cluster).await?;
        authorize(principal, Action::ReadHost, Some(&cluster.name))?;
        let rows = store::hosts::list(&mut tx, scope, cluster.cluster_id(), page.after, page.fetch_limit()).await?;
        tx.rollback().await?;
        let (rows, next_token) = paging::finish(rows, page.limit, |r| r.id);
        Ok(ListHostsResponse { hosts: rows.into_iter().map(to_wire).collect::<AppResult<_>>()?, next_token })
    }

    pub async fn get_host(&self, principal: &Principal, cluster: &str, host: &str) -> AppResult<Host> {
        authorize(principal, Action::ReadHost, None)?;
        let mut tx = self.db().begin_read().await?;
        let (_, row) = resolve(&mut tx, principal.scope(), principal, Action::ReadHost, cluster, host).await?;
        tx.rollback().await?;
        to_wire(row)
    }

    pub async fn update_host_attributes(
        &self,
        principal: &Principal,
        cluster: &str,
        host: &str,
        req: UpdateHostAttributesRequest,
        if_match: Option<i64>,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<Host>> {
        authorize(principal, Action::UpdateHost, None)?;
        if req.attributes.len() > 50 {
            return Err(AppError::validation("attributes", "at most 50 attributes"));
        }
        for (k, v) in &req.attributes {
            validate::attribute(&format!("attributes.{k}"), k, v)?;
            if AGENT_ATTRIBUTES.contains(&k.as_str()) {
                return Err(AppError::validation(format!("attributes.{k}"), format!("{k} is reported by the agent")));
            }
        }
        let scope = principal.scope();
        super::retry_on_contention(
            HOST_WRITE_ATTEMPTS,
            || AppError::concurrent("host"),
            || {
                let (cluster, host, principal, req) =
                    (cluster.to_owned(), host.to_owned(), principal.clone(), req.clone());
                self.write(scope, idem, move |tx| {
                    Box::pin(async move {
                        let (_, row) = resolve(tx, scope, &principal, Action::UpdateHost, &cluster, &host).await?;
                        check_version("host", if_match, row.version)?;
                        let mut attrs: BTreeMap<String, String> = row
                            .attributes
                            .0
                            .iter()
                            .filter(|(k, _)| AGENT_ATTRIBUTES.contains(&k.as_str()))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        attrs.extend(req.attributes.clone());
                        let now = store::now();
                        let Some(updated) =
                            store::hosts::set_attributes(tx, scope, row.host_id(), row.version, &attrs, now).await?
                        else {
                            return Err(AppError::Contention);
                        };
                        // Daemon services follow host changes.
                        tx.wake(crate::reconcilers::services::WAKE_KEY);
                        store::events::append(
                            tx,
                            scope,
                            "host.attributes_changed",
                            &row.id.to_string(),
                            json!({"attributes": attrs}),
                            now,
                        )
                        .await?;
                        to_wire(updated)
                    })
                })
            },
        )
        .await
    }

    /// Stops new placements on the host. Standalone tasks keep running there
    /// (as ECS does); services move theirs (the services issue).
    pub async fn drain_host(
        &self,
        principal: &Principal,
        cluster: &str,
        host: &str,
        if_match: Option<i64>,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<Host>> {
        authorize(principal, Action::UpdateHost, None)?;
        let scope = principal.scope();
        super::retry_on_contention(
            HOST_WRITE_ATTEMPTS,
            || AppError::concurrent("host"),
            || {
                let (cluster, host, principal) = (cluster.to_owned(), host.to_owned(), principal.clone());
                self.write(scope, idem, move |tx| {
                    Box::pin(async move {
                        let (_, row) = resolve(tx, scope, &principal, Action::UpdateHost, &cluster, &host).await?;
                        check_version("host", if_match, row.version)?;
                        match row.status.as_str() {
                            "DRAINING" => return to_wire(row),
                            "ACTIVE" | "DISCONNECTED" => {}
                            other => {
                                return Err(AppError::InvalidTransition(format!("a {other} host cannot be drained")));
                            }
                        }
                        let now = store::now();
                        let Some(updated) =
                            store::hosts::set_status(tx, scope, row.host_id(), row.version, "DRAINING", now).await?
                        else {
                            return Err(AppError::Contention);
                        };
                        // Services move their tasks off a draining host.
                        tx.wake(crate::reconcilers::services::WAKE_KEY);
                        store::events::append(tx, scope, "host.draining", &row.id.to_string(), json!({}), now).await?;
                        to_wire(updated)
                    })
                })
            },
        )
        .await
    }

    /// Removes the host from the cluster. Refused while tasks are not STOPPED
    /// there, unless `force`: then they are stopped with `HostLost`.
    pub async fn deregister_host(
        &self,
        principal: &Principal,
        cluster: &str,
        host: &str,
        req: DeregisterHostRequest,
        if_match: Option<i64>,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<Host>> {
        authorize(principal, Action::UpdateHost, None)?;
        let scope = principal.scope();
        super::retry_on_contention(
            HOST_WRITE_ATTEMPTS,
            || AppError::concurrent("host"),
            || {
                let (cluster, host, principal, req) =
                    (cluster.to_owned(), host.to_owned(), principal.clone(), req.clone());
                self.write(scope, idem, move |tx| {
                    Box::pin(async move {
                        let (cluster_id, row) =
                            resolve(tx, scope, &principal, Action::UpdateHost, &cluster, &host).await?;
                        check_version("host", if_match, row.version)?;
                        if row.status == "DEREGISTERED" {
                            return to_wire(row);
                        }
                        let active = store::tasks::count_active_on_host(tx, scope, row.host_id()).await?;
                        if active > 0 && !req.force {
                            return Err(AppError::InUse(format!(
                                "{active} task(s) are not STOPPED on this host; stop them, or deregister with force"
                            )));
                        }
                        let now = store::now();
                        if active > 0 {
                            let filter = TaskFilter { host_id: Some(row.host_id()), ..Default::default() };
                            let tasks = store::tasks::list(tx, scope, cluster_id, &filter, None, 10_000).await?;
                            for t in tasks.iter().filter(|t| t.last_status != "STOPPED") {
                                super::agent::stop_in_store(
                                    tx,
                                    scope,
                                    t,
                                    StopCode::HostLost,
                                    "the host was deregistered",
                                )
                                .await?;
                            }
                        }
                        let row = store::hosts::get(tx, scope, cluster_id, row.host_id())
                            .await?
                            .ok_or_else(|| AppError::not_found("host", &host))?;
                        let Some(updated) =
                            store::hosts::set_status(tx, scope, row.host_id(), row.version, "DEREGISTERED", now)
                                .await?
                        else {
                            return Err(AppError::Contention);
                        };
                        super::quotas::release(tx, scope, &[(berth_api::quotas::QuotaName::Hosts, 1)]).await?;
                        // Daemon services follow host changes.
                        tx.wake(crate::reconcilers::services::WAKE_KEY);
                        store::events::append(
                            tx,
                            scope,
                            "host.deregistered",
                            &row.id.to_string(),
                            json!({"forced": req.force}),
                            now,
                        )
                        .await?;
                        to_wire(updated)
                    })
                })
            },
        )
        .await
    }
}

/// How often a host write is tried when placements keep changing the row:
/// placements change a host's row (its used resources) all the time, so a
/// host write that lost the race to one reads the fresh row and tries again,
/// rather than telling the caller to.
const HOST_WRITE_ATTEMPTS: usize = 5;

impl App {
    /// A dry run: which hosts would be chosen, and why every other host would not.
    pub async fn simulate_placement(
        &self,
        principal: &Principal,
        cluster: &str,
        req: SimulatePlacementRequest,
    ) -> AppResult<SimulatePlacementResponse> {
        authorize(principal, Action::SimulatePlacement, None)?;
        let _slot = self.expensive_call(principal.account_id)?;
        if req.count == 0 || req.count > 1000 {
            return Err(AppError::validation("count", "count must be 1-1000"));
        }
        let (family, revision) = task_definitions::parse_reference("task_definition", &req.task_definition)?;
        let spec = placement::spec_from(&req.placement_strategy, &req.placement_constraints)?;
        let scope = principal.scope();
        let mut tx = self.db().begin_read().await?;
        let cluster = clusters::resolve(&mut tx, scope, cluster).await?;
        authorize(principal, Action::SimulatePlacement, Some(&cluster.name))?;
        let td = task_definitions::resolve(&mut tx, scope, &family, revision).await?;
        let def = &td.definition.0;
        let (cpu, memory) = super::tasks::resources_of(def);
        let needs = placement::needs_of(cpu, memory, def.network_mode, &def.container_definitions);
        let rows = store::hosts::for_placement(&mut tx, scope, cluster.cluster_id()).await?;
        let counts = store::tasks::group_counts_by_host(&mut tx, scope, cluster.cluster_id(), &td.family).await?;
        tx.rollback().await?;
        let hosts = placement::engine_hosts(&rows);
        let group = placement::group_counts(&rows, &counts);
        let plan = berth_placement::place(&hosts, &group, &needs, req.count as usize, &spec, placement::seed());
        let verdicts = berth_placement::explain(&hosts, &group, &needs, &spec);
        Ok(SimulatePlacementResponse {
            placements: plan.placed().map(|p| p.host).collect(),
            failures: plan
                .tasks
                .iter()
                .filter_map(|t| t.as_ref().err())
                .map(|u| Failure {
                    reason: u.rejected.keys().next().map_or("RESOURCE:NO_HOSTS", |r| r.as_str()).to_owned(),
                    detail: Some(u.describe()),
                })
                .collect(),
            hosts: rows
                .iter()
                .zip(verdicts)
                .map(|(r, v)| HostVerdict {
                    host_id: r.host_id(),
                    hostname: r.hostname.clone(),
                    eligible: v.is_none(),
                    reason: v.map(|r| r.as_str().to_owned()),
                })
                .collect(),
        })
    }
}
