//! The per-account, append-only event log.

use sea_query::{Expr, ExprTrait, Order, Query};
use sqlx::FromRow;
use sqlx::types::Json;
use time::OffsetDateTime;

use super::schema::{Accounts, Events};
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct EventRow {
    pub sequence: i64,
    pub event_type: String,
    pub resource_id: String,
    pub detail: Json<serde_json::Value>,
    pub created_at: OffsetDateTime,
}

/// Appends an event in the caller's transaction, so the event exists exactly
/// when the change it describes does. The sequence comes from the account
/// row, whose lock also orders commits: a reader that has seen sequence N
/// will never later see a smaller one appear.
pub async fn append(
    tx: &mut Tx,
    scope: AccountScope,
    event_type: &str,
    resource_id: &str,
    detail: serde_json::Value,
    now: OffsetDateTime,
) -> StoreResult<i64> {
    #[derive(FromRow)]
    struct Seq {
        event_seq: i64,
    }
    let bump = Query::update()
        .table(Accounts::Table)
        .value(Accounts::EventSeq, Expr::col(Accounts::EventSeq).add(1))
        .and_where(Expr::col(Accounts::Id).eq(scope.uuid()))
        .returning_col(Accounts::EventSeq)
        .to_owned();
    let seq: Seq = tx.fetch_one(&bump).await?;
    let insert = Query::insert()
        .into_table(Events::Table)
        .columns([
            Events::AccountId,
            Events::Sequence,
            Events::EventType,
            Events::ResourceId,
            Events::Detail,
            Events::CreatedAt,
        ])
        .values_panic([
            scope.uuid().into(),
            seq.event_seq.into(),
            event_type.into(),
            resource_id.into(),
            detail.into(),
            now.into(),
        ])
        .to_owned();
    tx.execute(&insert).await?;
    tx.wake(scope.uuid());
    Ok(seq.event_seq)
}

pub async fn list(
    tx: &mut Tx,
    scope: AccountScope,
    after: i64,
    types: &[String],
    limit: u64,
) -> StoreResult<Vec<EventRow>> {
    let mut stmt = Query::select()
        .columns([Events::Sequence, Events::EventType, Events::ResourceId, Events::Detail, Events::CreatedAt])
        .from(Events::Table)
        .and_where(Expr::col(Events::AccountId).eq(scope.uuid()))
        .and_where(Expr::col(Events::Sequence).gt(after))
        .to_owned();
    if !types.is_empty() {
        stmt.and_where(Expr::col(Events::EventType).is_in(types.iter().map(String::as_str)));
    }
    stmt.order_by(Events::Sequence, Order::Asc).limit(limit);
    tx.fetch_all(&stmt).await
}

/// The account's newest sequence number (0 before any event).
pub async fn latest(tx: &mut Tx, scope: AccountScope) -> StoreResult<i64> {
    #[derive(FromRow)]
    struct Seq {
        event_seq: i64,
    }
    let stmt = Query::select()
        .column(Accounts::EventSeq)
        .from(Accounts::Table)
        .and_where(Expr::col(Accounts::Id).eq(scope.uuid()))
        .to_owned();
    Ok(tx.fetch_optional::<Seq, _>(&stmt).await?.map_or(0, |s| s.event_seq))
}
