//! Registry credentials, with their passwords encrypted by the caller.

use sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sqlx::FromRow;
use time::OffsetDateTime;

use super::schema::RegistryCredentials as Rc;
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, FromRow)]
pub struct RegistryCredentialRow {
    pub name: String,
    pub registry: String,
    pub username: String,
    pub password_key_id: String,
    pub password_ciphertext: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

/// A password as stored: the master key's id and the ciphertext.
pub struct SealedPassword {
    pub key_id: String,
    pub ciphertext: String,
}

const COLUMNS: [Rc; 8] = [
    Rc::Name,
    Rc::Registry,
    Rc::Username,
    Rc::PasswordKeyId,
    Rc::PasswordCiphertext,
    Rc::CreatedAt,
    Rc::UpdatedAt,
    Rc::Version,
];

fn select(scope: AccountScope) -> SelectStatement {
    Query::select().columns(COLUMNS).from(Rc::Table).and_where(Expr::col(Rc::AccountId).eq(scope.uuid())).to_owned()
}

/// Fails with a unique violation when the name is taken.
pub async fn insert(
    tx: &mut Tx,
    scope: AccountScope,
    name: &str,
    registry: &str,
    username: &str,
    password: &SealedPassword,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let stmt = Query::insert()
        .into_table(Rc::Table)
        .columns([Rc::AccountId].into_iter().chain(COLUMNS))
        .values_panic([
            scope.uuid().into(),
            name.into(),
            registry.into(),
            username.into(),
            password.key_id.as_str().into(),
            password.ciphertext.as_str().into(),
            now.into(),
            now.into(),
            1i64.into(),
        ])
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

pub async fn get(
    tx: &mut impl super::Reader,
    scope: AccountScope,
    name: &str,
) -> StoreResult<Option<RegistryCredentialRow>> {
    tx.fetch_optional(&select(scope).and_where(Expr::col(Rc::Name).eq(name)).to_owned()).await
}

/// The account's credentials by name (an account has a handful).
pub async fn list(tx: &mut Tx, scope: AccountScope) -> StoreResult<Vec<RegistryCredentialRow>> {
    tx.fetch_all(&select(scope).order_by(Rc::Name, Order::Asc).limit(1000).to_owned()).await
}

/// New secrets; None when there is no such credential.
pub async fn update(
    tx: &mut Tx,
    scope: AccountScope,
    name: &str,
    username: Option<&str>,
    password: &SealedPassword,
    now: OffsetDateTime,
) -> StoreResult<Option<RegistryCredentialRow>> {
    let mut stmt = Query::update();
    if let Some(u) = username {
        stmt.value(Rc::Username, u);
    }
    let stmt = stmt
        .table(Rc::Table)
        .value(Rc::PasswordKeyId, password.key_id.as_str())
        .value(Rc::PasswordCiphertext, password.ciphertext.as_str())
        .value(Rc::UpdatedAt, now)
        .value(Rc::Version, Expr::col(Rc::Version).add(1))
        .and_where(Expr::col(Rc::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Rc::Name).eq(name))
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    tx.fetch_optional(&stmt).await
}

/// Whether there was one to delete.
pub async fn delete(tx: &mut Tx, scope: AccountScope, name: &str) -> StoreResult<bool> {
    let stmt = Query::delete()
        .from_table(Rc::Table)
        .and_where(Expr::col(Rc::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Rc::Name).eq(name))
        .to_owned();
    Ok(tx.execute(&stmt).await? > 0)
}
