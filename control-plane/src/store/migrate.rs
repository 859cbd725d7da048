//! Versioned migrations, embedded in the binary and applied at start-up.
//!
//! The two dialects differ too much for one folder (see
//! `migrations/README.md`), so each backend has its own folder with the same
//! version list; a test keeps the lists and the folders in step.

use std::borrow::Cow;

use sqlx::AssertSqlSafe;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::{Backend, Db, Pool, StoreError, StoreResult};

/// (version, description, PostgreSQL SQL, SQLite SQL).
pub const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../../../migrations/postgres/0001_foundation.sql"),
        include_str!("../../../migrations/sqlite/0001_foundation.sql"),
    ),
    (
        2,
        "auth",
        include_str!("../../../migrations/postgres/0002_auth.sql"),
        include_str!("../../../migrations/sqlite/0002_auth.sql"),
    ),
    (
        3,
        "placement",
        include_str!("../../../migrations/postgres/0003_placement.sql"),
        include_str!("../../../migrations/sqlite/0003_placement.sql"),
    ),
    (
        4,
        "agent_protocol",
        include_str!("../../../migrations/postgres/0004_agent_protocol.sql"),
        include_str!("../../../migrations/sqlite/0004_agent_protocol.sql"),
    ),
    (
        5,
        "event_outbox",
        include_str!("../../../migrations/postgres/0005_event_outbox.sql"),
        include_str!("../../../migrations/sqlite/0005_event_outbox.sql"),
    ),
    (
        6,
        "quotas",
        include_str!("../../../migrations/postgres/0006_quotas.sql"),
        include_str!("../../../migrations/sqlite/0006_quotas.sql"),
    ),
    (
        7,
        "live_task_index",
        include_str!("../../../migrations/postgres/0007_live_task_index.sql"),
        include_str!("../../../migrations/sqlite/0007_live_task_index.sql"),
    ),
    (
        8,
        "agent_logs_endpoint",
        include_str!("../../../migrations/postgres/0008_agent_logs_endpoint.sql"),
        include_str!("../../../migrations/sqlite/0008_agent_logs_endpoint.sql"),
    ),
    (
        9,
        "registry_credentials",
        include_str!("../../../migrations/postgres/0009_registry_credentials.sql"),
        include_str!("../../../migrations/sqlite/0009_registry_credentials.sql"),
    ),
    (
        10,
        "task_usage",
        include_str!("../../../migrations/postgres/0010_task_usage.sql"),
        include_str!("../../../migrations/sqlite/0010_task_usage.sql"),
    ),
    (
        11,
        "services",
        include_str!("../../../migrations/postgres/0011_services.sql"),
        include_str!("../../../migrations/sqlite/0011_services.sql"),
    ),
    (
        12,
        "managed_capacity",
        include_str!("../../../migrations/postgres/0012_managed_capacity.sql"),
        include_str!("../../../migrations/sqlite/0012_managed_capacity.sql"),
    ),
    (
        13,
        "hot_path_foreign_keys",
        include_str!("../../../migrations/postgres/0013_hot_path_foreign_keys.sql"),
        include_str!("../../../migrations/sqlite/0013_hot_path_foreign_keys.sql"),
    ),
];

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0)
}

pub fn migrator(backend: Backend) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, pg, sqlite)| {
            let sql = match backend {
                Backend::Postgres => *pg,
                Backend::Sqlite => *sqlite,
            };
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                AssertSqlSafe(sql).into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Applies every migration this build knows that the database lacks. Refuses
/// a database whose schema is newer than this build: running old code on a
/// new schema could silently drop data the new code relies on.
pub async fn run(db: &Db) -> StoreResult<()> {
    if let Some(found) = applied_version(db).await? {
        let known = latest_version();
        if found > known {
            return Err(StoreError::SchemaTooNew { found, known });
        }
    }
    let migrator = migrator(db.backend());
    match db.pool() {
        Pool::Postgres(p) => migrator.run(p).await?,
        Pool::Sqlite(p) => migrator.run(p).await?,
    }
    Ok(())
}

/// The newest applied migration, or None on an empty database.
pub async fn applied_version(db: &Db) -> StoreResult<Option<i64>> {
    let exists_sql = match db.backend() {
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()"
        }
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    };
    let version_sql = "SELECT MAX(version) FROM _sqlx_migrations WHERE success";
    Ok(match db.pool() {
        Pool::Postgres(p) => {
            let n: i64 = sqlx::query_scalar(exists_sql).fetch_one(p).await?;
            if n == 0 { None } else { sqlx::query_scalar::<_, Option<i64>>(version_sql).fetch_one(p).await? }
        }
        Pool::Sqlite(p) => {
            let n: i64 = sqlx::query_scalar(exists_sql).fetch_one(p).await?;
            if n == 0 { None } else { sqlx::query_scalar::<_, Option<i64>>(version_sql).fetch_one(p).await? }
        }
    })
}

use sqlx::SqlSafeStr as _;
