//! Operator-set rate limits per account, and the replicas that share them.

use sea_query::{Expr, ExprTrait, OnConflict, Query};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::{RateLimitOverrides, Replicas};
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct OverrideRow {
    pub account_id: Uuid,
    pub class: String,
    /// Tokens per second, stored in thousandths so both backends keep it exactly.
    pub per_second: i64,
    pub burst: i64,
}

/// Every account's overrides (a replica caches them all; there are few).
pub async fn all_overrides(tx: &mut Tx) -> StoreResult<Vec<OverrideRow>> {
    let stmt = Query::select()
        .columns([
            RateLimitOverrides::AccountId,
            RateLimitOverrides::Class,
            RateLimitOverrides::PerSecond,
            RateLimitOverrides::Burst,
        ])
        .from(RateLimitOverrides::Table)
        .to_owned();
    tx.fetch_all(&stmt).await
}

pub async fn set_override(
    tx: &mut Tx,
    scope: AccountScope,
    class: &str,
    per_second_milli: i64,
    burst: i64,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let stmt = Query::insert()
        .into_table(RateLimitOverrides::Table)
        .columns([
            RateLimitOverrides::AccountId,
            RateLimitOverrides::Class,
            RateLimitOverrides::PerSecond,
            RateLimitOverrides::Burst,
            RateLimitOverrides::UpdatedAt,
        ])
        .values_panic([scope.uuid().into(), class.into(), per_second_milli.into(), burst.into(), now.into()])
        .on_conflict(
            OnConflict::columns([RateLimitOverrides::AccountId, RateLimitOverrides::Class])
                .update_columns([
                    RateLimitOverrides::PerSecond,
                    RateLimitOverrides::Burst,
                    RateLimitOverrides::UpdatedAt,
                ])
                .to_owned(),
        )
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

pub async fn clear_override(tx: &mut Tx, scope: AccountScope, class: &str) -> StoreResult<bool> {
    let stmt = Query::delete()
        .from_table(RateLimitOverrides::Table)
        .and_where(Expr::col(RateLimitOverrides::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(RateLimitOverrides::Class).eq(class))
        .to_owned();
    Ok(tx.execute(&stmt).await? > 0)
}

/// Records that this replica is alive.
pub async fn replica_alive(tx: &mut Tx, id: Uuid, now: OffsetDateTime) -> StoreResult<()> {
    let stmt = Query::insert()
        .into_table(Replicas::Table)
        .columns([Replicas::Id, Replicas::StartedAt, Replicas::LastSeenAt])
        .values_panic([id.into(), now.into(), now.into()])
        .on_conflict(OnConflict::column(Replicas::Id).update_column(Replicas::LastSeenAt).to_owned())
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// Replicas seen since `since`; older rows are deleted on the way.
pub async fn live_replicas(tx: &mut Tx, since: OffsetDateTime) -> StoreResult<i64> {
    let purge = Query::delete()
        .from_table(Replicas::Table)
        .and_where(Expr::col(Replicas::LastSeenAt).lt(since - time::Duration::hours(1)))
        .to_owned();
    tx.execute(&purge).await?;
    tx.count(Query::select().from(Replicas::Table).and_where(Expr::col(Replicas::LastSeenAt).gte(since)).to_owned())
        .await
}

/// This replica is shutting down: the others take its share at once.
pub async fn replica_gone(tx: &mut Tx, id: Uuid) -> StoreResult<()> {
    let stmt = Query::delete().from_table(Replicas::Table).and_where(Expr::col(Replicas::Id).eq(id)).to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}
