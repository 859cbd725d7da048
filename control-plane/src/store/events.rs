//! The per-account, append-only event log.

use sea_query::{Expr, ExprTrait, Order, Query};
use sqlx::FromRow;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schema::{Accounts, EventOutbox, Events};
use super::{AccountScope, StoreResult, Tx};

#[derive(Clone, Debug, FromRow)]
pub struct EventRow {
    pub sequence: i64,
    pub event_type: String,
    pub resource_id: String,
    pub detail: Json<serde_json::Value>,
    pub created_at: OffsetDateTime,
}

/// One event to append.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_type: &'static str,
    pub resource_id: String,
    pub detail: serde_json::Value,
}

/// Appends an event in the caller's transaction, so the event exists exactly
/// when the change it describes does.
pub async fn append(
    tx: &mut Tx,
    scope: AccountScope,
    event_type: &'static str,
    resource_id: &str,
    detail: serde_json::Value,
    now: OffsetDateTime,
) -> StoreResult<()> {
    append_many(tx, scope, vec![NewEvent { event_type, resource_id: resource_id.to_owned(), detail }], now).await
}

/// Appends events in order to the outbox, taking no lock: the sequencer
/// ([`sequence_pending`]) numbers them once the transaction has committed.
/// An outbox row's id grows with insertion, and two transactions that
/// change the same resource cannot overlap (they lock its row), so the
/// events of one resource keep their order.
pub async fn append_many(
    tx: &mut Tx,
    scope: AccountScope,
    events: Vec<NewEvent>,
    now: OffsetDateTime,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = Query::insert()
        .into_table(EventOutbox::Table)
        .columns([
            EventOutbox::AccountId,
            EventOutbox::EventType,
            EventOutbox::ResourceId,
            EventOutbox::Detail,
            EventOutbox::CreatedAt,
        ])
        .to_owned();
    for e in events {
        // The console subscribes to every published type by name: a new one must be listed.
        debug_assert!(
            berth_api::events::EVENT_TYPES.contains(&e.event_type),
            "event type {} is missing from berth_api::events::EVENT_TYPES",
            e.event_type
        );
        insert.values_panic([
            scope.uuid().into(),
            e.event_type.into(),
            e.resource_id.into(),
            e.detail.into(),
            now.into(),
        ]);
    }
    tx.execute(&insert).await?;
    tx.wake(SEQUENCER_KEY);
    Ok(())
}

/// The wake-up key of the event sequencer.
pub const SEQUENCER_KEY: Uuid = Uuid::nil();

#[derive(FromRow)]
struct OutboxRow {
    id: i64,
    account_id: Uuid,
    event_type: String,
    resource_id: String,
    detail: Json<serde_json::Value>,
    created_at: OffsetDateTime,
}

/// Moves up to `limit` committed outbox events, oldest first, into the
/// accounts' logs with their next sequence numbers; returns how many. One
/// sequencer runs at a time (an advisory lock on PostgreSQL, the write lock
/// on SQLite), so numbers are handed out in the order the log is read: a
/// reader that has seen sequence N never later sees a smaller one appear.
pub async fn sequence_pending(tx: &mut Tx, limit: u64) -> StoreResult<usize> {
    if tx.backend() == super::Backend::Postgres {
        tx.execute(&Query::select().expr(Expr::cust("pg_advisory_xact_lock(7411)")).to_owned()).await?;
    }
    let rows: Vec<OutboxRow> = tx
        .fetch_all(
            &Query::select()
                .columns([
                    EventOutbox::Id,
                    EventOutbox::AccountId,
                    EventOutbox::EventType,
                    EventOutbox::ResourceId,
                    EventOutbox::Detail,
                    EventOutbox::CreatedAt,
                ])
                .from(EventOutbox::Table)
                .order_by(EventOutbox::Id, Order::Asc)
                .limit(limit)
                .to_owned(),
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut by_account: Vec<(Uuid, Vec<&OutboxRow>)> = Vec::new();
    for r in &rows {
        match by_account.iter_mut().find(|(a, _)| *a == r.account_id) {
            Some((_, v)) => v.push(r),
            None => by_account.push((r.account_id, vec![r])),
        }
    }
    #[derive(FromRow)]
    struct Seq {
        event_seq: i64,
    }
    let mut insert = Query::insert()
        .into_table(Events::Table)
        .columns([
            Events::AccountId,
            Events::Sequence,
            Events::EventType,
            Events::ResourceId,
            Events::Detail,
            Events::CreatedAt,
        ])
        .to_owned();
    for (account, events) in &by_account {
        let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let bump = Query::update()
            .table(Accounts::Table)
            .value(Accounts::EventSeq, Expr::col(Accounts::EventSeq).add(n))
            .and_where(Expr::col(Accounts::Id).eq(*account))
            .returning_col(Accounts::EventSeq)
            .to_owned();
        let last: Seq = tx.fetch_one(&bump).await?;
        for (i, e) in (0i64..).zip(events) {
            insert.values_panic([
                (*account).into(),
                (last.event_seq - n + 1 + i).into(),
                e.event_type.clone().into(),
                e.resource_id.clone().into(),
                e.detail.0.clone().into(),
                e.created_at.into(),
            ]);
        }
        tx.wake(*account);
    }
    tx.execute(&insert).await?;
    let delete = Query::delete()
        .from_table(EventOutbox::Table)
        .and_where(Expr::col(EventOutbox::Id).is_in(rows.iter().map(|r| r.id)))
        .to_owned();
    tx.execute(&delete).await?;
    Ok(rows.len())
}

/// Whether the account has events waiting for the sequencer.
pub async fn has_pending(tx: &mut Tx, scope: AccountScope) -> StoreResult<bool> {
    #[derive(FromRow)]
    struct Row {
        #[allow(dead_code)]
        id: i64,
    }
    // One row is enough: COUNT(*) would read every waiting event of the account.
    let stmt = Query::select()
        .column(EventOutbox::Id)
        .from(EventOutbox::Table)
        .and_where(Expr::col(EventOutbox::AccountId).eq(scope.uuid()))
        .limit(1)
        .to_owned();
    Ok(tx.fetch_optional::<Row, _>(&stmt).await?.is_some())
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
