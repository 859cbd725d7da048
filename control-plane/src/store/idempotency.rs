//! Idempotency records: the first response to a mutating call, kept under
//! the client's key so a retry gets the same answer instead of a second write.

use sea_query::{Expr, ExprTrait, OnConflict, Query};
use sqlx::FromRow;
use sqlx::types::Json;
use time::OffsetDateTime;

use super::schema::IdempotencyRecords;
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub response_status: i64,
    pub response_body: Json<serde_json::Value>,
}

/// What [`claim`] found.
pub enum Claim {
    /// This transaction now owns the key; complete it before commit.
    Claimed,
    /// The key was used before (and committed).
    Existing(IdempotencyRow),
}

/// Takes the key for this transaction. A concurrent request with the same key
/// blocks on the uncommitted row (PostgreSQL) or on the write lock (SQLite)
/// until this transaction ends, and then sees its record.
pub async fn claim(
    tx: &mut Tx,
    scope: AccountScope,
    key: &str,
    request_hash: &str,
    now: OffsetDateTime,
) -> StoreResult<Claim> {
    let insert = Query::insert()
        .into_table(IdempotencyRecords::Table)
        .columns([
            IdempotencyRecords::AccountId,
            IdempotencyRecords::IdempotencyKey,
            IdempotencyRecords::RequestHash,
            IdempotencyRecords::ResponseStatus,
            IdempotencyRecords::ResponseBody,
            IdempotencyRecords::CreatedAt,
        ])
        .values_panic([
            scope.uuid().into(),
            key.into(),
            request_hash.into(),
            0i64.into(),
            serde_json::Value::Null.into(),
            now.into(),
        ])
        .on_conflict(
            OnConflict::columns([IdempotencyRecords::AccountId, IdempotencyRecords::IdempotencyKey])
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    if tx.execute(&insert).await? == 1 {
        return Ok(Claim::Claimed);
    }
    let select = Query::select()
        .columns([
            IdempotencyRecords::RequestHash,
            IdempotencyRecords::ResponseStatus,
            IdempotencyRecords::ResponseBody,
        ])
        .from(IdempotencyRecords::Table)
        .and_where(Expr::col(IdempotencyRecords::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(IdempotencyRecords::IdempotencyKey).eq(key))
        .to_owned();
    Ok(Claim::Existing(tx.fetch_one(&select).await?))
}

/// Stores the response for a claimed key.
pub async fn complete(
    tx: &mut Tx,
    scope: AccountScope,
    key: &str,
    status: u16,
    body: serde_json::Value,
) -> StoreResult<()> {
    let stmt = Query::update()
        .table(IdempotencyRecords::Table)
        .value(IdempotencyRecords::ResponseStatus, i64::from(status))
        .value(IdempotencyRecords::ResponseBody, body)
        .and_where(Expr::col(IdempotencyRecords::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(IdempotencyRecords::IdempotencyKey).eq(key))
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}
