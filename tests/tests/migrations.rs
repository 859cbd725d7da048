//! Migrations: both backends have the same versions, the migrated schema is
//! exactly the checked-in snapshot (so schema changes are deliberate), and a
//! database newer than the build is refused.

use std::path::PathBuf;

use berth_control_plane::store::{Db, Pool, StoreError, migrate};
use berth_tests::{Backend, TestDb, on_both_backends};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn listed(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("migrations").join(dir))
        .expect("migrations folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    names.sort();
    names
}

#[test]
fn both_backends_have_the_same_versions_and_every_file_is_embedded() {
    let expected: Vec<String> = migrate::MIGRATIONS.iter().map(|(v, d, _, _)| format!("{v:04}_{d}.sql")).collect();
    assert_eq!(listed("postgres"), expected, "migrations/postgres and the embedded list differ");
    assert_eq!(listed("sqlite"), expected, "migrations/sqlite and the embedded list differ");
    for (v, d, pg, sqlite) in migrate::MIGRATIONS {
        let name = format!("{v:04}_{d}.sql");
        let on_disk = std::fs::read_to_string(repo_root().join("migrations/postgres").join(&name)).expect("read");
        assert_eq!(&on_disk, pg, "{name} (postgres) is not what the build embeds");
        let on_disk = std::fs::read_to_string(repo_root().join("migrations/sqlite").join(&name)).expect("read");
        assert_eq!(&on_disk, sqlite, "{name} (sqlite) is not what the build embeds");
    }
}

/// A normalized text dump of the schema the migrations produce.
async fn dump_schema(db: &Db) -> String {
    let mut lines: Vec<String> = Vec::new();
    match db.pool() {
        Pool::Postgres(p) => {
            let cols: Vec<(String, String, String, String, Option<String>)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text, column_default::text \
                 FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations' \
                 ORDER BY table_name, ordinal_position",
            )
            .fetch_all(p)
            .await
            .expect("columns");
            for (t, c, ty, null, default) in cols {
                lines.push(format!("column {t}.{c} {ty} nullable={null} default={}", default.unwrap_or_default()));
            }
            let idx: Vec<(String,)> = sqlx::query_as(
                "SELECT indexdef::text FROM pg_indexes WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations' ORDER BY indexname",
            )
            .fetch_all(p)
            .await
            .expect("indexes");
            lines.extend(idx.into_iter().map(|(d,)| format!("index {d}")));
            let cons: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> '_sqlx_migrations' \
                 ORDER BY conrelid::regclass::text, conname",
            )
            .fetch_all(p)
            .await
            .expect("constraints");
            lines.extend(cons.into_iter().map(|(t, n, d)| format!("constraint {t}.{n} {d}")));
        }
        Pool::Sqlite(p) => {
            let objects: Vec<(String, String, Option<String>)> = sqlx::query_as(
                "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' \
                 ORDER BY type, name",
            )
            .fetch_all(p)
            .await
            .expect("sqlite_master");
            for (ty, name, sql) in objects {
                lines.push(format!(
                    "{ty} {name}: {}",
                    sql.unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ")
                ));
            }
        }
    }
    lines.join("\n") + "\n"
}

async fn schema_matches_snapshot(backend: Backend) {
    let t = TestDb::new(backend).await;
    let actual = dump_schema(&t.db).await;
    let name = match backend {
        Backend::Postgres => "postgres.txt",
        Backend::Sqlite => "sqlite.txt",
    };
    let path = repo_root().join("migrations/snapshots").join(name);
    if std::env::var_os("BERTH_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "the migrated {backend:?} schema differs from {}.\nIf the change is deliberate, rerun with BERTH_UPDATE_SNAPSHOTS=1.\n--- actual ---\n{actual}",
        path.display()
    );
}

async fn a_newer_schema_is_refused(backend: Backend) {
    let t = TestDb::new(backend).await;
    let future = migrate::latest_version() + 1;
    let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ($1, 'from the future', TRUE, $2, 0)";
    match t.db.pool() {
        Pool::Postgres(p) => {
            sqlx::query(insert).bind(future).bind(vec![0u8; 48]).execute(p).await.expect("insert");
        }
        Pool::Sqlite(p) => {
            sqlx::query(insert).bind(future).bind(vec![0u8; 48]).execute(p).await.expect("insert");
        }
    }
    match migrate::run(&t.db).await {
        Err(StoreError::SchemaTooNew { found, known }) => {
            assert_eq!(found, future);
            assert_eq!(known, migrate::latest_version());
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

async fn migrating_twice_is_a_no_op(backend: Backend) {
    let t = TestDb::new(backend).await;
    migrate::run(&t.db).await.expect("second run");
    assert_eq!(migrate::applied_version(&t.db).await.expect("version"), Some(migrate::latest_version()));
}

on_both_backends!(schema_matches_snapshot, a_newer_schema_is_refused, migrating_twice_is_a_no_op);
