//! The conventions every call follows: idempotent replays, paging, ETags and
//! If-Match, request ids, tenant isolation, and one error body with the right
//! status for every kind of failure.

use berth_tests::{Backend, TestDb, TestServer, on_both_backends, test_config};
use reqwest::Method;
use serde_json::json;

async fn idempotent_replay(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    let send = |body: serde_json::Value, key: &str| {
        c.send(c.request(Method::POST, "/v1/clusters").header("idempotency-key", key).json(&body))
    };
    let first = send(json!({"name": "prod"}), "k-1").await;
    assert_eq!(first.header("idempotent-replayed"), None);
    let first = first.expect(201);
    let second = send(json!({"name": "prod"}), "k-1").await;
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.expect(201), first, "the replay is the first response");
    let other = send(json!({"name": "staging"}), "k-1").await.expect_error(409, "IdempotencyKeyReused");
    assert_eq!(other["field"], "idempotency_key");
    let list = c.get("/v1/clusters").await.expect(200);
    assert_eq!(list["clusters"].as_array().expect("list").len(), 1, "nothing was created twice");

    // client_token in the body works the same way, for RunTask too.
    c.register("web").await;
    let body = json!({"task_definition": "web", "queue": true, "count": 2, "client_token": "run-1"});
    let a = c.post("/v1/clusters/prod/tasks", body.clone()).await.expect(201);
    let b = c.post("/v1/clusters/prod/tasks", body).await;
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(b.expect(201), a);
    let tasks = c.get("/v1/clusters/prod/tasks").await.expect(200);
    assert_eq!(tasks["tasks"].as_array().expect("tasks").len(), 2);
    c.post(
        "/v1/clusters/prod/tasks",
        json!({"task_definition": "web", "queue": true, "count": 1, "client_token": "run-1"}),
    )
    .await
    .expect_error(409, "IdempotencyKeyReused");

    // A key is per account: another tenant's identical key is independent.
    let other = s.tenant("globex").await;
    other
        .send(
            other.request(Method::POST, "/v1/clusters").header("idempotency-key", "k-1").json(&json!({"name": "prod"})),
        )
        .await
        .expect(201);
    s.stop().await;
}

async fn concurrent_retries_create_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    let mut handles = Vec::new();
    for _ in 0..12 {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            c.send(
                c.request(Method::POST, "/v1/clusters")
                    .header("idempotency-key", "same")
                    .json(&json!({"name": "prod"})),
            )
            .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for h in handles {
        let r = h.await.expect("join");
        ids.insert(r.expect(201)["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(ids.len(), 1, "every retry got the one cluster");
    let list = c.get("/v1/clusters").await.expect(200);
    assert_eq!(list["clusters"].as_array().expect("list").len(), 1);
    s.stop().await;
}

async fn paging_over_more_than_250_items(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    // More clusters than the default quota allows.
    let rb = s.operator.request(reqwest::Method::PUT, "/v1/accounts/acme/quotas/clusters").json(&json!({"limit": 300}));
    s.operator.send(rb).await.expect(200);
    // Create through the app to keep the test quick; paging is what is under test.
    let principal_client = c.clone();
    let mut expected = Vec::new();
    for i in 0..260 {
        let name = format!("c{i:03}");
        expected.push(principal_client.create_cluster(&name).await["id"].as_str().expect("id").to_owned());
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/clusters?limit=100&next_token={t}"),
            None => "/v1/clusters?limit=100".to_owned(),
        };
        let page = c.get(&path).await.expect(200);
        pages += 1;
        seen.extend(
            page["clusters"].as_array().expect("list").iter().map(|x| x["id"].as_str().expect("id").to_owned()),
        );
        match page["next_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected, "every cluster exactly once, in creation order");
    let default_page = c.get("/v1/clusters").await.expect(200);
    assert_eq!(default_page["clusters"].as_array().expect("list").len(), 50);
    assert_eq!(c.get("/v1/clusters?limit=101").await.expect_error(400, "BadRequest")["field"], "limit");
    assert_eq!(c.get("/v1/clusters?limit=0").await.expect_error(400, "BadRequest")["field"], "limit");
    assert_eq!(c.get("/v1/clusters?next_token=garbage!").await.expect_error(400, "BadRequest")["field"], "next_token");
    assert_eq!(c.get("/v1/clusters?colour=red").await.expect_error(400, "BadRequest")["field"], "colour");
    s.stop().await;
}

async fn if_match_guards_updates(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    let send = |etag: &str, tags: serde_json::Value| {
        c.send(c.request(Method::PATCH, "/v1/clusters/prod").header("if-match", etag).json(&json!({"tags": tags})))
    };
    send("\"1\"", json!({"a": "1"})).await.expect(200);
    let stale = send("\"1\"", json!({"a": "2"})).await.expect_error(412, "PreconditionFailed");
    assert!(stale["message"].as_str().expect("msg").contains("version 2"), "{stale}");
    assert_eq!(
        c.get("/v1/clusters/prod").await.expect(200)["tags"],
        json!({"a": "1"}),
        "a refused update changes nothing"
    );
    send("W/\"2\"", json!({"a": "3"})).await.expect(200);
    send("*", json!({"a": "4"})).await.expect(200);
    send("banana", json!({})).await.expect_error(400, "BadRequest");
    let del = c.send(c.request(Method::DELETE, "/v1/clusters/prod").header("if-match", "\"3\"")).await;
    del.expect_error(412, "PreconditionFailed");
    let del = c.send(c.request(Method::DELETE, "/v1/clusters/prod").header("if-match", "\"4\"")).await;
    assert_eq!(del.status.as_u16(), 204);
    s.stop().await;
}

async fn request_ids_on_every_response(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    let ok = c.get("/v1/clusters").await;
    assert!(ok.header("x-request-id").is_some_and(|v| v.len() >= 16));
    let chosen = c.send(c.request(Method::GET, "/v1/clusters").header("x-request-id", "trace-me-123")).await;
    assert_eq!(chosen.header("x-request-id"), Some("trace-me-123"));
    let err = c.send(c.request(Method::GET, "/v1/clusters/none").header("x-request-id", "trace-me-456")).await;
    assert_eq!(err.expect_error(404, "ResourceNotFound")["request_id"], "trace-me-456");
    let health = s.anonymous().get("/healthz").await;
    assert!(health.header("x-request-id").is_some());
    s.stop().await;
}

async fn another_accounts_resources_are_not_found(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.tenant("acme").await;
    let b = s.tenant("globex").await;
    let cluster = a.create_cluster("prod").await;
    a.register("web").await;
    let run = a.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "queue": true})).await.expect(201);
    let task = run["tasks"][0]["id"].as_str().expect("id").to_owned();
    let cid = cluster["id"].as_str().expect("id");

    for path in [
        "/v1/clusters/prod".to_owned(),
        format!("/v1/clusters/{cid}"),
        "/v1/task-definitions/web".to_owned(),
        "/v1/task-definitions/web/revisions".to_owned(),
        "/v1/task-definitions/web/revisions/1".to_owned(),
        format!("/v1/clusters/{cid}/tasks"),
        format!("/v1/clusters/{cid}/tasks/{task}"),
    ] {
        b.get(&path).await.expect_error(404, "ResourceNotFound");
    }
    b.patch("/v1/clusters/prod", json!({"tags": {}})).await.expect_error(404, "ResourceNotFound");
    b.delete(&format!("/v1/clusters/{cid}")).await.expect_error(404, "ResourceNotFound");
    b.post(&format!("/v1/clusters/{cid}/tasks"), json!({"task_definition": "web"}))
        .await
        .expect_error(404, "ResourceNotFound");
    b.post(&format!("/v1/clusters/{cid}/tasks/{task}/stop"), json!({})).await.expect_error(404, "ResourceNotFound");
    b.post("/v1/task-definitions/web/revisions/1/deregister", json!({})).await.expect_error(404, "ResourceNotFound");
    assert_eq!(b.get("/v1/clusters").await.expect(200)["clusters"], json!([]));
    assert_eq!(b.get("/v1/task-definitions").await.expect(200)["families"], json!([]));
    let b_events = b.get("/v1/events").await.expect(200);
    let text = b_events.to_string();
    assert!(
        !text.contains(cid) && !text.contains(&task) && !text.contains("prod"),
        "B sees none of A's events: {text}"
    );
    // B may use the same names without touching A's.
    b.create_cluster("prod").await;
    assert_eq!(a.get("/v1/clusters/prod").await.expect(200)["id"], cluster["id"]);
    assert_eq!(a.get(&format!("/v1/clusters/prod/tasks/{task}")).await.expect(200)["last_status"], "PROVISIONING");
    s.stop().await;
}

async fn error_statuses(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;

    // 400: not JSON, unknown field (named), wrong type (named).
    let r =
        c.send(c.request(Method::POST, "/v1/clusters").header("content-type", "application/json").body("{nope")).await;
    r.expect_error(400, "BadRequest");
    let r = c.post("/v1/clusters", json!({"name": "x", "colour": "red"})).await.expect_error(400, "BadRequest");
    assert_eq!(r["field"], "colour");
    let r = c
        .post(
            "/v1/task-definitions",
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "i", "memory": "lots"}]}),
        )
        .await
        .expect_error(400, "BadRequest");
    assert_eq!(r["field"], "container_definitions[0].memory");
    let r = c.post("/v1/task-definitions", json!({"family": "f", "container_definitions": [{"name": "a"}]})).await;
    assert_eq!(r.expect_error(400, "BadRequest")["field"], "container_definitions[0].image");

    // 401: no credentials. 403: a key that does not exist, and a read-only key writing.
    s.anonymous().get("/v1/clusters").await.expect_error(401, "MissingAuthenticationToken");
    s.with_key("BKNOSUCHKEY000000000", "secret").get("/v1/clusters").await.expect_error(403, "InvalidAccessKeyId");
    let ro = c.new_key("read-only", None).await;
    ro.post("/v1/clusters", json!({"name": "nope"})).await.expect_error(403, "AccessDenied");

    // 404: unknown route too.
    c.get("/v1/nothing-here").await.expect_error(404, "ResourceNotFound");
    // 405
    c.send(c.request(Method::PUT, "/healthz")).await.expect_error(405, "MethodNotAllowed");
    // 409
    c.post("/v1/clusters", json!({"name": "prod"})).await.expect_error(409, "ResourceAlreadyExists");
    // 413: body over the limit, and a definition over its own limit.
    let huge = "x".repeat(2 << 20);
    c.post("/v1/clusters", json!({"name": huge})).await.expect_error(413, "PayloadTooLarge");
    let env: serde_json::Map<String, serde_json::Value> =
        (0..700).map(|i| (format!("VAR_{i}"), json!("y".repeat(100)))).collect();
    let big = c
        .post("/v1/task-definitions", json!({"family": "big", "container_definitions": [{"name": "a", "image": "i", "memory": 64, "environment": env}]}))
        .await
        .expect_error(413, "PayloadTooLarge");
    assert_eq!(big["field"], "container_definitions");
    // 415
    c.send(c.request(Method::POST, "/v1/clusters").header("content-type", "text/plain").body("{\"name\":\"a\"}"))
        .await
        .expect_error(415, "UnsupportedMediaType");
    // 422 with the field named, and nothing created.
    let r = c.post("/v1/clusters", json!({"name": "has space"})).await.expect_error(422, "ValidationError");
    assert_eq!(r["field"], "name");
    let cases = [
        (json!({"family": "f", "container_definitions": []}), "container_definitions"),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "i"}]}),
            "container_definitions[0].memory",
        ),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "i", "memory": 64, "memory_reservation": 128}]}),
            "container_definitions[0].memory_reservation",
        ),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "i", "memory": 64}, {"name": "a", "image": "i", "memory": 64}]}),
            "container_definitions[1].name",
        ),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "i", "memory": 64, "essential": false}]}),
            "container_definitions",
        ),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "i", "memory": 64, "port_mappings": [{"container_port": 80, "host_port": 8080}, {"container_port": 81, "host_port": 8080}]}]}),
            "container_definitions[0].port_mappings[1].host_port",
        ),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "i", "memory": 64, "depends_on": [{"container_name": "b", "condition": "START"}]}, {"name": "b", "image": "i", "memory": 64, "depends_on": [{"container_name": "a", "condition": "START"}]}]}),
            "container_definitions[0].depends_on",
        ),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "i", "memory": 64, "health_check": {"command": ["ls"]}}]}),
            "container_definitions[0].health_check.command",
        ),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "i", "memory": 64, "ulimits": [{"name": "bogus", "soft_limit": 1, "hard_limit": 1}]}]}),
            "container_definitions[0].ulimits[0].name",
        ),
        (
            json!({"family": "f", "memory": 32, "container_definitions": [{"name": "a", "image": "i", "memory": 64}]}),
            "memory",
        ),
        (
            json!({"family": "f", "network_mode": "none", "container_definitions": [{"name": "a", "image": "i", "memory": 64, "port_mappings": [{"container_port": 80}]}]}),
            "container_definitions[0].port_mappings[0]",
        ),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "i", "memory": 64, "stop_timeout": 121}]}),
            "container_definitions[0].stop_timeout",
        ),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "i", "memory": 64}], "tags": {"berth:x": "y"}}),
            "tags.berth:x",
        ),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "i", "memory": 64,
                   "restart_policy": {"condition": "ALWAYS"}}]}),
            "container_definitions[0].restart_policy",
        ),
        // References no host could pull: upper case, an empty tag, a short digest.
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "Acme/App:1", "memory": 64}]}),
            "container_definitions[0].image",
        ),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "app:", "memory": 64}]}),
            "container_definitions[0].image",
        ),
        (
            json!({"family": "f", "container_definitions": [{"name": "a", "image": "app@sha256:12", "memory": 64}]}),
            "container_definitions[0].image",
        ),
    ];
    for (body, field) in cases {
        let r = c.post("/v1/task-definitions", body.clone()).await.expect_error(422, "ValidationError");
        assert_eq!(r["field"], field, "for {body}");
    }
    assert_eq!(
        c.get("/v1/task-definitions").await.expect(200)["families"],
        json!([]),
        "refused requests created nothing"
    );
    s.stop().await;
}

async fn throttling(backend: Backend) {
    let t = TestDb::new(backend).await;
    let mut config = test_config(&t.url);
    config.rate_limits = berth_control_plane::config::rate_limits(1, 5, None).expect("valid limits");
    let s = TestServer::start_with(t, config).await;
    let c = s.tenant("acme").await;
    let other = s.tenant("globex").await;
    for _ in 0..5 {
        c.get("/v1/clusters").await.expect(200);
    }
    let r = c.get("/v1/clusters").await;
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    r.expect_error(429, "ThrottlingException");
    // Another account has its own bucket.
    other.get("/v1/clusters").await.expect(200);
    s.stop().await;
}

async fn internal_and_unavailable_errors(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.register("web").await;
    // A row the code cannot read (hand-edited, say) is a 500 that leaks nothing.
    let corrupt = "UPDATE task_definitions SET definition = '{\"not\": \"a definition\"}'";
    match s.testdb.db.pool() {
        berth_control_plane::store::Pool::Postgres(p) => {
            sqlx::query(corrupt).execute(p).await.expect("corrupt");
        }
        berth_control_plane::store::Pool::Sqlite(p) => {
            sqlx::query(corrupt).execute(p).await.expect("corrupt");
        }
    }
    let r = c.get("/v1/task-definitions/web").await.expect_error(500, "InternalError");
    assert!(!r["message"].as_str().expect("msg").contains("definition"), "no internals in the message: {r}");

    // With the database gone: 503 with Retry-After, and readiness says so.
    s.anonymous().get("/readyz").await.expect(200);
    s.testdb.db.close().await;
    let r = c.get("/v1/clusters").await;
    assert!(r.header("retry-after").is_some());
    r.expect_error(503, "ServiceUnavailable");
    s.anonymous().get("/readyz").await.expect_error(503, "ServiceUnavailable");
    s.anonymous().get("/healthz").await.expect(200);
    s.stop().await;
}

on_both_backends!(
    idempotent_replay,
    concurrent_retries_create_once,
    paging_over_more_than_250_items,
    if_match_guards_updates,
    request_ids_on_every_response,
    another_accounts_resources_are_not_found,
    error_statuses,
    throttling,
    internal_and_unavailable_errors,
);
