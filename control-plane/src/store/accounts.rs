//! Accounts (tenants). These rows are not tenant-scoped: only the operator's
//! code paths and authentication read them.

use berth_api::AccountId;
use sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::Accounts;
use super::{StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct AccountRow {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub is_operator: bool,
    pub status_reason: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl AccountRow {
    pub fn account_id(&self) -> AccountId {
        AccountId(self.id)
    }
}

const COLUMNS: [Accounts; 8] = [
    Accounts::Id,
    Accounts::Name,
    Accounts::Status,
    Accounts::IsOperator,
    Accounts::StatusReason,
    Accounts::CreatedAt,
    Accounts::UpdatedAt,
    Accounts::Version,
];

fn select() -> SelectStatement {
    Query::select().columns(COLUMNS).from(Accounts::Table).to_owned()
}

pub async fn insert(
    tx: &mut Tx,
    id: AccountId,
    name: &str,
    is_operator: bool,
    now: OffsetDateTime,
) -> StoreResult<AccountRow> {
    let stmt = Query::insert()
        .into_table(Accounts::Table)
        .columns([
            Accounts::Id,
            Accounts::Name,
            Accounts::Status,
            Accounts::EventSeq,
            Accounts::IsOperator,
            Accounts::CreatedAt,
            Accounts::UpdatedAt,
            Accounts::Version,
        ])
        .values_panic([
            id.0.into(),
            name.into(),
            "ACTIVE".into(),
            0i64.into(),
            is_operator.into(),
            now.into(),
            now.into(),
            1i64.into(),
        ])
        .to_owned();
    tx.execute(&stmt).await?;
    get(tx, id).await?.ok_or_else(|| super::StoreError::Corrupt("inserted account not found".into()))
}

pub async fn get(tx: &mut Tx, id: AccountId) -> StoreResult<Option<AccountRow>> {
    let stmt = select().and_where(Expr::col(Accounts::Id).eq(id.0)).to_owned();
    tx.fetch_optional(&stmt).await
}

pub async fn get_by_name(tx: &mut Tx, name: &str) -> StoreResult<Option<AccountRow>> {
    let stmt = select().and_where(Expr::col(Accounts::Name).eq(name)).to_owned();
    tx.fetch_optional(&stmt).await
}

pub async fn count(tx: &mut Tx) -> StoreResult<i64> {
    tx.count(Query::select().from(Accounts::Table).to_owned()).await
}

pub async fn list(tx: &mut Tx, after: Option<Uuid>, limit: u64) -> StoreResult<Vec<AccountRow>> {
    let mut stmt = select();
    if let Some(after) = after {
        stmt.and_where(Expr::col(Accounts::Id).gt(after));
    }
    stmt.order_by(Accounts::Id, Order::Asc).limit(limit);
    tx.fetch_all(&stmt).await
}

pub async fn set_status(
    tx: &mut Tx,
    id: AccountId,
    expected_version: i64,
    status: &str,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let stmt = Query::update()
        .table(Accounts::Table)
        .value(Accounts::Status, status)
        .value(Accounts::StatusReason, reason.map(str::to_owned))
        .value(Accounts::UpdatedAt, now)
        .value(Accounts::Version, Expr::col(Accounts::Version).add(1))
        .and_where(Expr::col(Accounts::Id).eq(id.0))
        .and_where(Expr::col(Accounts::Version).eq(expected_version))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}
