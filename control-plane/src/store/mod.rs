//! The store: every read and write of durable state goes through here.
//!
//! One query layer serves PostgreSQL (production) and SQLite (the embedded
//! default): statements are built once with sea-query, rendered by the
//! backend's query builder, and run with sqlx. Rows decode into the same Rust
//! types on both backends.
//!
//! Every function that touches tenant data takes an [`AccountScope`] and a
//! transaction, so a query cannot forget whose rows it may see.

pub mod access_keys;
pub mod accounts;
pub mod assignments;
pub mod audit;
pub mod clusters;
pub mod events;
pub mod hosts;
pub mod idempotency;
pub mod migrate;
pub mod quotas;
pub mod rate_limits;
pub mod registration_tokens;
pub mod registry_credentials;
pub mod retention;
pub mod schema;
pub mod services;
pub mod signing_keys;
pub mod task_definitions;
pub mod tasks;
pub mod usage;
pub mod wakeups;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use berth_api::AccountId;
use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
use sea_query_sqlx::SqlxBinder;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{AssertSqlSafe, FromRow, PgPool, Postgres, Sqlite, SqlitePool};
use time::OffsetDateTime;

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or has no free connection.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A unique constraint refused the write.
    #[error("unique constraint violated: {0}")]
    UniqueViolation(String),
    /// A deadlock or serialization failure: the transaction can simply run again.
    #[error("transaction conflict: {0}")]
    Contention(String),
    /// A stored value could not be read back (a bug or a hand-edited row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error(
        "the database schema is at version {found}, newer than this build knows (up to {known}); upgrade Berth before connecting it to this database"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(e)
            }
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                StoreError::UniqueViolation(db.message().to_string())
            }
            // PostgreSQL: 40P01 deadlock_detected, 40001 serialization_failure.
            sqlx::Error::Database(ref db) if matches!(db.code().as_deref(), Some("40P01" | "40001")) => {
                StoreError::Contention(db.message().to_string())
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::ColumnNotFound(_) => {
                StoreError::Corrupt(e.to_string())
            }
            other => StoreError::Database(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The account whose rows a store call may read and write. Constructed only
/// from an authenticated principal (or by the operator's own code paths).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AccountScope(AccountId);

impl AccountScope {
    pub fn new(account: AccountId) -> Self {
        Self(account)
    }
    pub fn account_id(&self) -> AccountId {
        self.0
    }
    pub(crate) fn uuid(&self) -> uuid::Uuid {
        self.0.0
    }
}

/// Which database a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(&self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// A connection pool to one of the two supported databases, and the
/// wake-ups its commits send to waiting readers.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    wakeups: Arc<wakeups::Wakeups>,
}

/// The pool behind a [`Db`].
#[derive(Clone, Debug)]
pub enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Pool settings.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(5) }
    }
}

impl Db {
    /// Connects to `postgres://...` or `sqlite://path` (created if missing).
    pub async fn connect(url: &str, opts: &PoolOptions) -> StoreResult<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(connect)
                .await?;
            let wakeups = Arc::new(wakeups::Wakeups::default());
            wakeups::spawn_listener(pool.clone(), wakeups.clone());
            Ok(Db { pool: Pool::Postgres(pool), wakeups })
        } else if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // WAL + NORMAL is durable against process crashes; FULL also
                // survives power loss at the cost of an fsync per commit.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(opts.max_connections.min(8))
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(connect)
                .await?;
            Ok(Db { pool: Pool::Sqlite(pool), wakeups: Arc::default() })
        } else {
            Err(StoreError::InvalidUrl(format!("{url:?}: expected postgres://... or sqlite://path")))
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Where readers wait for the keys that commits name.
    pub fn wakeups(&self) -> &wakeups::Wakeups {
        &self.wakeups
    }

    fn tx(&self, inner: TxInner) -> Tx {
        Tx { inner, wake: Vec::new(), wakeups: self.wakeups.clone() }
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), so two writers queue instead of one failing
    /// with SQLITE_BUSY when it tries to upgrade a read lock.
    pub async fn begin_write(&self) -> StoreResult<Tx> {
        Ok(self.tx(match &self.pool {
            Pool::Postgres(p) => TxInner::Postgres(p.begin().await?),
            Pool::Sqlite(p) => TxInner::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
        }))
    }

    /// A transaction that only reads, and sees one snapshot taken at its first
    /// statement on both backends: a handler that reads a service and then its
    /// tasks never sees a commit land between the two. On PostgreSQL that takes
    /// REPEATABLE READ (the default READ COMMITTED gives each statement its own
    /// snapshot); READ ONLY makes a stray write fail loudly instead of
    /// committing nothing. A read-only REPEATABLE READ transaction never fails
    /// to serialize, so callers need no retry.
    pub async fn begin_read(&self) -> StoreResult<Tx> {
        Ok(self.tx(match &self.pool {
            Pool::Postgres(p) => {
                TxInner::Postgres(p.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?)
            }
            Pool::Sqlite(p) => TxInner::Sqlite(p.begin().await?),
        }))
    }

    /// Runs one statement on its own, outside a transaction: for hot paths
    /// (authentication, heartbeats) where BEGIN and ROLLBACK would double the
    /// round trips. A write with RETURNING commits by itself, atomically.
    pub async fn fetch_optional<T: Row, S: SqlxBinder>(&self, stmt: &S) -> StoreResult<Option<T>> {
        Ok(match &self.pool {
            Pool::Postgres(p) => {
                let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql), values).fetch_optional(p).await?
            }
            Pool::Sqlite(p) => {
                let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql), values).fetch_optional(p).await?
            }
        })
    }

    /// Like [`Db::fetch_optional`], for a statement that returns many rows.
    pub async fn fetch_all<T: Row, S: SqlxBinder>(&self, stmt: &S) -> StoreResult<Vec<T>> {
        Ok(match &self.pool {
            Pool::Postgres(p) => {
                let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql), values).fetch_all(p).await?
            }
            Pool::Sqlite(p) => {
                let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql), values).fetch_all(p).await?
            }
        })
    }

    /// Runs one write statement on its own (it commits by itself, atomically):
    /// for a hot write that needs nothing else in its transaction and wakes no
    /// one. Returns the number of rows it affected.
    pub async fn execute_alone<S: SqlxBinder>(&self, stmt: &S) -> StoreResult<u64> {
        Ok(match &self.pool {
            Pool::Postgres(p) => {
                let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                sqlx::query_with(AssertSqlSafe(sql), values).execute(p).await?.rows_affected()
            }
            Pool::Sqlite(p) => {
                let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                sqlx::query_with(AssertSqlSafe(sql), values).execute(p).await?.rows_affected()
            }
        })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
            Pool::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        }
        .map_err(StoreError::from)
    }

    /// (connections open, idle connections, maximum).
    pub fn pool_stats(&self) -> (u32, u32, u32) {
        match &self.pool {
            Pool::Postgres(p) => (p.size(), p.num_idle() as u32, p.options().get_max_connections()),
            Pool::Sqlite(p) => (p.size(), p.num_idle() as u32, p.options().get_max_connections()),
        }
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }
}

/// A row type that decodes on both backends.
pub trait Row: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin {}
impl<T> Row for T where T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin {}

/// Where a read runs: inside a transaction ([`Tx`]), or alone on the pool
/// (`&Db`), for a hot read that needs no snapshot shared with another.
pub trait Reader: Send {
    fn fetch_optional<T: Row, S: SqlxBinder + Sync>(
        &mut self,
        stmt: &S,
    ) -> impl Future<Output = StoreResult<Option<T>>> + Send;

    fn fetch_all<T: Row, S: SqlxBinder + Sync>(&mut self, stmt: &S)
    -> impl Future<Output = StoreResult<Vec<T>>> + Send;
}

impl Reader for Tx {
    fn fetch_optional<T: Row, S: SqlxBinder + Sync>(
        &mut self,
        stmt: &S,
    ) -> impl Future<Output = StoreResult<Option<T>>> + Send {
        Tx::fetch_optional(self, stmt)
    }

    fn fetch_all<T: Row, S: SqlxBinder + Sync>(
        &mut self,
        stmt: &S,
    ) -> impl Future<Output = StoreResult<Vec<T>>> + Send {
        Tx::fetch_all(self, stmt)
    }
}

impl Reader for &Db {
    fn fetch_optional<T: Row, S: SqlxBinder + Sync>(
        &mut self,
        stmt: &S,
    ) -> impl Future<Output = StoreResult<Option<T>>> + Send {
        Db::fetch_optional(self, stmt)
    }

    fn fetch_all<T: Row, S: SqlxBinder + Sync>(
        &mut self,
        stmt: &S,
    ) -> impl Future<Output = StoreResult<Vec<T>>> + Send {
        Db::fetch_all(self, stmt)
    }
}

/// An open transaction on either backend. Dropping it rolls back.
pub struct Tx {
    inner: TxInner,
    /// Keys whose waiters are woken once this transaction commits.
    wake: Vec<uuid::Uuid>,
    wakeups: Arc<wakeups::Wakeups>,
}

/// An open savepoint of a [`Tx`]: end it with release or rollback.
#[must_use = "a savepoint is ended by release_savepoint or rollback_to_savepoint"]
pub struct Savepoint {
    /// How many wake-ups the transaction had asked for when it was opened.
    wakes: usize,
}

enum TxInner {
    Postgres(sqlx::Transaction<'static, Postgres>),
    Sqlite(sqlx::Transaction<'static, Sqlite>),
}

impl Tx {
    pub fn backend(&self) -> Backend {
        match self.inner {
            TxInner::Postgres(_) => Backend::Postgres,
            TxInner::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Wakes the waiters on `key` (a host or account id) if this transaction commits.
    pub fn wake(&mut self, key: uuid::Uuid) {
        if !self.wake.contains(&key) {
            self.wake.push(key);
        }
    }

    /// Opens a savepoint, so one part of a transaction shared by several
    /// requests can fail and be undone while the rest commits. Savepoints
    /// nest; each is ended by [`Tx::release_savepoint`] or
    /// [`Tx::rollback_to_savepoint`]. Locks taken before it are kept either way.
    pub async fn savepoint(&mut self) -> StoreResult<Savepoint> {
        self.raw("SAVEPOINT berth_part").await?;
        Ok(Savepoint { wakes: self.wake.len() })
    }

    /// Keeps what was done since the savepoint, as part of the transaction.
    pub async fn release_savepoint(&mut self, _savepoint: Savepoint) -> StoreResult<()> {
        self.raw("RELEASE SAVEPOINT berth_part").await
    }

    /// Undoes what was done since the savepoint (on PostgreSQL, also after
    /// a failed statement), and forgets the wake-ups it asked for.
    pub async fn rollback_to_savepoint(&mut self, savepoint: Savepoint) -> StoreResult<()> {
        self.raw("ROLLBACK TO SAVEPOINT berth_part; RELEASE SAVEPOINT berth_part").await?;
        self.wake.truncate(savepoint.wakes);
        Ok(())
    }

    async fn raw(&mut self, sql: &'static str) -> StoreResult<()> {
        match &mut self.inner {
            TxInner::Postgres(tx) => sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut **tx).await.map(|_| ()),
            TxInner::Sqlite(tx) => sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut **tx).await.map(|_| ()),
        }
        .map_err(StoreError::from)
    }

    /// Runs a statement; returns the number of rows it affected.
    pub async fn execute<S: SqlxBinder>(&mut self, stmt: &S) -> StoreResult<u64> {
        Ok(match &mut self.inner {
            TxInner::Postgres(tx) => {
                let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                sqlx::query_with(AssertSqlSafe(sql), values).execute(&mut **tx).await?.rows_affected()
            }
            TxInner::Sqlite(tx) => {
                let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                sqlx::query_with(AssertSqlSafe(sql), values).execute(&mut **tx).await?.rows_affected()
            }
        })
    }

    pub async fn fetch_optional<T: Row, S: SqlxBinder>(&mut self, stmt: &S) -> StoreResult<Option<T>> {
        Ok(match &mut self.inner {
            TxInner::Postgres(tx) => {
                let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql), values).fetch_optional(&mut **tx).await?
            }
            TxInner::Sqlite(tx) => {
                let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql), values).fetch_optional(&mut **tx).await?
            }
        })
    }

    pub async fn fetch_one<T: Row, S: SqlxBinder>(&mut self, stmt: &S) -> StoreResult<T> {
        self.fetch_optional(stmt).await?.ok_or_else(|| StoreError::Corrupt("statement returned no row".into()))
    }

    pub async fn fetch_all<T: Row, S: SqlxBinder>(&mut self, stmt: &S) -> StoreResult<Vec<T>> {
        Ok(match &mut self.inner {
            TxInner::Postgres(tx) => {
                let (sql, values) = stmt.build_sqlx(PostgresQueryBuilder);
                sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql), values).fetch_all(&mut **tx).await?
            }
            TxInner::Sqlite(tx) => {
                let (sql, values) = stmt.build_sqlx(SqliteQueryBuilder);
                sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql), values).fetch_all(&mut **tx).await?
            }
        })
    }

    /// `SELECT COUNT(*) FROM <table> WHERE <conditions>`: pass a select with only its table and conditions.
    pub async fn count(&mut self, mut stmt: sea_query::SelectStatement) -> StoreResult<i64> {
        #[derive(FromRow)]
        struct Count {
            n: i64,
        }
        stmt.expr_as(sea_query::Expr::cust("COUNT(*)"), sea_query::Alias::new("n"));
        Ok(self.fetch_one::<Count, _>(&stmt).await?.n)
    }

    pub async fn commit(self) -> StoreResult<()> {
        let Tx { inner, wake, wakeups } = self;
        match inner {
            TxInner::Postgres(mut tx) => {
                // Delivered to every replica's listener only if the commit succeeds.
                // A payload holds at most 8000 bytes: about 200 ids.
                for chunk in wake.chunks(200) {
                    let payload = chunk.iter().map(uuid::Uuid::to_string).collect::<Vec<_>>().join(",");
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(wakeups::CHANNEL)
                        .bind(payload)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?
            }
            TxInner::Sqlite(tx) => tx.commit().await?,
        }
        for key in wake {
            wakeups.wake(key);
        }
        Ok(())
    }

    pub async fn rollback(self) -> StoreResult<()> {
        match self.inner {
            TxInner::Postgres(tx) => tx.rollback().await?,
            TxInner::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// The current time, truncated to microseconds: PostgreSQL keeps no more, so
/// a value reads back equal on both backends.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    let micros = t.microsecond();
    t.replace_microsecond(micros).unwrap_or(t)
}

/// Decodes a stored enum-like text column.
pub(crate) fn parse_column<T>(value: &str, column: &str, parse: impl Fn(&str) -> Option<T>) -> StoreResult<T> {
    parse(value).ok_or_else(|| StoreError::Corrupt(format!("{column} holds unknown value {value:?}")))
}
