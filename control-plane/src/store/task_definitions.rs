//! Task-definition families and their immutable revisions.

use berth_api::task_definitions::RegisterTaskDefinitionRequest;
use berth_api::{Tags, TaskDefinitionId};
use sea_query::{Alias, Expr, ExprTrait, OnConflict, Order, Query, SelectStatement};
use sqlx::FromRow;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::{TaskDefinitionFamilies, TaskDefinitions};
use super::{AccountScope, StoreError, StoreResult, Tx};

/// The part of a registration request that is stored as the definition body.
pub type StoredDefinition = RegisterTaskDefinitionRequest;

#[derive(Clone, Debug, FromRow)]
pub struct TaskDefinitionRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub family: String,
    pub revision: i64,
    pub status: String,
    pub definition: Json<StoredDefinition>,
    pub tags: Json<Tags>,
    pub registered_at: OffsetDateTime,
    pub deregistered_at: Option<OffsetDateTime>,
    pub version: i64,
}

#[derive(Clone, Debug, FromRow)]
pub struct FamilyRow {
    pub name: String,
    pub latest_revision: i64,
    pub latest_active_revision: Option<i64>,
    pub created_at: OffsetDateTime,
}

fn select(scope: AccountScope) -> SelectStatement {
    Query::select()
        .columns([
            TaskDefinitions::Id,
            TaskDefinitions::AccountId,
            TaskDefinitions::Family,
            TaskDefinitions::Revision,
            TaskDefinitions::Status,
            TaskDefinitions::Definition,
            TaskDefinitions::Tags,
            TaskDefinitions::RegisteredAt,
            TaskDefinitions::DeregisteredAt,
            TaskDefinitions::Version,
        ])
        .from(TaskDefinitions::Table)
        .and_where(Expr::col(TaskDefinitions::AccountId).eq(scope.uuid()))
        .to_owned()
}

/// Registers the next revision of the family, creating the family on its
/// first revision. The revision number comes from an atomic increment of the
/// family row, so concurrent registrations get distinct, gap-free numbers.
pub async fn register(
    tx: &mut Tx,
    scope: AccountScope,
    id: TaskDefinitionId,
    definition: &StoredDefinition,
    now: OffsetDateTime,
) -> StoreResult<TaskDefinitionRow> {
    #[derive(FromRow)]
    struct Revision {
        latest_revision: i64,
    }
    let bump = Query::insert()
        .into_table(TaskDefinitionFamilies::Table)
        .columns([
            TaskDefinitionFamilies::AccountId,
            TaskDefinitionFamilies::Name,
            TaskDefinitionFamilies::LatestRevision,
            TaskDefinitionFamilies::CreatedAt,
        ])
        .values_panic([scope.uuid().into(), definition.family.as_str().into(), 1i64.into(), now.into()])
        .on_conflict(
            OnConflict::columns([TaskDefinitionFamilies::AccountId, TaskDefinitionFamilies::Name])
                .value(
                    TaskDefinitionFamilies::LatestRevision,
                    Expr::col((TaskDefinitionFamilies::Table, TaskDefinitionFamilies::LatestRevision)).add(1),
                )
                .to_owned(),
        )
        .returning_col(TaskDefinitionFamilies::LatestRevision)
        .to_owned();
    let revision: Revision = tx.fetch_one(&bump).await?;

    let body = serde_json::to_value(definition).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let insert = Query::insert()
        .into_table(TaskDefinitions::Table)
        .columns([
            TaskDefinitions::Id,
            TaskDefinitions::AccountId,
            TaskDefinitions::Family,
            TaskDefinitions::Revision,
            TaskDefinitions::Status,
            TaskDefinitions::Definition,
            TaskDefinitions::Cpu,
            TaskDefinitions::Memory,
            TaskDefinitions::Tags,
            TaskDefinitions::RegisteredAt,
            TaskDefinitions::Version,
        ])
        .values_panic([
            id.0.into(),
            scope.uuid().into(),
            definition.family.as_str().into(),
            revision.latest_revision.into(),
            "ACTIVE".into(),
            body.into(),
            definition.cpu.map(i64::from).into(),
            definition.memory.map(i64::from).into(),
            serde_json::to_value(&definition.tags).unwrap_or_default().into(),
            now.into(),
            1i64.into(),
        ])
        .to_owned();
    tx.execute(&insert).await?;
    get_revision(tx, scope, &definition.family, revision.latest_revision)
        .await?
        .ok_or_else(|| StoreError::Corrupt("registered revision not found".into()))
}

pub async fn get_revision(
    tx: &mut Tx,
    scope: AccountScope,
    family: &str,
    revision: i64,
) -> StoreResult<Option<TaskDefinitionRow>> {
    let stmt = select(scope)
        .and_where(Expr::col(TaskDefinitions::Family).eq(family))
        .and_where(Expr::col(TaskDefinitions::Revision).eq(revision))
        .to_owned();
    tx.fetch_optional(&stmt).await
}

pub async fn get_by_id(
    tx: &mut impl super::Reader,
    scope: AccountScope,
    id: TaskDefinitionId,
) -> StoreResult<Option<TaskDefinitionRow>> {
    let stmt = select(scope).and_where(Expr::col(TaskDefinitions::Id).eq(id.0)).to_owned();
    tx.fetch_optional(&stmt).await
}

/// The highest ACTIVE revision of the family.
pub async fn latest_active(tx: &mut Tx, scope: AccountScope, family: &str) -> StoreResult<Option<TaskDefinitionRow>> {
    let stmt = select(scope)
        .and_where(Expr::col(TaskDefinitions::Family).eq(family))
        .and_where(Expr::col(TaskDefinitions::Status).eq("ACTIVE"))
        .order_by(TaskDefinitions::Revision, Order::Desc)
        .limit(1)
        .to_owned();
    tx.fetch_optional(&stmt).await
}

pub async fn family_exists(tx: &mut Tx, scope: AccountScope, family: &str) -> StoreResult<bool> {
    let stmt = families_select(scope)
        .and_where(Expr::col((TaskDefinitionFamilies::Table, TaskDefinitionFamilies::Name)).eq(family))
        .to_owned();
    Ok(tx.fetch_optional::<FamilyRow, _>(&stmt).await?.is_some())
}

fn families_select(scope: AccountScope) -> SelectStatement {
    Query::select()
        .column((TaskDefinitionFamilies::Table, TaskDefinitionFamilies::Name))
        .column((TaskDefinitionFamilies::Table, TaskDefinitionFamilies::LatestRevision))
        .column((TaskDefinitionFamilies::Table, TaskDefinitionFamilies::CreatedAt))
        .expr_as(
            Expr::cust(
                "(SELECT MAX(revision) FROM task_definitions td WHERE td.account_id = task_definition_families.account_id \
                 AND td.family = task_definition_families.name AND td.status = 'ACTIVE')",
            ),
            Alias::new("latest_active_revision"),
        )
        .from(TaskDefinitionFamilies::Table)
        .and_where(Expr::col((TaskDefinitionFamilies::Table, TaskDefinitionFamilies::AccountId)).eq(scope.uuid()))
        .to_owned()
}

/// Families in name order, after `after` when given.
pub async fn list_families(
    tx: &mut Tx,
    scope: AccountScope,
    after: Option<&str>,
    limit: u64,
) -> StoreResult<Vec<FamilyRow>> {
    let mut stmt = families_select(scope);
    if let Some(after) = after {
        stmt.and_where(Expr::col((TaskDefinitionFamilies::Table, TaskDefinitionFamilies::Name)).gt(after));
    }
    stmt.order_by((TaskDefinitionFamilies::Table, TaskDefinitionFamilies::Name), Order::Asc).limit(limit);
    tx.fetch_all(&stmt).await
}

/// Revisions of a family in ascending order, after `after` when given.
pub async fn list_revisions(
    tx: &mut Tx,
    scope: AccountScope,
    family: &str,
    after: Option<i64>,
    limit: u64,
) -> StoreResult<Vec<TaskDefinitionRow>> {
    let mut stmt = select(scope).and_where(Expr::col(TaskDefinitions::Family).eq(family)).to_owned();
    if let Some(after) = after {
        stmt.and_where(Expr::col(TaskDefinitions::Revision).gt(after));
    }
    stmt.order_by(TaskDefinitions::Revision, Order::Asc).limit(limit);
    tx.fetch_all(&stmt).await
}

/// Marks a revision INACTIVE when the version matches.
pub async fn deregister(
    tx: &mut Tx,
    scope: AccountScope,
    id: TaskDefinitionId,
    expected_version: i64,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let stmt = Query::update()
        .table(TaskDefinitions::Table)
        .value(TaskDefinitions::Status, "INACTIVE")
        .value(TaskDefinitions::DeregisteredAt, now)
        .value(TaskDefinitions::Version, Expr::col(TaskDefinitions::Version).add(1))
        .and_where(Expr::col(TaskDefinitions::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(TaskDefinitions::Id).eq(id.0))
        .and_where(Expr::col(TaskDefinitions::Version).eq(expected_version))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}

/// Deletes an INACTIVE revision when the version matches.
pub async fn delete(
    tx: &mut Tx,
    scope: AccountScope,
    id: TaskDefinitionId,
    expected_version: i64,
) -> StoreResult<bool> {
    let stmt = Query::delete()
        .from_table(TaskDefinitions::Table)
        .and_where(Expr::col(TaskDefinitions::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(TaskDefinitions::Id).eq(id.0))
        .and_where(Expr::col(TaskDefinitions::Status).eq("INACTIVE"))
        .and_where(Expr::col(TaskDefinitions::Version).eq(expected_version))
        .to_owned();
    Ok(tx.execute(&stmt).await? == 1)
}
