//! Accounts (operator API, suspension, bootstrap) and access keys (secrets
//! shown once and stored encrypted, deactivation, last use, master-key rotation).

use std::time::Duration;

use berth_control_plane::auth::keyring::Keyring;
use berth_control_plane::store::{self, Db, Pool};
use berth_tests::{Auth, Backend, TestServer, on_both_backends, test_config};
use serde_json::json;

async fn operator_manages_accounts_and_suspension(backend: Backend) {
    let s = TestServer::start(backend).await;
    assert!(s.app.bootstrap().await.expect("bootstrap").is_none(), "bootstrap happens once");
    let acme = s.tenant("acme").await;
    acme.create_cluster("prod").await;
    acme.register("web").await;
    let run = acme.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "queue": true})).await.expect(201);
    let task = run["tasks"][0]["id"].as_str().expect("id").to_owned();
    let session = acme.session().await;

    let list = s.operator.get("/v1/accounts").await.expect(200);
    let names: Vec<&str> =
        list["accounts"].as_array().expect("list").iter().map(|a| a["name"].as_str().expect("n")).collect();
    assert_eq!(names, ["operator", "acme"]);
    assert_eq!(list["accounts"][0]["is_operator"], true);
    s.operator.post("/v1/accounts", json!({"name": "acme"})).await.expect_error(409, "ResourceAlreadyExists");
    acme.get("/v1/accounts").await.expect_error(403, "AccessDenied");

    let suspended = s.operator.post("/v1/accounts/acme/suspend", json!({"reason": "unpaid invoice"})).await.expect(200);
    assert_eq!(suspended["status"], "SUSPENDED");
    assert_eq!(suspended["status_reason"], "unpaid invoice");
    // Every call with the account's credentials is refused, signatures and sessions alike.
    acme.get("/v1/clusters").await.expect_error(403, "AccountSuspended");
    acme.post("/v1/clusters", json!({"name": "x"})).await.expect_error(403, "AccountSuspended");
    session.get("/v1/clusters").await.expect_error(403, "AccountSuspended");
    // Its tasks keep running: suspension does not touch workloads (docs/authentication.md).
    let account =
        s.operator.get("/v1/accounts/acme").await.expect(200)["id"].as_str().expect("id").parse().expect("uuid");
    let scope = store::AccountScope::new(account);
    let mut tx = s.app.db().begin_read().await.expect("tx");
    let cluster = store::clusters::get_by_name(&mut tx, scope, "prod").await.expect("q").expect("cluster");
    let row = store::tasks::get(&mut tx, scope, cluster.cluster_id(), task.parse().expect("id"))
        .await
        .expect("q")
        .expect("task");
    assert_eq!((row.desired_status.as_str(), row.last_status.as_str()), ("RUNNING", "PROVISIONING"));
    drop(tx);

    s.operator.post("/v1/accounts/operator/suspend", json!({})).await.expect_error(409, "InvalidStateTransition");
    let back = s.operator.post("/v1/accounts/acme/reactivate", json!({})).await.expect(200);
    assert_eq!(back["status"], "ACTIVE");
    acme.get("/v1/clusters").await.expect(200);
    session.get("/v1/clusters").await.expect(200);
    s.stop().await;
}

async fn access_keys_lifecycle(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.tenant("acme").await;
    let created = admin.post("/v1/access-keys", json!({"role": "operator", "description": "ci"})).await.expect(201);
    let secret = created["secret_access_key"].as_str().expect("secret").to_owned();
    let id = created["access_key"]["access_key_id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("BK") && id.len() == 20, "{id}");
    assert_eq!(created["access_key"]["role"], "operator");
    let op = s.with_key(&id, &secret);
    op.create_cluster("prod").await;

    // Secrets are never shown again, nor stored in the clear.
    let listed = admin.get("/v1/access-keys").await.expect(200).to_string();
    let got = admin.get(&format!("/v1/access-keys/{id}")).await.expect(200);
    assert!(!listed.contains(&secret) && !got.to_string().contains(&secret));
    assert!(raw_table_text(s.app.db(), "access_keys").await.iter().all(|row| !row.contains(&secret)));
    // Last use is recorded (in the background, at most once a minute).
    let mut used = serde_json::Value::Null;
    for _ in 0..50 {
        used = admin.get(&format!("/v1/access-keys/{id}")).await.expect(200);
        if used["last_used_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(used["last_used_at"].is_string(), "{used}");
    assert_eq!(used["last_used_ip"], "127.0.0.1");

    admin.post(&format!("/v1/access-keys/{id}/deactivate"), json!({})).await.expect(200);
    op.get("/v1/clusters").await.expect_error(403, "InvalidAccessKeyId");
    admin.post(&format!("/v1/access-keys/{id}/reactivate"), json!({})).await.expect(200);
    op.get("/v1/clusters").await.expect(200);
    admin.delete(&format!("/v1/access-keys/{id}")).await.expect(204);
    op.get("/v1/clusters").await.expect_error(403, "InvalidAccessKeyId");
    admin.get(&format!("/v1/access-keys/{id}")).await.expect_error(404, "ResourceNotFound");

    // The last unrestricted admin key cannot be removed.
    let Auth::SigV4 { access_key_id: own, .. } = admin.auth.clone() else { panic!() };
    admin.post(&format!("/v1/access-keys/{own}/deactivate"), json!({})).await.expect_error(409, "ResourceInUse");
    admin.delete(&format!("/v1/access-keys/{own}")).await.expect_error(409, "ResourceInUse");

    // A replayed creation returns the same secret, which the idempotency table keeps sealed.
    let req = || {
        admin
            .request(reqwest::Method::POST, "/v1/access-keys")
            .header("idempotency-key", "mk-1")
            .json(&json!({"role": "read-only"}))
    };
    let first = admin.send(req()).await.expect(201);
    let again = admin.send(req()).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.expect(201), first);
    let sealed_secret = first["secret_access_key"].as_str().expect("secret").to_owned();
    assert!(raw_table_text(s.app.db(), "idempotency_records").await.iter().all(|r| !r.contains(&sealed_secret)));
    admin.post("/v1/access-keys", json!({"role": "superuser"})).await.expect_error(400, "BadRequest");
    admin.post("/v1/access-keys", json!({"role": "admin", "clusters": []})).await.expect_error(422, "ValidationError");
    s.stop().await;
}

/// Every row of a table as text, to look for secrets in the clear.
async fn raw_table_text(db: &Db, table: &str) -> Vec<String> {
    let sql = format!("SELECT * FROM {table}");
    match db.pool() {
        Pool::Postgres(p) => {
            let sql = format!("SELECT row_to_json(t)::text FROM ({sql}) t");
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).fetch_all(p).await.expect("rows")
        }
        Pool::Sqlite(p) => {
            use sqlx::Row;
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(p).await.expect("rows");
            rows.iter()
                .map(|r| {
                    (0..r.columns().len())
                        .map(|i| {
                            r.try_get::<String, _>(i)
                                .or_else(|_| {
                                    r.try_get::<Vec<u8>, _>(i).map(|b| String::from_utf8_lossy(&b).into_owned())
                                })
                                .unwrap_or_default()
                        })
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect()
        }
    }
}

async fn master_key_rotation(backend: Backend) {
    let k1 = Keyring::generate_entry("k1");
    let k2 = Keyring::generate_entry("k2");
    let t = berth_tests::TestDb::new(backend).await;
    let url = t.url.clone();
    let mut config = test_config(&url);
    config.auth.keyring = Keyring::parse(&k1).expect("k1");
    let s = TestServer::start_with(t, config.clone()).await;
    let admin = s.tenant("acme").await;
    admin.create_cluster("prod").await;
    let session_token = admin.session().await;
    let Auth::SigV4 { access_key_id, secret, .. } = admin.auth.clone() else { panic!() };
    let operator = s.operator.clone();
    let testdb = {
        let TestServer { testdb, .. } = s;
        testdb
    };
    let master_keys = |db: &Db| {
        let db = db.clone();
        async move {
            let mut tx = db.begin_read().await.expect("tx");
            let mut ids = store::access_keys::master_key_ids(&mut tx).await.expect("ids");
            ids.sort();
            ids
        }
    };
    assert_eq!(master_keys(&testdb.db).await, ["k1"]);

    // Restart with k2 first and k1 kept: start-up re-encrypts everything under k2.
    config.auth.keyring = Keyring::parse(&format!("{k2},{k1}")).expect("ring");
    let s = TestServer::start_with(testdb, config.clone()).await;
    assert_eq!(master_keys(&s.testdb.db).await, ["k2"]);
    let signed = s.with_key(&access_key_id, &secret);
    signed.get("/v1/clusters/prod").await.expect(200);
    session_token.with_auth(session_token.auth.clone()).get("/v1/clusters").await.expect(200);
    let testdb = {
        let TestServer { testdb, .. } = s;
        testdb
    };

    // k1 can now be dropped.
    config.auth.keyring = Keyring::parse(&k2).expect("k2");
    let s = TestServer::start_with(testdb, config.clone()).await;
    s.with_key(&access_key_id, &secret).get("/v1/clusters/prod").await.expect(200);
    let testdb = {
        let TestServer { testdb, .. } = s;
        testdb
    };

    // Without the key the secrets are under, start-up refuses clearly.
    config.auth.keyring = Keyring::parse(&Keyring::generate_entry("k3")).expect("k3");
    let err = match berth_control_plane::server::build_app(testdb.db.clone(), &config).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("started without the master key its secrets need"),
    };
    assert!(err.contains("\"k2\"") && err.contains("not configured"), "{err}");
    drop(operator);
}

on_both_backends!(operator_manages_accounts_and_suspension, access_keys_lifecycle, master_key_rotation);
