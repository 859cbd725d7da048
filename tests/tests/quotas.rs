//! Per-account quotas: listing and setting them, every quota at its boundary,
//! exactly the limit admitted under concurrency (also across two replicas),
//! usage given back, and drift repaired.

use berth_control_plane::store::Pool;
use berth_tests::{Backend, Client, TestDb, TestServer, on_both_backends, test_config};
use reqwest::Method;
use serde_json::{Value, json};

async fn set_quota(s: &TestServer, account: &str, name: &str, limit: i64) -> Value {
    let rb = s
        .operator
        .request(Method::PUT, &format!("/v1/accounts/{account}/quotas/{name}"))
        .json(&json!({"limit": limit}));
    s.operator.send(rb).await.expect(200)
}

fn quota<'a>(all: &'a Value, name: &str) -> &'a Value {
    all["quotas"].as_array().expect("quotas").iter().find(|q| q["name"] == name).expect("quota listed")
}

async fn usage(c: &Client, name: &str) -> i64 {
    quota(&c.get("/v1/quotas").await.expect(200), name)["usage"].as_i64().expect("usage")
}

async fn register(c: &Client, family: &str, memory: u32) {
    c.post(
        "/v1/task-definitions",
        json!({"family": family, "container_definitions": [{"name": "app", "image": "busybox", "memory": memory}]}),
    )
    .await
    .expect(201);
}

async fn listing_setting_and_resetting(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    let all = c.get("/v1/quotas").await.expect(200);
    assert_eq!(all["quotas"].as_array().expect("quotas").len(), 12, "every quota is listed");
    assert_eq!(quota(&all, "clusters")["source"], "default");
    assert_eq!(quota(&all, "clusters")["limit"], 100);
    assert_eq!(quota(&all, "clusters")["usage"], 0);
    c.create_cluster("prod").await;
    assert_eq!(usage(&c, "clusters").await, 1);

    let set = set_quota(&s, "acme", "clusters", 2).await;
    assert_eq!(set, json!({"name": "clusters", "limit": 2, "usage": 1, "source": "account"}));
    let seen = s.operator.get("/v1/accounts/acme/quotas").await.expect(200);
    assert_eq!(quota(&seen, "clusters")["limit"], 2);

    // Only the operator sets quotas; names and limits are checked.
    let rb = c.request(Method::PUT, "/v1/accounts/acme/quotas/clusters").json(&json!({"limit": 1000}));
    c.send(rb).await.expect_error(403, "AccessDenied");
    let rb = s.operator.request(Method::PUT, "/v1/accounts/acme/quotas/widgets").json(&json!({"limit": 1}));
    s.operator.send(rb).await.expect_error(404, "ResourceNotFound");
    let rb = s.operator.request(Method::PUT, "/v1/accounts/acme/quotas/clusters").json(&json!({"limit": -1}));
    let e = s.operator.send(rb).await.expect_error(422, "ValidationError");
    assert_eq!(e["field"], "limit");
    assert_eq!(
        quota(&c.get("/v1/quotas").await.expect(200), "clusters")["limit"],
        2,
        "a refused change changed nothing"
    );

    let reset = s.operator.delete("/v1/accounts/acme/quotas/clusters").await.expect(200);
    assert_eq!(reset["source"], "default");
    assert_eq!(reset["limit"], 100);
    s.stop().await;
}

async fn clusters_families_revisions_and_hosts(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;

    set_quota(&s, "acme", "clusters", 1).await;
    c.create_cluster("prod").await;
    let e = c.post("/v1/clusters", json!({"name": "staging"})).await.expect_error(409, "LimitExceeded");
    assert_eq!(e["quota"], json!({"quota": "clusters", "limit": 1, "usage": 1, "requested": 1}));
    assert!(e["message"].as_str().expect("message").contains("clusters"));
    assert_eq!(
        c.get("/v1/clusters").await.expect(200)["clusters"].as_array().expect("list").len(),
        1,
        "nothing created"
    );
    // Deleting gives the usage back.
    c.delete("/v1/clusters/prod").await.expect(204);
    assert_eq!(usage(&c, "clusters").await, 0);
    c.create_cluster("staging").await;

    set_quota(&s, "acme", "task_definition_families", 1).await;
    set_quota(&s, "acme", "revisions_per_family", 2).await;
    register(&c, "web", 128).await;
    register(&c, "web", 128).await;
    let e = c
        .post(
            "/v1/task-definitions",
            json!({"family": "web", "container_definitions": [{"name": "app", "image": "busybox", "memory": 128}]}),
        )
        .await
        .expect_error(409, "LimitExceeded");
    assert_eq!(e["quota"], json!({"quota": "revisions_per_family", "limit": 2, "usage": 2, "requested": 1}));
    let e = c
        .post(
            "/v1/task-definitions",
            json!({"family": "api", "container_definitions": [{"name": "app", "image": "busybox", "memory": 128}]}),
        )
        .await
        .expect_error(409, "LimitExceeded");
    assert_eq!(e["quota"]["quota"], "task_definition_families");
    c.get("/v1/task-definitions/api").await.expect_error(404, "ResourceNotFound");
    assert_eq!(usage(&c, "revisions_per_family").await, 2);

    set_quota(&s, "acme", "hosts", 1).await;
    c.add_host("staging", 4096, 4096, json!({})).await;
    let token = c.post("/v1/clusters/staging/registration-tokens", json!({})).await.expect(201);
    let anon = c.with_auth(berth_tests::Auth::None);
    let e = anon
        .post(
            "/v1/agent/register",
            json!({"registration_token": token["token"], "hostname": "h2", "total": {"cpu": 1024, "memory": 1024},
                   "agent_version": "test"}),
        )
        .await
        .expect_error(409, "LimitExceeded");
    assert_eq!(e["quota"]["quota"], "hosts");
    assert_eq!(c.get("/v1/clusters/staging/hosts").await.expect(200)["hosts"].as_array().expect("hosts").len(), 1);
    s.stop().await;
}

/// RunTask follows ECS: the tasks that fit start, the rest are failures
/// naming the quota; when none fit, the call is refused and creates nothing.
async fn run_task_starts_what_fits(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    register(&c, "web", 256).await;

    // Queued tasks count as pending until placed; stopping one gives its slot back.
    set_quota(&s, "acme", "pending_tasks", 2).await;
    let r = c
        .post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "count": 3, "queue": true}))
        .await
        .expect(201);
    assert_eq!(r["tasks"].as_array().expect("tasks").len(), 2);
    assert_eq!(r["failures"][0]["reason"], "QUOTA:pending_tasks");
    let e = c
        .post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "queue": true}))
        .await
        .expect_error(409, "LimitExceeded");
    assert_eq!(e["quota"], json!({"quota": "pending_tasks", "limit": 2, "usage": 2, "requested": 1}));
    let first = r["tasks"][0]["id"].as_str().expect("id");
    c.post(&format!("/v1/clusters/prod/tasks/{first}/stop"), json!({})).await.expect(200);
    assert_eq!(usage(&c, "pending_tasks").await, 1);
    c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "queue": true})).await.expect(201);

    // Placed tasks count against running tasks, CPU and memory.
    let second = c.create_cluster("placed").await;
    assert_eq!(second["name"], "placed");
    c.add_host("placed", 16384, 16384, json!({})).await;
    set_quota(&s, "acme", "running_tasks", 3).await;
    let r = c.post("/v1/clusters/placed/tasks", json!({"task_definition": "web", "count": 5})).await.expect(201);
    assert_eq!(r["tasks"].as_array().expect("tasks").len(), 3);
    let reasons: Vec<&str> =
        r["failures"].as_array().expect("failures").iter().map(|f| f["reason"].as_str().expect("reason")).collect();
    assert_eq!(reasons, ["QUOTA:running_tasks", "QUOTA:running_tasks"]);
    let e =
        c.post("/v1/clusters/placed/tasks", json!({"task_definition": "web"})).await.expect_error(409, "LimitExceeded");
    assert_eq!(e["quota"]["quota"], "running_tasks");
    assert_eq!(usage(&c, "running_tasks").await, 3);
    assert_eq!(usage(&c, "running_memory").await, 3 * 256);
    set_quota(&s, "acme", "running_tasks", 100).await;
    set_quota(&s, "acme", "running_memory", 4 * 256).await;
    let r = c.post("/v1/clusters/placed/tasks", json!({"task_definition": "web", "count": 2})).await.expect(201);
    assert_eq!(r["tasks"].as_array().expect("tasks").len(), 1);
    assert_eq!(r["failures"][0]["reason"], "QUOTA:running_memory");

    // Every task created counts against the per-minute launch rate, within one request too.
    set_quota(&s, "acme", "running_memory", 1_000_000).await;
    let launched = usage(&c, "tasks_launched_per_minute").await;
    set_quota(&s, "acme", "tasks_launched_per_minute", launched + 1).await;
    let r = c.post("/v1/clusters/placed/tasks", json!({"task_definition": "web", "count": 2})).await.expect(201);
    assert_eq!(r["tasks"].as_array().expect("tasks").len(), 1);
    assert_eq!(r["failures"][0]["reason"], "QUOTA:tasks_launched_per_minute");
    s.stop().await;
}

async fn concurrent_creates(c: &[Client], n: usize) -> (usize, usize) {
    let calls = (0..n).map(|i| {
        let c = c[i % c.len()].clone();
        async move { c.post("/v1/clusters", json!({"name": format!("c{i}")})).await }
    });
    let results = futures::future::join_all(calls).await;
    let created = results.iter().filter(|r| r.status.as_u16() == 201).count();
    let refused = results.iter().filter(|r| r.status.as_u16() == 409 && r.body["code"] == "LimitExceeded").count();
    (created, refused)
}

async fn concurrent_runs(c: &[Client], n: usize) -> usize {
    let calls = (0..n).map(|i| {
        let c = c[i % c.len()].clone();
        async move { c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web"})).await }
    });
    let results = futures::future::join_all(calls).await;
    for r in &results {
        assert!(
            r.status.as_u16() == 201 || (r.status.as_u16() == 409 && r.body["code"] == "LimitExceeded"),
            "{} {}",
            r.status,
            r.body
        );
    }
    results.iter().filter(|r| r.status.as_u16() == 201).count()
}

/// The cap on expensive calls in flight is not what these tests are about.
fn uncapped(url: &str) -> berth_control_plane::config::ServerConfig {
    let mut config = test_config(url);
    config.limits.expensive_calls_per_account = 1000;
    config
}

/// 100 parallel requests at the edge of a limit admit exactly the limit.
async fn exactly_the_limit_under_concurrency(backend: Backend) {
    let t = TestDb::new(backend).await;
    let config = uncapped(&t.url);
    let s = TestServer::start_with(t, config).await;
    let c = s.tenant("acme").await;
    set_quota(&s, "acme", "clusters", 10).await;
    let (created, refused) = concurrent_creates(std::slice::from_ref(&c), 100).await;
    assert_eq!((created, refused), (10, 90));
    assert_eq!(usage(&c, "clusters").await, 10);

    set_quota(&s, "acme", "clusters", 100).await;
    c.create_cluster("prod").await;
    register(&c, "web", 64).await;
    c.add_host("prod", 1 << 20, 1 << 20, json!({})).await;
    set_quota(&s, "acme", "running_tasks", 10).await;
    assert_eq!(concurrent_runs(std::slice::from_ref(&c), 100).await, 10);
    let tasks = c.get("/v1/clusters/prod/tasks?limit=100").await.expect(200);
    assert_eq!(tasks["tasks"].as_array().expect("tasks").len(), 10);
    s.stop().await;
}

/// The same with two control-plane replicas on one PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_limit_across_two_replicas() {
    let t = TestDb::new(Backend::Postgres).await;
    let config = uncapped(&t.url);
    let s1 = TestServer::start_with(t, config).await;
    let c1 = s1.tenant("acme").await;
    let db2 = TestDb::attach(&s1.testdb.url).await;
    let mut config2 = uncapped(&s1.testdb.url);
    config2.auth = s1.config.auth.clone();
    let s2 = TestServer::start_with(db2, config2).await;
    let berth_tests::Auth::SigV4 { access_key_id, secret, .. } = c1.auth.clone() else { panic!("a signing client") };
    let c2 = s2.with_key(&access_key_id, &secret);
    let both = [c1.clone(), c2];

    set_quota(&s1, "acme", "clusters", 10).await;
    assert_eq!(concurrent_creates(&both, 100).await, (10, 90));

    set_quota(&s1, "acme", "clusters", 100).await;
    c1.create_cluster("prod").await;
    register(&c1, "web", 64).await;
    c1.add_host("prod", 1 << 20, 1 << 20, json!({})).await;
    set_quota(&s1, "acme", "running_tasks", 10).await;
    assert_eq!(concurrent_runs(&both, 100).await, 10);
    assert_eq!(usage(&c1, "running_tasks").await, 10);
    s2.stop().await;
    s1.stop().await;
}

/// A counter that drifted from the rows is found and repaired by the recount.
async fn drift_is_repaired(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("a").await;
    c.create_cluster("b").await;
    assert_eq!(usage(&c, "clusters").await, 2);
    let inject = "UPDATE quota_usage SET used = used + 5 WHERE name = 'clusters'";
    match s.app.db().pool() {
        Pool::Postgres(p) => drop(sqlx::query(inject).execute(p).await.expect("inject drift")),
        Pool::Sqlite(p) => drop(sqlx::query(inject).execute(p).await.expect("inject drift")),
    }
    assert_eq!(usage(&c, "clusters").await, 7, "the drift is visible");
    let drifts = s.app.recount_quotas().await.expect("recount");
    assert_eq!(drifts.len(), 1, "{drifts:?}");
    assert_eq!((drifts[0].quota.as_str(), drifts[0].counted, drifts[0].actual), ("clusters", 7, 2));
    assert_eq!(usage(&c, "clusters").await, 2);
    assert!(s.app.recount_quotas().await.expect("recount").is_empty(), "nothing left to repair");
    let metrics = s.anonymous().get("/metrics").await;
    let text = metrics.body.as_str().expect("text body");
    assert!(text.contains("berth_quota_drift_repaired_total{quota=\"clusters\"}"), "{text}");
    s.stop().await;
}

on_both_backends!(
    listing_setting_and_resetting,
    clusters_families_revisions_and_hosts,
    run_task_starts_what_fits,
    exactly_the_limit_under_concurrency,
    drift_is_repaired
);
