//! Access keys. Lookups by access key id are unscoped (authentication has no
//! account yet); every other function takes the account scope.

use sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sqlx::FromRow;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::AccessKeys;
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct AccessKeyRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub access_key_id: String,
    pub secret_ciphertext: String,
    pub master_key_id: String,
    pub role: String,
    pub cluster_scope: Option<Json<Vec<String>>>,
    pub status: String,
    pub description: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub last_used_ip: Option<String>,
    pub version: i64,
}

const COLUMNS: [AccessKeys; 13] = [
    AccessKeys::Id,
    AccessKeys::AccountId,
    AccessKeys::AccessKeyId,
    AccessKeys::SecretCiphertext,
    AccessKeys::MasterKeyId,
    AccessKeys::Role,
    AccessKeys::ClusterScope,
    AccessKeys::Status,
    AccessKeys::Description,
    AccessKeys::CreatedAt,
    AccessKeys::LastUsedAt,
    AccessKeys::LastUsedIp,
    AccessKeys::Version,
];

fn select() -> SelectStatement {
    Query::select().columns(COLUMNS).from(AccessKeys::Table).to_owned()
}

pub struct NewAccessKey<'a> {
    pub id: Uuid,
    pub access_key_id: &'a str,
    pub secret_ciphertext: &'a str,
    pub master_key_id: &'a str,
    pub role: &'a str,
    pub cluster_scope: Option<&'a [String]>,
    pub description: Option<&'a str>,
    pub now: OffsetDateTime,
}

pub async fn insert(tx: &mut Tx, scope: AccountScope, new: NewAccessKey<'_>) -> StoreResult<()> {
    let cluster_scope = new.cluster_scope.map(|c| serde_json::json!(c));
    let stmt = Query::insert()
        .into_table(AccessKeys::Table)
        .columns([
            AccessKeys::Id,
            AccessKeys::AccountId,
            AccessKeys::AccessKeyId,
            AccessKeys::SecretCiphertext,
            AccessKeys::MasterKeyId,
            AccessKeys::Role,
            AccessKeys::ClusterScope,
            AccessKeys::Status,
            AccessKeys::Description,
            AccessKeys::CreatedAt,
            AccessKeys::Version,
        ])
        .values_panic([
            new.id.into(),
            scope.uuid().into(),
            new.access_key_id.into(),
            new.secret_ciphertext.into(),
            new.master_key_id.into(),
            new.role.into(),
            cluster_scope.into(),
            "ACTIVE".into(),
            new.description.map(str::to_owned).into(),
            new.now.into(),
            1i64.into(),
        ])
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// For authentication: the key with this public id, in any account.
/// A key with its account's status, read in one statement outside a
/// transaction: authentication runs on every request, and a flood of them
/// (throttled or not) should cost one round trip each.
#[derive(Clone, Debug, FromRow)]
pub struct KeyWithAccount {
    #[sqlx(flatten)]
    pub key: AccessKeyRow,
    pub account_status: Option<String>,
    pub account_is_operator: Option<bool>,
}

pub async fn find_with_account(db: &super::Db, access_key_id: &str) -> StoreResult<Option<KeyWithAccount>> {
    let stmt = select()
        .expr_as(
            Expr::cust("(SELECT status FROM accounts WHERE accounts.id = access_keys.account_id)"),
            sea_query::Alias::new("account_status"),
        )
        .expr_as(
            Expr::cust("(SELECT is_operator FROM accounts WHERE accounts.id = access_keys.account_id)"),
            sea_query::Alias::new("account_is_operator"),
        )
        .and_where(Expr::col(AccessKeys::AccessKeyId).eq(access_key_id))
        .to_owned();
    db.fetch_optional(&stmt).await
}

pub async fn find_for_authentication(tx: &mut Tx, access_key_id: &str) -> StoreResult<Option<AccessKeyRow>> {
    let stmt = select().and_where(Expr::col(AccessKeys::AccessKeyId).eq(access_key_id)).to_owned();
    tx.fetch_optional(&stmt).await
}

pub async fn get(tx: &mut Tx, scope: AccountScope, access_key_id: &str) -> StoreResult<Option<AccessKeyRow>> {
    let stmt = select()
        .and_where(Expr::col(AccessKeys::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(AccessKeys::AccessKeyId).eq(access_key_id))
        .to_owned();
    tx.fetch_optional(&stmt).await
}

pub async fn list(tx: &mut Tx, scope: AccountScope, after: Option<Uuid>, limit: u64) -> StoreResult<Vec<AccessKeyRow>> {
    let mut stmt = select().and_where(Expr::col(AccessKeys::AccountId).eq(scope.uuid())).to_owned();
    if let Some(after) = after {
        stmt.and_where(Expr::col(AccessKeys::Id).gt(after));
    }
    stmt.order_by(AccessKeys::Id, Order::Asc).limit(limit);
    tx.fetch_all(&stmt).await
}

pub async fn set_status(
    tx: &mut Tx,
    scope: AccountScope,
    id: Uuid,
    expected_version: i64,
    status: &str,
) -> StoreResult<bool> {
    let stmt = Query::update()
        .table(AccessKeys::Table)
        .value(AccessKeys::Status, status)
        .value(AccessKeys::Version, Expr::col(AccessKeys::Version).add(1))
        .and_where(Expr::col(AccessKeys::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(AccessKeys::Id).eq(id))
        .and_where(Expr::col(AccessKeys::Version).eq(expected_version))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}

pub async fn delete(tx: &mut Tx, scope: AccountScope, id: Uuid, expected_version: i64) -> StoreResult<bool> {
    let stmt = Query::delete()
        .from_table(AccessKeys::Table)
        .and_where(Expr::col(AccessKeys::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(AccessKeys::Id).eq(id))
        .and_where(Expr::col(AccessKeys::Version).eq(expected_version))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}

/// Records use; not versioned, since it is bookkeeping rather than a change the user made.
pub async fn touch(tx: &mut Tx, id: Uuid, now: OffsetDateTime, ip: Option<&str>) -> StoreResult<()> {
    let stmt = Query::update()
        .table(AccessKeys::Table)
        .value(AccessKeys::LastUsedAt, now)
        .value(AccessKeys::LastUsedIp, ip.map(str::to_owned))
        .and_where(Expr::col(AccessKeys::Id).eq(id))
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

/// Keys whose secret is encrypted under another master key than `current`.
pub async fn not_under_master_key(tx: &mut Tx, current: &str, limit: u64) -> StoreResult<Vec<AccessKeyRow>> {
    let stmt = select().and_where(Expr::col(AccessKeys::MasterKeyId).ne(current)).limit(limit).to_owned();
    tx.fetch_all(&stmt).await
}

/// Distinct master key ids in use.
pub async fn master_key_ids(tx: &mut Tx) -> StoreResult<Vec<String>> {
    #[derive(FromRow)]
    struct Id {
        master_key_id: String,
    }
    let stmt = Query::select().distinct().column(AccessKeys::MasterKeyId).from(AccessKeys::Table).to_owned();
    Ok(tx.fetch_all::<Id, _>(&stmt).await?.into_iter().map(|r| r.master_key_id).collect())
}

pub async fn reencrypt(
    tx: &mut Tx,
    id: Uuid,
    old_key: &str,
    master_key_id: &str,
    ciphertext: &str,
) -> StoreResult<bool> {
    let stmt = Query::update()
        .table(AccessKeys::Table)
        .value(AccessKeys::SecretCiphertext, ciphertext)
        .value(AccessKeys::MasterKeyId, master_key_id)
        .and_where(Expr::col(AccessKeys::Id).eq(id))
        .and_where(Expr::col(AccessKeys::MasterKeyId).eq(old_key))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}
