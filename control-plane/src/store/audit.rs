//! The audit log: one row per mutating call (and per denied call).

use sea_query::{Expr, ExprTrait, Order, Query};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::AuditEvents;
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub access_key_id: Option<String>,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub status_code: i64,
    pub source_ip: Option<String>,
    pub request_id: String,
    pub created_at: OffsetDateTime,
}

pub async fn insert(tx: &mut Tx, scope: AccountScope, row: &AuditRow) -> StoreResult<()> {
    let stmt = Query::insert()
        .into_table(AuditEvents::Table)
        .columns([
            AuditEvents::Id,
            AuditEvents::AccountId,
            AuditEvents::AccessKeyId,
            AuditEvents::Action,
            AuditEvents::Resource,
            AuditEvents::Outcome,
            AuditEvents::StatusCode,
            AuditEvents::SourceIp,
            AuditEvents::RequestId,
            AuditEvents::CreatedAt,
        ])
        .values_panic([
            row.id.into(),
            scope.uuid().into(),
            row.access_key_id.clone().into(),
            row.action.as_str().into(),
            row.resource.as_str().into(),
            row.outcome.as_str().into(),
            row.status_code.into(),
            row.source_ip.clone().into(),
            row.request_id.as_str().into(),
            row.created_at.into(),
        ])
        .to_owned();
    tx.execute(&stmt).await?;
    Ok(())
}

pub struct AuditFilter<'a> {
    pub action: Option<&'a str>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

/// Newest first, before `before` when given.
pub async fn list(
    tx: &mut Tx,
    scope: AccountScope,
    filter: &AuditFilter<'_>,
    before: Option<Uuid>,
    limit: u64,
) -> StoreResult<Vec<AuditRow>> {
    let mut stmt = Query::select()
        .columns([
            AuditEvents::Id,
            AuditEvents::AccessKeyId,
            AuditEvents::Action,
            AuditEvents::Resource,
            AuditEvents::Outcome,
            AuditEvents::StatusCode,
            AuditEvents::SourceIp,
            AuditEvents::RequestId,
            AuditEvents::CreatedAt,
        ])
        .from(AuditEvents::Table)
        .and_where(Expr::col(AuditEvents::AccountId).eq(scope.uuid()))
        .to_owned();
    if let Some(a) = filter.action {
        stmt.and_where(Expr::col(AuditEvents::Action).eq(a));
    }
    if let Some(from) = filter.from {
        stmt.and_where(Expr::col(AuditEvents::CreatedAt).gte(from));
    }
    if let Some(to) = filter.to {
        stmt.and_where(Expr::col(AuditEvents::CreatedAt).lt(to));
    }
    if let Some(before) = before {
        stmt.and_where(Expr::col(AuditEvents::Id).lt(before));
    }
    stmt.order_by(AuditEvents::Id, Order::Desc).limit(limit);
    tx.fetch_all(&stmt).await
}
