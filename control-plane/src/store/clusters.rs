//! Clusters.

use berth_api::{ClusterId, Tags};
use sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sqlx::FromRow;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::Clusters;
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct ClusterRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub status: String,
    pub tags: Json<Tags>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
    /// Set for a capacity pool (the operator's, for MANAGED tasks): lower is tried first.
    pub pool_priority: Option<i64>,
}

impl ClusterRow {
    pub fn cluster_id(&self) -> ClusterId {
        ClusterId(self.id)
    }
}

pub struct NewCluster<'a> {
    pub id: ClusterId,
    pub name: &'a str,
    pub tags: &'a Tags,
    pub now: OffsetDateTime,
    pub pool_priority: Option<i64>,
}

const COLUMNS: [Clusters; 9] = [
    Clusters::Id,
    Clusters::AccountId,
    Clusters::Name,
    Clusters::Status,
    Clusters::Tags,
    Clusters::CreatedAt,
    Clusters::UpdatedAt,
    Clusters::Version,
    Clusters::PoolPriority,
];

/// Selects clusters, limited to the scope. Nothing is counted here: every
/// call that names a cluster resolves it, and a count of its tasks grows
/// with the cluster (see `store::tasks::count_active_by_cluster`).
fn select(scope: AccountScope) -> SelectStatement {
    Query::select()
        .columns(COLUMNS)
        .from(Clusters::Table)
        .and_where(Expr::col(Clusters::AccountId).eq(scope.uuid()))
        .to_owned()
}

pub async fn insert(tx: &mut Tx, scope: AccountScope, new: NewCluster<'_>) -> StoreResult<ClusterRow> {
    let stmt = Query::insert()
        .into_table(Clusters::Table)
        .columns(COLUMNS)
        .values_panic([
            new.id.0.into(),
            scope.uuid().into(),
            new.name.into(),
            "ACTIVE".into(),
            serde_json::to_value(new.tags).unwrap_or_default().into(),
            new.now.into(),
            new.now.into(),
            1i64.into(),
            new.pool_priority.into(),
        ])
        .to_owned();
    tx.execute(&stmt).await?;
    get_by_id(tx, scope, new.id).await?.ok_or_else(|| super::StoreError::Corrupt("inserted cluster not found".into()))
}

pub async fn get_by_id(tx: &mut Tx, scope: AccountScope, id: ClusterId) -> StoreResult<Option<ClusterRow>> {
    let stmt = select(scope).and_where(Expr::col(Clusters::Id).eq(id.0)).to_owned();
    tx.fetch_optional(&stmt).await
}

pub async fn get_by_name(tx: &mut Tx, scope: AccountScope, name: &str) -> StoreResult<Option<ClusterRow>> {
    let stmt = select(scope).and_where(Expr::col(Clusters::Name).eq(name)).to_owned();
    tx.fetch_optional(&stmt).await
}

/// The capacity pools (clusters of the operator's account), in the order
/// MANAGED placement tries them: by priority, then age.
pub async fn pools(tx: &mut Tx) -> StoreResult<Vec<ClusterRow>> {
    let stmt = Query::select()
        .columns(COLUMNS)
        .from(Clusters::Table)
        .and_where(Expr::col(Clusters::PoolPriority).is_not_null())
        .order_by(Clusters::PoolPriority, Order::Asc)
        .order_by(Clusters::Id, Order::Asc)
        .to_owned();
    tx.fetch_all(&stmt).await
}

/// The capacity pools as placement tries them (priority, then age): each
/// pool's id and the operator account it belongs to, and nothing to count,
/// since every MANAGED launch reads it.
pub async fn pool_order(tx: &mut Tx) -> StoreResult<Vec<(ClusterId, AccountScope)>> {
    #[derive(FromRow)]
    struct Row {
        id: Uuid,
        account_id: Uuid,
    }
    let stmt = Query::select()
        .columns([Clusters::Id, Clusters::AccountId])
        .from(Clusters::Table)
        .and_where(Expr::col(Clusters::PoolPriority).is_not_null())
        .order_by(Clusters::PoolPriority, Order::Asc)
        .order_by(Clusters::Id, Order::Asc)
        .to_owned();
    Ok(tx
        .fetch_all::<Row, _>(&stmt)
        .await?
        .into_iter()
        .map(|r| (ClusterId(r.id), AccountScope::new(berth_api::AccountId(r.account_id))))
        .collect())
}

/// Clusters in id (creation) order, after `after` when given; capacity
/// pools are listed as pools, not here.
pub async fn list(
    tx: &mut Tx,
    scope: AccountScope,
    only: Option<&[String]>,
    after: Option<ClusterId>,
    limit: u64,
) -> StoreResult<Vec<ClusterRow>> {
    let mut stmt = select(scope);
    stmt.and_where(Expr::col(Clusters::PoolPriority).is_null());
    if let Some(names) = only {
        stmt.and_where(Expr::col(Clusters::Name).is_in(names.iter().map(String::as_str)));
    }
    if let Some(after) = after {
        stmt.and_where(Expr::col(Clusters::Id).gt(after.0));
    }
    stmt.order_by(Clusters::Id, Order::Asc).limit(limit);
    tx.fetch_all(&stmt).await
}

/// Replaces the tags when the version matches. Returns false when no row
/// matched (missing, or another version).
pub async fn update_tags(
    tx: &mut Tx,
    scope: AccountScope,
    id: ClusterId,
    expected_version: i64,
    tags: &Tags,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let stmt = Query::update()
        .table(Clusters::Table)
        .value(Clusters::Tags, serde_json::to_value(tags).unwrap_or_default())
        .value(Clusters::UpdatedAt, now)
        .value(Clusters::Version, Expr::col(Clusters::Version).add(1))
        .and_where(Expr::col(Clusters::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Clusters::Id).eq(id.0))
        .and_where(Expr::col(Clusters::Version).eq(expected_version))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}

/// Deletes the cluster (and, by cascade, its stopped tasks) when the version matches.
pub async fn delete(tx: &mut Tx, scope: AccountScope, id: ClusterId, expected_version: i64) -> StoreResult<bool> {
    let stmt = Query::delete()
        .from_table(Clusters::Table)
        .and_where(Expr::col(Clusters::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Clusters::Id).eq(id.0))
        .and_where(Expr::col(Clusters::Version).eq(expected_version))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}

/// Takes the cluster row's lock until the transaction ends (PostgreSQL; SQLite
/// transactions that write already hold the database's single write lock).
/// Placement falls back to this after an optimistic conflict, so a busy
/// cluster's placements queue instead of retrying forever.
pub async fn lock_for_placement(tx: &mut Tx, scope: AccountScope, id: ClusterId) -> StoreResult<()> {
    if tx.backend() == super::Backend::Postgres {
        let stmt = Query::select()
            .column(Clusters::Id)
            .from(Clusters::Table)
            .and_where(Expr::col(Clusters::AccountId).eq(scope.uuid()))
            .and_where(Expr::col(Clusters::Id).eq(id.0))
            // NO KEY UPDATE: blocks other placements' lock, but not the key-share locks
            // that inserting a task (foreign key) takes on the cluster row.
            .lock(sea_query::LockType::NoKeyUpdate)
            .to_owned();
        #[derive(FromRow)]
        struct Id {
            #[allow(dead_code)]
            id: Uuid,
        }
        tx.fetch_optional::<Id, _>(&stmt).await?;
    }
    Ok(())
}
