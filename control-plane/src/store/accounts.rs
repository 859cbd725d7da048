//! Accounts (tenants). These rows are not tenant-scoped: only the operator's
//! code paths and authentication read them.

use berth_api::AccountId;
use sea_query::{Expr, ExprTrait, Query};
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
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl AccountRow {
    pub fn account_id(&self) -> AccountId {
        AccountId(self.id)
    }
}

const COLUMNS: [Accounts; 6] =
    [Accounts::Id, Accounts::Name, Accounts::Status, Accounts::CreatedAt, Accounts::UpdatedAt, Accounts::Version];

pub async fn insert(tx: &mut Tx, id: AccountId, name: &str, now: OffsetDateTime) -> StoreResult<AccountRow> {
    let stmt = Query::insert()
        .into_table(Accounts::Table)
        .columns([
            Accounts::Id,
            Accounts::Name,
            Accounts::Status,
            Accounts::EventSeq,
            Accounts::CreatedAt,
            Accounts::UpdatedAt,
            Accounts::Version,
        ])
        .values_panic([id.0.into(), name.into(), "ACTIVE".into(), 0i64.into(), now.into(), now.into(), 1i64.into()])
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    tx.fetch_one(&stmt).await
}

pub async fn get(tx: &mut Tx, id: AccountId) -> StoreResult<Option<AccountRow>> {
    let stmt =
        Query::select().columns(COLUMNS).from(Accounts::Table).and_where(Expr::col(Accounts::Id).eq(id.0)).to_owned();
    tx.fetch_optional(&stmt).await
}

pub async fn get_by_name(tx: &mut Tx, name: &str) -> StoreResult<Option<AccountRow>> {
    let stmt =
        Query::select().columns(COLUMNS).from(Accounts::Table).and_where(Expr::col(Accounts::Name).eq(name)).to_owned();
    tx.fetch_optional(&stmt).await
}
