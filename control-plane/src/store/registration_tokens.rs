//! Per-cluster registration tokens, which host agents exchange for a host credential.

use berth_api::ClusterId;
use sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::RegistrationTokens;
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct RegistrationTokenRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub cluster_id: Uuid,
    pub description: Option<String>,
    pub expires_at: OffsetDateTime,
    pub max_uses: i64,
    pub uses: i64,
    pub status: String,
    pub created_at: OffsetDateTime,
    pub version: i64,
}

fn select() -> SelectStatement {
    Query::select()
        .columns([
            RegistrationTokens::Id,
            RegistrationTokens::AccountId,
            RegistrationTokens::ClusterId,
            RegistrationTokens::Description,
            RegistrationTokens::ExpiresAt,
            RegistrationTokens::MaxUses,
            RegistrationTokens::Uses,
            RegistrationTokens::Status,
            RegistrationTokens::CreatedAt,
            RegistrationTokens::Version,
        ])
        .from(RegistrationTokens::Table)
        .to_owned()
}

pub struct NewToken<'a> {
    pub id: Uuid,
    pub cluster_id: ClusterId,
    pub token_hash: &'a str,
    pub description: Option<&'a str>,
    pub expires_at: OffsetDateTime,
    pub max_uses: i64,
    pub now: OffsetDateTime,
}

pub async fn insert(tx: &mut Tx, scope: AccountScope, new: NewToken<'_>) -> StoreResult<()> {
    let stmt = Query::insert()
        .into_table(RegistrationTokens::Table)
        .columns([
            RegistrationTokens::Id,
            RegistrationTokens::AccountId,
            RegistrationTokens::ClusterId,
            RegistrationTokens::TokenHash,
            RegistrationTokens::Description,
            RegistrationTokens::ExpiresAt,
            RegistrationTokens::MaxUses,
            RegistrationTokens::Uses,
            RegistrationTokens::Status,
            RegistrationTokens::CreatedAt,
            RegistrationTokens::Version,
        ])
        .values_panic([
            new.id.into(),
            scope.uuid().into(),
            new.cluster_id.0.into(),
            new.token_hash.into(),
            new.description.map(str::to_owned).into(),
            new.expires_at.into(),
            new.max_uses.into(),
            0i64.into(),
            "ACTIVE".into(),
            new.now.into(),
            1i64.into(),
        ])
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

pub async fn get(
    tx: &mut Tx,
    scope: AccountScope,
    cluster: ClusterId,
    id: Uuid,
) -> StoreResult<Option<RegistrationTokenRow>> {
    let stmt = select()
        .and_where(Expr::col(RegistrationTokens::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(RegistrationTokens::ClusterId).eq(cluster.0))
        .and_where(Expr::col(RegistrationTokens::Id).eq(id))
        .to_owned();
    tx.fetch_optional(&stmt).await
}

pub async fn list(
    tx: &mut Tx,
    scope: AccountScope,
    cluster: ClusterId,
    after: Option<Uuid>,
    limit: u64,
) -> StoreResult<Vec<RegistrationTokenRow>> {
    let mut stmt = select()
        .and_where(Expr::col(RegistrationTokens::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(RegistrationTokens::ClusterId).eq(cluster.0))
        .to_owned();
    if let Some(after) = after {
        stmt.and_where(Expr::col(RegistrationTokens::Id).gt(after));
    }
    stmt.order_by(RegistrationTokens::Id, Order::Asc).limit(limit);
    tx.fetch_all(&stmt).await
}

pub async fn revoke(tx: &mut Tx, scope: AccountScope, id: Uuid, expected_version: i64) -> StoreResult<bool> {
    let stmt = Query::update()
        .table(RegistrationTokens::Table)
        .value(RegistrationTokens::Status, "REVOKED")
        .value(RegistrationTokens::Version, Expr::col(RegistrationTokens::Version).add(1))
        .and_where(Expr::col(RegistrationTokens::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(RegistrationTokens::Id).eq(id))
        .and_where(Expr::col(RegistrationTokens::Version).eq(expected_version))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}

/// Uses the token once if it is active, unexpired and has uses left; returns
/// the token's row when it was used. The check and the count are one
/// conditional update, so concurrent registrations cannot overdraw it.
pub async fn consume(tx: &mut Tx, token_hash: &str, now: OffsetDateTime) -> StoreResult<Option<RegistrationTokenRow>> {
    let stmt = Query::update()
        .table(RegistrationTokens::Table)
        .value(RegistrationTokens::Uses, Expr::col(RegistrationTokens::Uses).add(1))
        .and_where(Expr::col(RegistrationTokens::TokenHash).eq(token_hash))
        .and_where(Expr::col(RegistrationTokens::Status).eq("ACTIVE"))
        .and_where(Expr::col(RegistrationTokens::ExpiresAt).gt(now))
        .and_where(Expr::col(RegistrationTokens::Uses).lt(Expr::col(RegistrationTokens::MaxUses)))
        .to_owned();
    if tx.execute(&stmt).await? != 1 {
        return Ok(None);
    }
    let stmt = select().and_where(Expr::col(RegistrationTokens::TokenHash).eq(token_hash)).to_owned();
    tx.fetch_optional(&stmt).await
}
