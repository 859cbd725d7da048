//! Registration tokens and host credentials; the audit trail.

use berth_tests::{Auth, Backend, TestServer, on_both_backends};
use serde_json::json;

async fn registration_tokens_and_host_credentials(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.tenant("acme").await;
    admin.create_cluster("prod").await;
    let created = admin
        .post("/v1/clusters/prod/registration-tokens", json!({"max_uses": 2, "description": "rack 1"}))
        .await
        .expect(201);
    let token = created["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("brt_"));
    assert_eq!(created["registration_token"]["uses"], 0);
    let listed = admin.get("/v1/clusters/prod/registration-tokens").await.expect(200);
    assert!(!listed.to_string().contains(&token), "tokens are shown once");

    let anon = s.anonymous();
    let register = |hostname: &str| {
        anon.post(
            "/v1/agent/register",
            json!({"registration_token": token, "hostname": hostname, "total": {"cpu": 2048, "memory": 4096}, "agent_version": "t"}),
        )
    };
    let h1 = register("host-1").await.expect(201);
    let h2 = register("host-2").await.expect(201);
    register("host-3").await.expect_error(403, "AccessDenied");
    let listed = admin.get("/v1/clusters/prod/registration-tokens").await.expect(200);
    assert_eq!(listed["registration_tokens"][0]["uses"], 2);

    let host = |h: &serde_json::Value| {
        anon.with_auth(Auth::Header(format!("BerthHost {}", h["host_credential"].as_str().expect("cred"))))
    };
    let (id1, id2) = (h1["host_id"].as_str().expect("id"), h2["host_id"].as_str().expect("id"));
    let me = host(&h1).get(&format!("/v1/agent/hosts/{id1}")).await.expect(200);
    assert_eq!(me["hostname"], "host-1");
    // A host credential reaches only its own host, and never the tenant API.
    host(&h1).get(&format!("/v1/agent/hosts/{id2}")).await.expect_error(403, "AccessDenied");
    host(&h1).get("/v1/clusters").await.expect_error(401, "MissingAuthenticationToken");
    let forged = format!("BerthHost {id1}.not-the-secret");
    anon.with_auth(Auth::Header(forged)).get(&format!("/v1/agent/hosts/{id1}")).await.expect_error(403, "AccessDenied");
    // Tenant credentials do not open the agent endpoints.
    admin.get(&format!("/v1/agent/hosts/{id1}")).await.expect_error(403, "AccessDenied");
    anon.get(&format!("/v1/agent/hosts/{id1}")).await.expect_error(401, "MissingAuthenticationToken");

    // Revoked and expired tokens are refused.
    let t2 = admin.post("/v1/clusters/prod/registration-tokens", json!({})).await.expect(201);
    let t2_id = t2["registration_token"]["id"].as_str().expect("id");
    let revoked =
        admin.post(&format!("/v1/clusters/prod/registration-tokens/{t2_id}/revoke"), json!({})).await.expect(200);
    assert_eq!(revoked["status"], "REVOKED");
    anon.post("/v1/agent/register", json!({"registration_token": t2["token"], "hostname": "h", "total": {"cpu": 1, "memory": 1}, "agent_version": "t"}))
        .await
        .expect_error(403, "AccessDenied");
    let t3 = admin.post("/v1/clusters/prod/registration-tokens", json!({"expires_in_seconds": 60})).await.expect(201);
    let expire = "UPDATE registration_tokens SET expires_at = created_at";
    match s.app.db().pool() {
        berth_control_plane::store::Pool::Postgres(p) => drop(sqlx::query(expire).execute(p).await.expect("expire")),
        berth_control_plane::store::Pool::Sqlite(p) => drop(sqlx::query(expire).execute(p).await.expect("expire")),
    }
    anon.post("/v1/agent/register", json!({"registration_token": t3["token"], "hostname": "h", "total": {"cpu": 1, "memory": 1}, "agent_version": "t"}))
        .await
        .expect_error(403, "AccessDenied");
    admin
        .post("/v1/clusters/prod/registration-tokens", json!({"max_uses": 0}))
        .await
        .expect_error(422, "ValidationError");

    // A cluster with registered hosts cannot be deleted.
    admin.delete("/v1/clusters/prod").await.expect_error(409, "ResourceInUse");
    s.stop().await;
}

async fn audit_trail_of_run_then_stop(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.tenant("acme").await;
    let Auth::SigV4 { access_key_id: admin_key, .. } = admin.auth.clone() else { panic!() };
    let op = admin.new_key("operator", None).await;
    let Auth::SigV4 { access_key_id: op_key, .. } = op.auth.clone() else { panic!() };
    op.create_cluster("prod").await;
    op.register("web").await;
    let run = op
        .send(
            op.request(reqwest::Method::POST, "/v1/clusters/prod/tasks")
                .header("x-request-id", "run-req-1")
                .json(&json!({"task_definition": "web", "queue": true})),
        )
        .await
        .expect(201);
    let task = run["tasks"][0]["id"].as_str().expect("id").to_owned();
    op.send(
        op.request(reqwest::Method::POST, &format!("/v1/clusters/prod/tasks/{task}/stop"))
            .header("x-request-id", "stop-req-1")
            .json(&json!({})),
    )
    .await
    .expect(200);
    // A denied call is audited too; reads are not.
    op.post("/v1/access-keys", json!({"role": "admin"})).await.expect_error(403, "AccessDenied");
    op.get("/v1/clusters").await.expect(200);

    let log = admin.get("/v1/audit-events").await.expect(200);
    let events = log["audit_events"].as_array().expect("events");
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().expect("action")).collect();
    // Newest first: the denied key creation, stop, run, register, create cluster, then the admin's key creation.
    assert_eq!(
        actions,
        [
            "create_access_key",
            "stop_task",
            "run_task",
            "register_task_definition",
            "create_cluster",
            "create_access_key"
        ]
    );
    let stop = &events[1];
    assert_eq!(stop["access_key_id"], op_key.as_str());
    assert_eq!(stop["resource"], format!("/v1/clusters/prod/tasks/{task}/stop"));
    assert_eq!(stop["outcome"], "Success");
    assert_eq!(stop["status_code"], 200);
    assert_eq!(stop["source_ip"], "127.0.0.1");
    assert_eq!(stop["request_id"], "stop-req-1");
    assert_eq!(events[2]["request_id"], "run-req-1");
    assert_eq!(events[2]["status_code"], 201);
    assert_eq!(events[0]["outcome"], "AccessDenied");
    assert_eq!(events[0]["status_code"], 403);
    assert_eq!(events[5]["access_key_id"], admin_key.as_str());

    let only_runs = admin.get("/v1/audit-events?action=run_task").await.expect(200);
    assert_eq!(only_runs["audit_events"].as_array().expect("events").len(), 1);
    let future = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("fmt");
    let none = admin.get(&format!("/v1/audit-events?from={}", future.replace('+', "%2B"))).await.expect(200);
    assert_eq!(none["audit_events"], json!([]));
    let paged = admin.get("/v1/audit-events?limit=2").await.expect(200);
    let next = paged["next_token"].as_str().expect("more pages");
    let page2 = admin.get(&format!("/v1/audit-events?limit=2&next_token={next}")).await.expect(200);
    assert_eq!(page2["audit_events"][0]["action"], "run_task");
    admin.get("/v1/audit-events?from=yesterday").await.expect_error(400, "BadRequest");
    // Only admins read it, and only their own account's.
    op.get("/v1/audit-events").await.expect_error(403, "AccessDenied");
    let other = s.tenant("globex").await;
    let theirs = other.get("/v1/audit-events").await.expect(200);
    assert!(!theirs.to_string().contains(&task));
    s.stop().await;
}

on_both_backends!(registration_tokens_and_host_credentials, audit_trail_of_run_then_stop);
