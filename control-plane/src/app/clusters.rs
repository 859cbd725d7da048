//! Cluster operations.

use berth_api::clusters::{Cluster, ClusterStatus, CreateClusterRequest, ListClustersResponse, UpdateClusterRequest};
use berth_api::{ClusterId, Page};
use serde_json::json;

use super::paging::{self, PageRequest};
use berth_api::quotas::QuotaName;

use super::{App, AppError, AppResult, IdempotencyRequest, Written, check_version, quotas, validate};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::store::clusters::{ClusterRow, NewCluster};
use crate::store::{self, AccountScope, StoreError, Tx};

/// The cluster as the API shows it, with the count of its tasks that are
/// not STOPPED (read by the caller: resolving a cluster counts nothing).
pub(crate) fn to_wire(row: ClusterRow, active_tasks_count: i64) -> Cluster {
    Cluster {
        id: row.cluster_id(),
        name: row.name,
        status: ClusterStatus::Active,
        tags: row.tags.0,
        active_tasks_count,
        created_at: row.created_at,
        updated_at: row.updated_at,
        version: row.version,
    }
}

/// Finds a cluster by name, or by id when the reference is one.
pub(crate) async fn resolve(tx: &mut Tx, scope: AccountScope, reference: &str) -> AppResult<ClusterRow> {
    let row = match reference.parse::<ClusterId>() {
        Ok(id) => store::clusters::get_by_id(tx, scope, id).await?,
        Err(_) => store::clusters::get_by_name(tx, scope, reference).await?,
    };
    row.ok_or_else(|| AppError::not_found("cluster", reference))
}

impl App {
    pub async fn create_cluster(
        &self,
        principal: &Principal,
        req: CreateClusterRequest,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<Cluster>> {
        validate::name("name", &req.name)?;
        validate::tags("tags", &req.tags)?;
        authorize(principal, Action::CreateCluster, Some(&req.name))?;
        let scope = principal.scope();
        let defaults = self.quota_defaults().clone();
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                quotas::require(tx, scope, &defaults, &[(QuotaName::Clusters, 1)]).await?;
                let now = store::now();
                let id = ClusterId::generate();
                let new = NewCluster { id, name: &req.name, tags: &req.tags, now, pool_priority: None };
                let row = match store::clusters::insert(tx, scope, new).await {
                    Err(StoreError::UniqueViolation(_)) => {
                        return Err(AppError::AlreadyExists { kind: "cluster", name: req.name.clone(), field: "name" });
                    }
                    other => other?,
                };
                store::events::append(tx, scope, "cluster.created", &id.to_string(), json!({"name": req.name}), now)
                    .await?;
                // Created in this transaction, so it has no tasks yet.
                Ok(to_wire(row, 0))
            })
        })
        .await
    }

    pub async fn list_clusters(&self, principal: &Principal, page: &Page) -> AppResult<ListClustersResponse> {
        authorize(principal, Action::ReadCluster, None)?;
        let page = PageRequest::<ClusterId>::parse(page.limit, page.next_token.as_deref())?;
        let mut tx = self.db().begin_read().await?;
        // A key restricted to clusters lists only those.
        let only = principal.clusters.as_deref();
        let rows = store::clusters::list(&mut tx, principal.scope(), only, page.after, page.fetch_limit()).await?;
        let (rows, next_token) = paging::finish(rows, page.limit, ClusterRow::cluster_id);
        let ids: Vec<ClusterId> = rows.iter().map(ClusterRow::cluster_id).collect();
        let counts = store::tasks::count_active_by_cluster(&mut tx, principal.scope(), &ids).await?;
        tx.rollback().await?;
        let clusters = rows
            .into_iter()
            .map(|row| {
                let active = counts.get(&row.cluster_id()).copied().unwrap_or(0);
                to_wire(row, active)
            })
            .collect();
        Ok(ListClustersResponse { clusters, next_token })
    }

    pub async fn get_cluster(&self, principal: &Principal, cluster: &str) -> AppResult<Cluster> {
        authorize(principal, Action::ReadCluster, None)?;
        let mut tx = self.db().begin_read().await?;
        let row = resolve(&mut tx, principal.scope(), cluster).await?;
        authorize(principal, Action::ReadCluster, Some(&row.name))?;
        let active = store::tasks::count_active_in_cluster(&mut tx, principal.scope(), row.cluster_id()).await?;
        tx.rollback().await?;
        Ok(to_wire(row, active))
    }

    pub async fn update_cluster(
        &self,
        principal: &Principal,
        cluster: &str,
        if_match: Option<i64>,
        req: UpdateClusterRequest,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<Cluster>> {
        authorize(principal, Action::UpdateCluster, None)?;
        if let Some(tags) = &req.tags {
            validate::tags("tags", tags)?;
        }
        let scope = principal.scope();
        let (cluster, principal) = (cluster.to_owned(), principal.clone());
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let row = resolve(tx, scope, &cluster).await?;
                authorize(&principal, Action::UpdateCluster, Some(&row.name))?;
                check_version("cluster", if_match, row.version)?;
                let active = store::tasks::count_active_in_cluster(tx, scope, row.cluster_id()).await?;
                let Some(tags) = req.tags else {
                    return Ok(to_wire(row, active));
                };
                let now = store::now();
                if !store::clusters::update_tags(tx, scope, row.cluster_id(), row.version, &tags, now).await? {
                    return Err(AppError::concurrent("cluster"));
                }
                store::events::append(tx, scope, "cluster.updated", &row.id.to_string(), json!({"tags": tags}), now)
                    .await?;
                let row = resolve(tx, scope, &row.id.to_string()).await?;
                Ok(to_wire(row, active))
            })
        })
        .await
    }

    /// Deletes a cluster that has no tasks left running (stopped tasks go with it).
    pub async fn delete_cluster(
        &self,
        principal: &Principal,
        cluster: &str,
        if_match: Option<i64>,
        idem: Option<&IdempotencyRequest>,
    ) -> AppResult<Written<()>> {
        authorize(principal, Action::DeleteCluster, None)?;
        let scope = principal.scope();
        let (cluster, principal) = (cluster.to_owned(), principal.clone());
        self.write(scope, idem, move |tx| {
            Box::pin(async move {
                let row = resolve(tx, scope, &cluster).await?;
                authorize(&principal, Action::DeleteCluster, Some(&row.name))?;
                check_version("cluster", if_match, row.version)?;
                let active = store::tasks::count_active_in_cluster(tx, scope, row.cluster_id()).await?;
                if active > 0 {
                    return Err(AppError::InUse(format!(
                        "cluster {:?} still has {active} task(s) that are not STOPPED; stop them first",
                        row.name
                    )));
                }
                let services = store::services::count_live_in_cluster(tx, scope, row.cluster_id()).await?;
                if services > 0 {
                    return Err(AppError::InUse(format!(
                        "cluster {:?} still has {services} service(s); delete them first",
                        row.name
                    )));
                }
                let hosts = store::hosts::count_in_cluster(tx, scope, row.cluster_id()).await?;
                if hosts > 0 {
                    return Err(AppError::InUse(format!(
                        "cluster {:?} still has {hosts} registered host(s); deregister them first",
                        row.name
                    )));
                }
                store::hosts::delete_deregistered_in_cluster(tx, scope, row.cluster_id()).await?;
                if !store::clusters::delete(tx, scope, row.cluster_id(), row.version).await? {
                    return Err(AppError::concurrent("cluster"));
                }
                quotas::release(tx, scope, &[(QuotaName::Clusters, 1)]).await?;
                store::events::append(
                    tx,
                    scope,
                    "cluster.deleted",
                    &row.id.to_string(),
                    json!({"name": row.name}),
                    store::now(),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
