//! RunTask through placement: hosts with resources, strategies, constraints,
//! failures and queueing, drain and deregistration, the dry run, and two
//! control-plane instances placing at once without over-committing a host.

use std::collections::HashMap;

use berth_tests::{Backend, Client, TestServer, on_both_backends, test_config};
use serde_json::{Value, json};

async fn register_app(c: &Client, family: &str, memory: u32, ports: Value) {
    c.post(
        "/v1/task-definitions",
        json!({"family": family, "cpu": 256, "memory": memory, "container_definitions": [
            {"name": "app", "image": "busybox", "memory": memory, "port_mappings": ports}]}),
    )
    .await
    .expect(201);
}

fn host_id(h: &Value) -> String {
    h["host_id"].as_str().expect("host id").to_owned()
}

async fn run(c: &Client, body: Value) -> Value {
    c.post("/v1/clusters/prod/tasks", body).await.expect(201)
}

async fn placing_tasks_on_hosts(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    register_app(&c, "web", 512, json!([])).await;

    // No hosts: a failure, as ECS reports it; nothing is created.
    let none = run(&c, json!({"task_definition": "web"})).await;
    assert_eq!(none["tasks"], json!([]));
    assert_eq!(none["failures"][0]["reason"], "RESOURCE:NO_HOSTS");

    let big = host_id(&c.add_host("prod", 4096, 4096, json!({"zone": "a"})).await);
    let small = host_id(&c.add_host("prod", 4096, 1024, json!({"zone": "b"})).await);
    let hosts = c.get("/v1/clusters/prod/hosts").await.expect(200);
    assert_eq!(hosts["hosts"].as_array().expect("hosts").len(), 2);
    assert_eq!(hosts["hosts"][0]["total"], json!({"cpu": 4096, "memory": 4096}));
    assert_eq!(hosts["hosts"][0]["status"], "ACTIVE");

    // Binpack on memory fills the small host first.
    let r = run(
        &c,
        json!({"task_definition": "web", "count": 3, "placement_strategy": [{"type": "binpack", "field": "memory"}]}),
    )
    .await;
    let placed: Vec<&str> =
        r["tasks"].as_array().expect("tasks").iter().map(|t| t["host_id"].as_str().expect("host")).collect();
    assert_eq!(placed, [small.as_str(), small.as_str(), big.as_str()]);
    let t = &r["tasks"][0];
    assert_eq!(t["last_status"], "PENDING");
    assert!(t["pending_at"].is_string());
    assert_eq!(t["placement"]["host_id"], small.as_str());
    assert_eq!(t["placement"]["hosts_considered"], 2);
    assert_eq!(t["placement"]["strategy"][0]["type"], "binpack");
    let small_host = c.get(&format!("/v1/clusters/prod/hosts/{small}")).await.expect(200);
    assert_eq!(small_host["used"], json!({"cpu": 512, "memory": 1024}));

    // 3584 MiB are left on the big host and none on the small one: seven more fit,
    // the rest fail with the reason.
    let r = run(&c, json!({"task_definition": "web", "count": 9})).await;
    assert_eq!(r["tasks"].as_array().expect("tasks").len(), 7);
    assert_eq!(r["failures"].as_array().expect("failures").len(), 2);
    assert_eq!(r["failures"][0]["reason"], "RESOURCE:MEMORY");
    assert_eq!(r["failures"][0]["detail"], "2 hosts lacked memory");
    // With queue, the task waits in PROVISIONING instead.
    let q = run(&c, json!({"task_definition": "web", "queue": true})).await;
    assert_eq!(q["tasks"][0]["last_status"], "PROVISIONING");
    assert!(q["tasks"][0].get("host_id").is_none());
    s.stop().await;
}

async fn constraints_attributes_drain_and_simulate(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    register_app(&c, "web", 256, json!([])).await;
    let linux = host_id(&c.add_host("prod", 8192, 8192, json!({"os": "linux", "zone": "a"})).await);
    let windows = host_id(&c.add_host("prod", 8192, 8192, json!({"os": "windows", "zone": "b"})).await);

    let member_of = json!([{"type": "member_of", "expression": "os == linux"}]);
    let r = run(&c, json!({"task_definition": "web", "count": 3, "placement_constraints": member_of})).await;
    assert!(r["tasks"].as_array().expect("tasks").iter().all(|t| t["host_id"] == linux.as_str()));

    // Attributes changed through the API take effect.
    let updated = c.request(reqwest::Method::PUT, &format!("/v1/clusters/prod/hosts/{windows}/attributes"));
    let updated = c.send(updated.json(&json!({"attributes": {"gpu": "yes"}}))).await.expect(200);
    assert_eq!(updated["attributes"]["gpu"], "yes");
    assert_eq!(
        updated["attributes"]["hostname"].as_str().map(|h| h.starts_with("host-")),
        Some(true),
        "agent attributes stay"
    );
    assert_eq!(updated["attributes"]["os"], "windows", "agent-reported attributes stay");
    assert!(updated["attributes"].get("zone").is_none(), "user attributes are replaced");
    let r = run(
        &c,
        json!({"task_definition": "web", "placement_constraints": [{"type": "member_of", "expression": "gpu exists"}]}),
    )
    .await;
    assert_eq!(r["tasks"][0]["host_id"], windows.as_str());

    // A bad expression is a 422 naming the field and the position.
    let bad = c
        .post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "placement_constraints": [{"type": "member_of", "expression": "os == linux and"}]}))
        .await
        .expect_error(422, "ValidationError");
    assert_eq!(bad["field"], "placement_constraints[0].expression");
    assert!(bad["message"].as_str().expect("msg").contains("at position 15"), "{bad}");
    let bad = c
        .post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "placement_strategy": [{"type": "pack"}]}))
        .await
        .expect_error(422, "ValidationError");
    assert_eq!(bad["field"], "placement_strategy[0].type");

    // Drain: no new placements there; the dry run says why, host by host.
    c.post(&format!("/v1/clusters/prod/hosts/{linux}/drain"), json!({})).await.expect(200);
    let sim =
        c.post("/v1/clusters/prod/placement:simulate", json!({"task_definition": "web", "count": 2})).await.expect(200);
    assert_eq!(sim["placements"], json!([windows, windows]));
    let verdicts: HashMap<String, Value> = sim["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| (h["host_id"].as_str().expect("id").to_owned(), h.clone()))
        .collect();
    assert_eq!(verdicts[&linux]["eligible"], false);
    assert_eq!(verdicts[&linux]["reason"], "DRAINING");
    assert_eq!(verdicts[&windows]["eligible"], true);
    let sim = c
        .post("/v1/clusters/prod/placement:simulate", json!({"task_definition": "web", "placement_constraints": [{"type": "member_of", "expression": "os == linux"}]}))
        .await
        .expect(200);
    assert_eq!(sim["placements"], json!([]));
    assert_eq!(sim["failures"][0]["detail"], "1 host did not match the member_of constraint, 1 host was draining");
    // The dry run changed nothing.
    let host = c.get(&format!("/v1/clusters/prod/hosts/{windows}")).await.expect(200);
    assert_eq!(host["used"]["memory"], 256);

    // Deregistration is refused while tasks run there, unless forced.
    c.post(&format!("/v1/clusters/prod/hosts/{linux}/deregister"), json!({})).await.expect_error(409, "ResourceInUse");
    let gone = c.post(&format!("/v1/clusters/prod/hosts/{linux}/deregister"), json!({"force": true})).await.expect(200);
    assert_eq!(gone["status"], "DEREGISTERED");
    let tasks = c.get(&format!("/v1/clusters/prod/tasks?host_id={linux}")).await.expect(200);
    for t in tasks["tasks"].as_array().expect("tasks") {
        assert_eq!(t["last_status"], "STOPPED");
        assert_eq!(t["stop_code"], "HostLost");
    }
    s.stop().await;
}

async fn dynamic_and_static_host_ports(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    register_app(
        &c,
        "web",
        64,
        json!([{"container_port": 80, "host_port": 0}, {"container_port": 81, "host_port": 8081}]),
    )
    .await;
    let token = c.post("/v1/clusters/prod/registration-tokens", json!({})).await.expect(201);
    let reg = s
        .anonymous()
        .post(
            "/v1/agent/register",
            json!({"registration_token": token["token"], "hostname": "h", "total": {"cpu": 4096, "memory": 4096},
                                           "dynamic_port_range": [40000, 40010], "agent_version": "t"}),
        )
        .await
        .expect(201);
    let r = run(&c, json!({"task_definition": "web", "count": 2})).await;
    assert_eq!(r["tasks"].as_array().expect("tasks").len(), 1, "the static port 8081 fits once per host");
    assert_eq!(r["tasks"][0]["placement"]["dynamic_host_ports"], json!([40000]));
    assert_eq!(r["failures"][0]["reason"], "RESOURCE:PORTS");
    let host = c.get(&format!("/v1/clusters/prod/hosts/{}", host_id(&reg))).await.expect(200);
    assert_eq!(host["dynamic_port_range"], json!([40000, 40010]));
    s.stop().await;
}

/// Holds, from outside the server, what a RunTask batch must take first
/// (the cluster's placement lock on PostgreSQL, the write lock on SQLite),
/// so that concurrent calls pile up behind it and share the next batch.
enum PlacementBlocker {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl PlacementBlocker {
    async fn hold(s: &TestServer, cluster: &str) -> Self {
        use sqlx::Connection;
        if s.testdb.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&s.testdb.url).await.expect("connect");
            sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.expect("write lock");
            PlacementBlocker::Sqlite(conn)
        } else {
            let mut conn = sqlx::PgConnection::connect(&s.testdb.url).await.expect("connect");
            sqlx::query("BEGIN").execute(&mut conn).await.expect("begin");
            sqlx::query("SELECT id FROM clusters WHERE name = $1 FOR NO KEY UPDATE")
                .bind(cluster)
                .fetch_one(&mut conn)
                .await
                .expect("placement lock");
            PlacementBlocker::Postgres(conn)
        }
    }

    async fn release(self) {
        match self {
            PlacementBlocker::Postgres(mut c) => sqlx::query("ROLLBACK").execute(&mut c).await.map(|_| ()),
            PlacementBlocker::Sqlite(mut c) => sqlx::query("ROLLBACK").execute(&mut c).await.map(|_| ()),
        }
        .expect("release");
    }
}

/// Sends every RunTask body at once while the placement lock is held, and
/// releases it once the server has queued them all: the server's batch
/// counters from before, and each call's answer, in the order sent.
async fn run_behind_the_lock(
    s: &TestServer,
    c: &Client,
    bodies: Vec<Value>,
) -> (berth_control_plane::app::run_task_batches::BatchStats, Vec<berth_tests::Resp>) {
    let before = s.app.run_task_batch_stats();
    let blocker = PlacementBlocker::hold(s, "prod").await;
    let n = bodies.len() as u64;
    let calls: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let c = c.clone();
            tokio::spawn(async move { c.post("/v1/clusters/prod/tasks", body).await })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let queued = s.app.run_task_batch_stats().calls_submitted - before.calls_submitted;
        if queued >= n {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the server queued {queued} of the {n} calls");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    blocker.release().await;
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("join"));
    }
    (before, answers)
}

async fn concurrent_run_tasks_share_a_transaction_and_fail_alone(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    register_app(&c, "web", 512, json!([])).await;
    register_app(&c, "old", 512, json!([])).await;
    register_app(&c, "old", 512, json!([])).await;
    c.post("/v1/task-definitions/old/revisions/1/deregister", json!({})).await.expect(200);
    for _ in 0..5 {
        c.add_host("prod", 16384, 8192, json!({})).await; // room for 16 each: the quota binds first
    }
    s.operator.send(rb_quota(&s, 25)).await.expect(200);

    // 14 calls for 2 tasks each (28, over the quota of 25), an inactive
    // revision and an unknown family, all in flight together (16: as many
    // as an account may have in flight by default).
    let mut bodies = vec![json!({"task_definition": "web", "count": 2}); 14];
    bodies.push(json!({"task_definition": "old:1"}));
    bodies.push(json!({"task_definition": "nope"}));
    let (before, mut answers) = run_behind_the_lock(&s, &c, bodies).await;
    let after = s.app.run_task_batch_stats();
    assert_eq!(after.calls_submitted - before.calls_submitted, 16, "no call had to run again");
    assert!(
        after.batches_begun - before.batches_begun <= 2,
        "the calls queued behind the lock share one transaction: {} batches",
        after.batches_begun - before.batches_begun
    );
    let unknown = answers.pop().expect("unknown").expect_error(404, "ResourceNotFound");
    assert!(unknown["message"].as_str().expect("message").contains("nope"), "{unknown}");
    let inactive = answers.pop().expect("inactive").expect_error(422, "ValidationError");
    assert_eq!(inactive["field"], "task_definition");
    let (mut placed, mut refused) = (0, 0);
    for answer in answers {
        if answer.status.as_u16() == 409 {
            assert_eq!(answer.expect_error(409, "LimitExceeded")["quota"]["quota"], "running_tasks");
            refused += 2;
            continue;
        }
        let r = answer.expect(201);
        placed += r["tasks"].as_array().expect("tasks").len();
        for f in r["failures"].as_array().expect("failures") {
            assert_eq!(f["reason"], "QUOTA:running_tasks");
            refused += 1;
        }
    }
    assert_eq!((placed, refused), (25, 3), "exactly the quota starts; every other task is refused by it");
    // Each call planned against the reservations of the calls before it in
    // the batch: the default spread evens them out with no conflict.
    let hosts = c.get("/v1/clusters/prod/hosts").await.expect(200);
    let used: Vec<u64> =
        hosts["hosts"].as_array().expect("hosts").iter().map(|h| h["used"]["memory"].as_u64().expect("used")).collect();
    assert_eq!(used, [5 * 512; 5], "spread over five hosts, five tasks each");
    let tasks = c.get("/v1/clusters/prod/tasks?limit=100").await.expect(200);
    assert_eq!(tasks["tasks"].as_array().expect("tasks").len(), 25);

    // The same client token three times in one batch: one run, two replays.
    s.operator.send(rb_quota(&s, 100)).await.expect(200);
    let mut bodies = vec![json!({"task_definition": "web", "count": 2, "client_token": "once"}); 3];
    bodies.extend(vec![json!({"task_definition": "web"}); 4]);
    let (before, answers) = run_behind_the_lock(&s, &c, bodies).await;
    let after = s.app.run_task_batch_stats();
    assert_eq!(after.calls_submitted - before.calls_submitted, 7);
    assert!(after.batches_begun - before.batches_begun <= 2);
    let replays = answers[..3].iter().filter(|a| a.header("idempotent-replayed") == Some("true")).count();
    assert_eq!(replays, 2, "one call ran; the others replayed it");
    let bodies: Vec<Value> = answers.into_iter().map(|a| a.expect(201)).collect();
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);
    assert_eq!(bodies[0]["tasks"].as_array().expect("tasks").len(), 2);
    let tasks = c.get("/v1/clusters/prod/tasks?limit=100").await.expect(200);
    assert_eq!(tasks["tasks"].as_array().expect("tasks").len(), 25 + 2 + 4, "nothing ran twice");
    s.stop().await;
}

fn rb_quota(s: &TestServer, limit: i64) -> reqwest::RequestBuilder {
    s.operator.request(reqwest::Method::PUT, "/v1/accounts/acme/quotas/running_tasks").json(&json!({"limit": limit}))
}

on_both_backends!(
    placing_tasks_on_hosts,
    constraints_attributes_drain_and_simulate,
    dynamic_and_static_host_ports,
    concurrent_run_tasks_share_a_transaction_and_fail_alone
);

/// Two control-plane instances on one PostgreSQL, many RunTask calls at once:
/// no host is ever over-committed, and every task is either placed or reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_placing_at_once_never_over_commit() {
    // The servers' logs go to the test's output, shown when it fails.
    let _log = berth_control_plane::telemetry::init(Default::default());
    let s1 = TestServer::start(Backend::Postgres).await;
    let c1 = s1.tenant("acme").await;
    // The second replica: same database, same master key, its own process state.
    let db2 = berth_tests::TestDb::attach(&s1.testdb.url).await;
    let mut config2 = test_config(&s1.testdb.url);
    config2.auth = s1.config.auth.clone();
    let s2 = TestServer::start_with(db2, config2).await;
    let berth_tests::Auth::SigV4 { access_key_id, secret, .. } = c1.auth.clone() else { panic!() };
    let c2 = s2.with_key(&access_key_id, &secret);

    c1.create_cluster("prod").await;
    register_app(&c1, "web", 512, json!([])).await;
    for _ in 0..4 {
        c1.add_host("prod", 16384, 4096, json!({})).await; // 8 tasks each: 32 in all
    }
    let mut handles = Vec::new();
    for i in 0..24 {
        let c = if i % 2 == 0 { c1.clone() } else { c2.clone() };
        handles.push(tokio::spawn(async move {
            c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "count": 1 + (i % 3)})).await
        }));
    }
    let (mut placed, mut failed, mut requested) = (0, 0, 0);
    for (i, h) in handles.into_iter().enumerate() {
        requested += 1 + (i % 3);
        let r = h.await.expect("join").expect(201);
        placed += r["tasks"].as_array().expect("tasks").len();
        failed += r["failures"].as_array().expect("failures").len();
    }
    assert_eq!(placed + failed, requested, "every task is placed or reported");
    assert_eq!(placed, 32, "the cluster fills exactly: requests exceed capacity");
    let hosts = c1.get("/v1/clusters/prod/hosts").await.expect(200);
    let mut total_used = 0;
    for h in hosts["hosts"].as_array().expect("hosts") {
        let used = h["used"]["memory"].as_u64().expect("used");
        assert!(used <= 4096, "host {} over-committed: {used} MiB of 4096", h["id"]);
        total_used += used;
    }
    let tasks = c1.get("/v1/clusters/prod/tasks?limit=100").await.expect(200);
    let on_hosts = tasks["tasks"].as_array().expect("tasks").iter().filter(|t| t["host_id"].is_string()).count();
    assert_eq!(on_hosts, placed);
    assert_eq!(total_used, 512 * placed as u64, "the hosts' used memory is exactly what the tasks hold");
    s2.stop().await;
    s1.stop().await;
}
