//! The control plane's JWT signing keys (system rows, not tenant data).

use sea_query::{Expr, ExprTrait, Order, Query};
use sqlx::FromRow;
use time::OffsetDateTime;

use super::schema::SigningKeys;
use super::{StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    pub private_ciphertext: String,
    pub master_key_id: String,
    pub public_key: String,
    pub created_at: OffsetDateTime,
    pub retire_at: OffsetDateTime,
}

const COLUMNS: [SigningKeys; 7] = [
    SigningKeys::Kid,
    SigningKeys::Algorithm,
    SigningKeys::PrivateCiphertext,
    SigningKeys::MasterKeyId,
    SigningKeys::PublicKey,
    SigningKeys::CreatedAt,
    SigningKeys::RetireAt,
];

pub async fn insert(tx: &mut Tx, row: &SigningKeyRow) -> StoreResult<()> {
    let stmt = Query::insert()
        .into_table(SigningKeys::Table)
        .columns(COLUMNS)
        .values_panic([
            row.kid.as_str().into(),
            row.algorithm.as_str().into(),
            row.private_ciphertext.as_str().into(),
            row.master_key_id.as_str().into(),
            row.public_key.as_str().into(),
            row.created_at.into(),
            row.retire_at.into(),
        ])
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// Keys that still verify tokens at `now`, newest first.
pub async fn live(tx: &mut Tx, now: OffsetDateTime) -> StoreResult<Vec<SigningKeyRow>> {
    let stmt = Query::select()
        .columns(COLUMNS)
        .from(SigningKeys::Table)
        .and_where(Expr::col(SigningKeys::RetireAt).gt(now))
        .order_by(SigningKeys::CreatedAt, Order::Desc)
        .to_owned();
    tx.fetch_all(&stmt).await
}

pub async fn all(tx: &mut Tx) -> StoreResult<Vec<SigningKeyRow>> {
    let stmt = Query::select().columns(COLUMNS).from(SigningKeys::Table).to_owned();
    tx.fetch_all(&stmt).await
}

pub async fn reencrypt(
    tx: &mut Tx,
    kid: &str,
    old_key: &str,
    master_key_id: &str,
    ciphertext: &str,
) -> StoreResult<bool> {
    let stmt = Query::update()
        .table(SigningKeys::Table)
        .value(SigningKeys::PrivateCiphertext, ciphertext)
        .value(SigningKeys::MasterKeyId, master_key_id)
        .and_where(Expr::col(SigningKeys::Kid).eq(kid))
        .and_where(Expr::col(SigningKeys::MasterKeyId).eq(old_key))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}

/// Ends a key's life early (tests, and an operator revoking a leaked key).
pub async fn retire(tx: &mut Tx, kid: &str, at: OffsetDateTime) -> StoreResult<bool> {
    let stmt = Query::update()
        .table(SigningKeys::Table)
        .value(SigningKeys::RetireAt, at)
        .and_where(Expr::col(SigningKeys::Kid).eq(kid))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}
