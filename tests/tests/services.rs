//! Services end to end: the real HTTP server and scheduler, simulated agents
//! (the real protocol; a test double that runs no containers) on real
//! PostgreSQL and SQLite. The circuit breaker with real containers is in
//! `containers.rs`; the two-replica takeover with a killed process is below.

use std::time::{Duration, Instant};

use berth_api::hosts::Resources;
use berth_tests::simulated::SimAgent;
use berth_tests::{Backend, Client, TestDb, TestServer, on_both_backends, test_config};
use serde_json::{Value, json};

const SVC: &str = "/v1/clusters/prod/services";

async fn server(backend: Backend) -> TestServer {
    TestServer::with_quick_host_loss(backend).await
}

fn live_tasks(tasks: &Value) -> Vec<&Value> {
    tasks["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["desired_status"] == "RUNNING" && t["last_status"] != "STOPPED")
        .collect()
}

async fn service_tasks(c: &Client, service_id: &str) -> Value {
    c.get(&format!("/v1/clusters/prod/tasks?service_id={service_id}&limit=100")).await.expect(200)
}

async fn agents(c: &Client, s: &TestServer, dir: &std::path::Path, n: usize, memory: u32) -> Vec<SimAgent> {
    let mut out = Vec::new();
    for i in 0..n {
        let zone = format!("z{i}");
        let a = SimAgent::start(
            c,
            &format!("http://{}", s.addr),
            "prod",
            dir,
            &format!("sim-{i}"),
            Resources { cpu: 4096, memory },
            &[("zone", &zone)],
        )
        .await;
        out.push(a);
    }
    out
}

/// A PostgreSQL server, tenant `acme` with cluster `prod` and family `web`,
/// and `n` simulated hosts of 4096 CPU units and `memory` MiB each.
async fn prod_with_hosts(n: usize, memory: u32) -> (TestServer, Client, tempfile::TempDir, Vec<SimAgent>) {
    let s = server(Backend::Postgres).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    c.register("web").await;
    let dir = tempfile::tempdir().expect("dir");
    let fleet = agents(&c, &s, dir.path(), n, memory).await;
    (s, c, dir, fleet)
}

fn steady(v: &Value, n: u64) -> bool {
    v["running_count"] == n
        && v["healthy_count"] == n
        && v["pending_count"] == 0
        && v["deployments"].as_array().is_some_and(|d| d.len() == 1 && d[0]["state"] == "COMPLETED")
}

async fn scaling_up_and_down(backend: Backend) {
    let s = server(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    c.register("web").await;
    let dir = tempfile::tempdir().expect("dir");
    let fleet = agents(&c, &s, dir.path(), 2, 4096).await;

    let created = c
        .post(
            SVC,
            json!({"name": "web", "task_definition": "web", "desired_count": 3,
                   "deployment_configuration": {"min_healthy_time_seconds": 1}}),
        )
        .await
        .expect(201);
    assert_eq!(created["status"], "ACTIVE");
    assert_eq!(created["task_definition"], "web:1");
    assert_eq!(created["deployment_configuration"]["minimum_healthy_percent"], 100, "defaults are shown");
    assert_eq!(created["deployment_configuration"]["maximum_percent"], 200);
    assert_eq!(created["deployments"][0]["state"], "IN_PROGRESS");
    assert_eq!(created["deployments"][0]["trigger"], "created");
    let id = created["id"].as_str().expect("id").to_owned();

    let v = c.wait_for(&format!("{SVC}/web"), "three healthy tasks", 30, |v| steady(v, 3)).await;
    assert!(
        v["events"].as_array().expect("events").iter().any(|e| e["message"] == "service has reached a steady state"),
        "{v:#}"
    );
    let tasks = service_tasks(&c, &id).await;
    let live = live_tasks(&tasks);
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|t| t["started_by"] == "service:web" && t["service_id"] == id.as_str()));

    // Up to 5, then down to 1: the surplus is stopped by the scheduler.
    c.patch(&format!("{SVC}/web"), json!({"desired_count": 5})).await.expect(200);
    c.wait_for(&format!("{SVC}/web"), "five healthy tasks", 30, |v| steady(v, 5)).await;
    c.patch(&format!("{SVC}/web"), json!({"desired_count": 1})).await.expect(200);
    c.wait_for(&format!("{SVC}/web"), "one task", 30, |v| steady(v, 1)).await;
    let tasks = service_tasks(&c, &id).await;
    assert_eq!(live_tasks(&tasks).len(), 1);
    let stopped: Vec<&Value> =
        tasks["tasks"].as_array().expect("tasks").iter().filter(|t| t["desired_status"] == "STOPPED").collect();
    assert_eq!(stopped.len(), 4);
    assert!(stopped.iter().all(|t| t["stop_code"] == "ServiceSchedulerInitiated"), "{stopped:#?}");
    // Scaling is not a deployment.
    let deployments = c.get(&format!("{SVC}/web/deployments")).await.expect(200);
    assert_eq!(deployments["deployments"].as_array().expect("d").len(), 1);

    // Delete: the service drains to zero, then is gone and its name free.
    let deleting = c.delete(&format!("{SVC}/web")).await.expect(200);
    assert_eq!(deleting["status"], "DRAINING");
    c.wait_for(&format!("/v1/clusters/prod/tasks?service_id={id}"), "the last task to stop", 30, |v| {
        live_tasks(v).is_empty()
            && v["tasks"].as_array().is_some_and(|t| t.iter().all(|t| t["last_status"] == "STOPPED"))
    })
    .await;
    c.wait_for(SVC, "the service to go", 30, |v| v["services"] == json!([])).await;
    c.get(&format!("{SVC}/web")).await.expect_error(404, "ResourceNotFound");
    c.get(&format!("{SVC}/{id}")).await.expect(200); // by id, still readable as INACTIVE
    c.post(SVC, json!({"name": "web", "task_definition": "web", "desired_count": 0})).await.expect(201);
    for a in fleet {
        a.kill().await;
    }
    s.stop().await;
}

async fn bad_requests_change_nothing(backend: Backend) {
    let s = server(backend).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    c.register("web").await;
    let bad = |body: Value, field: &'static str| {
        let c = c.clone();
        async move {
            let e = c.post(SVC, body).await.expect_error(422, "ValidationError");
            assert_eq!(e["field"], field, "{e:#}");
        }
    };
    bad(json!({"name": "a b", "task_definition": "web"}), "name").await;
    bad(
        json!({"name": "d", "task_definition": "web", "scheduling_strategy": "DAEMON", "desired_count": 2}),
        "desired_count",
    )
    .await;
    bad(json!({"name": "d", "task_definition": "web", "desired_count": 5000}), "desired_count").await;
    bad(
        json!({"name": "d", "task_definition": "web", "deployment_configuration": {"maximum_percent": 50}}),
        "deployment_configuration.maximum_percent",
    )
    .await;
    bad(
        json!({"name": "d", "task_definition": "web", "placement_constraints": [{"type": "member_of", "expression": "zone =="}]}),
        "placement_constraints[0].expression",
    )
    .await;
    c.post(SVC, json!({"name": "d", "task_definition": "nope"})).await.expect_error(404, "ResourceNotFound");
    assert_eq!(c.get(SVC).await.expect(200)["services"], json!([]), "nothing was created");

    c.post(SVC, json!({"name": "web", "task_definition": "web", "desired_count": 0})).await.expect(201);
    c.post(SVC, json!({"name": "web", "task_definition": "web"})).await.expect_error(409, "ResourceAlreadyExists");
    let e = c
        .patch(&format!("{SVC}/web"), json!({"container_changes": [{"name": "nope", "image": "x"}]}))
        .await
        .expect_error(422, "ValidationError");
    assert_eq!(e["field"], "container_changes[0].name");
    let latest = c.get("/v1/task-definitions/web").await.expect(200);
    assert_eq!(latest["revision"], 1, "a refused change registers nothing");

    // Another account sees nothing of it.
    let other = s.tenant("other").await;
    other.create_cluster("prod").await;
    other.get(&format!("{SVC}/web")).await.expect_error(404, "ResourceNotFound");
    assert_eq!(other.get(SVC).await.expect(200)["services"], json!([]));
    // The cluster cannot go while the service lives.
    c.delete("/v1/clusters/prod").await.expect_error(409, "ResourceInUse");
    s.stop().await;
}

on_both_backends!(scaling_up_and_down, bad_requests_change_nothing);

/// A rolling update observed at every step: never more tasks than
/// `maximum_percent` allows, never fewer healthy than `minimum_healthy_percent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_update_stays_within_its_bounds() {
    let (s, c, _dir, fleet) = prod_with_hosts(3, 4096).await;
    let created = c
        .post(
            SVC,
            json!({"name": "web", "task_definition": "web", "desired_count": 4,
                   "deployment_configuration": {"minimum_healthy_percent": 50, "maximum_percent": 150,
                                                "min_healthy_time_seconds": 2}}),
        )
        .await
        .expect(201);
    let id = created["id"].as_str().expect("id").to_owned();
    c.wait_for(&format!("{SVC}/web"), "four healthy tasks", 30, |v| steady(v, 4)).await;

    // Change the image: a new revision is registered and rolled out.
    let updated = c
        .patch(
            &format!("{SVC}/web"),
            json!({"container_changes": [{"name": "app", "image": "127.0.0.1:5000/busybox:v2", "environment": {"MODE": "new"}}]}),
        )
        .await
        .expect(200);
    assert_eq!(updated["task_definition"], "web:2");
    let primary = updated["deployments"].as_array().expect("d").iter().find(|d| d["primary"] == true).expect("primary");
    assert_eq!(primary["trigger"], "container_changes");
    assert!(
        primary["reason"]
            .as_str()
            .expect("reason")
            .contains("image 127.0.0.1:5000/busybox:latest -> 127.0.0.1:5000/busybox:v2")
    );
    let rev2 = c.get("/v1/task-definitions/web/revisions/2").await.expect(200);
    assert_eq!(rev2["container_definitions"][0]["image"], "127.0.0.1:5000/busybox:v2");
    assert_eq!(rev2["container_definitions"][0]["environment"]["MODE"], "new");

    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut steps, mut saw_mixed) = (0, false);
    loop {
        let v = c.get(&format!("{SVC}/web")).await.expect(200);
        let counted = v["running_count"].as_u64().expect("n") + v["pending_count"].as_u64().expect("n");
        let healthy = v["healthy_count"].as_u64().expect("n");
        assert!(counted <= 6, "more than 150% of 4 tasks at once: {v:#}");
        assert!(healthy >= 2, "fewer than 50% of 4 tasks healthy: {v:#}");
        let tasks = service_tasks(&c, &id).await;
        let live = live_tasks(&tasks);
        assert!(live.len() <= 6, "{} tasks counted", live.len());
        let revisions: std::collections::BTreeSet<&str> =
            live.iter().map(|t| t["task_definition"].as_str().expect("td")).collect();
        saw_mixed |= revisions.len() == 2;
        steps += 1;
        if v["task_definition"] == "web:2" && steady(&v, 4) {
            assert!(live.iter().all(|t| t["task_definition"] == "web:2"));
            break;
        }
        assert!(Instant::now() < deadline, "the deployment did not finish: {v:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_mixed && steps > 5, "the rollout went through intermediate steps ({steps} observed)");
    let history = c.get(&format!("{SVC}/web/deployments")).await.expect(200);
    let states: Vec<&str> =
        history["deployments"].as_array().expect("d").iter().map(|d| d["state"].as_str().expect("s")).collect();
    assert_eq!(states, ["COMPLETED", "COMPLETED"], "newest first");
    let stopped = service_tasks(&c, &id).await;
    let replaced = stopped["tasks"].as_array().expect("t").iter().filter(|t| t["task_definition"] == "web:1").count();
    assert_eq!(replaced, 4, "each old task was replaced once, none started twice");
    for a in fleet {
        a.kill().await;
    }
    s.stop().await;
}

/// A host dies: its tasks stop with HostLost and are replaced on another
/// host within the loss timeout plus 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_lost_with_a_host_are_replaced_elsewhere() {
    let (s, c, _dir, mut fleet) = prod_with_hosts(3, 4096).await;
    let created = c
        .post(
            SVC,
            json!({"name": "web", "task_definition": "web", "desired_count": 2,
                   "placement_constraints": [{"type": "distinct_host"}],
                   "deployment_configuration": {"min_healthy_time_seconds": 1}}),
        )
        .await
        .expect(201);
    let id = created["id"].as_str().expect("id").to_owned();
    c.wait_for(&format!("{SVC}/web"), "two healthy tasks", 30, |v| steady(v, 2)).await;
    let tasks = service_tasks(&c, &id).await;
    let victim_host = live_tasks(&tasks)[0]["host_id"].as_str().expect("host").to_owned();
    let victim_task = live_tasks(&tasks)[0]["id"].as_str().expect("id").to_owned();

    let index = fleet.iter().position(|a| a.host_id == victim_host).expect("the host's agent");
    let killed_at = Instant::now();
    fleet.remove(index).kill().await;
    let lost = c
        .wait_for(&format!("/v1/clusters/prod/tasks/{victim_task}"), "the host to be lost", 30, |t| {
            t["last_status"] == "STOPPED"
        })
        .await;
    assert_eq!(lost["stop_code"], "HostLost");
    let v = c.wait_for(&format!("{SVC}/web"), "a replacement", 30, |v| steady(v, 2)).await;
    let took = killed_at.elapsed();
    assert!(took <= Duration::from_secs(4 + 10), "replaced after {took:?}");
    let tasks = service_tasks(&c, &id).await;
    let live = live_tasks(&tasks);
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|t| t["host_id"] != victim_host.as_str()), "nothing runs on the lost host");
    assert_eq!(v["deployments"][0]["failed_tasks"], 0, "a lost host is not the task's failure");
    for a in fleet {
        a.kill().await;
    }
    s.stop().await;
}

/// Draining a host moves the service's task elsewhere without dropping
/// below the minimum: the replacement is healthy before the old task stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drain_keeps_the_service_at_its_minimum() {
    let (s, c, _dir, fleet) = prod_with_hosts(3, 4096).await;
    let created = c
        .post(
            SVC,
            json!({"name": "web", "task_definition": "web", "desired_count": 2,
                   "placement_constraints": [{"type": "distinct_host"}],
                   "deployment_configuration": {"min_healthy_time_seconds": 2}}),
        )
        .await
        .expect(201);
    let id = created["id"].as_str().expect("id").to_owned();
    c.wait_for(&format!("{SVC}/web"), "two healthy tasks", 30, |v| steady(v, 2)).await;
    let tasks = service_tasks(&c, &id).await;
    let drained_host = live_tasks(&tasks)[0]["host_id"].as_str().expect("host").to_owned();
    let drained_task = live_tasks(&tasks)[0]["id"].as_str().expect("id").to_owned();
    c.post(&format!("/v1/clusters/prod/hosts/{drained_host}/drain"), json!({})).await.expect(200);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = c.get(&format!("{SVC}/web")).await.expect(200);
        assert!(v["healthy_count"].as_u64().expect("n") >= 2, "below the minimum during the drain: {v:#}");
        let t = c.get(&format!("/v1/clusters/prod/tasks/{drained_task}")).await.expect(200);
        if t["last_status"] == "STOPPED" && steady(&v, 2) {
            assert_eq!(t["stop_code"], "HostDrained");
            break;
        }
        assert!(Instant::now() < deadline, "the drain did not finish: {v:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tasks = service_tasks(&c, &id).await;
    assert!(live_tasks(&tasks).iter().all(|t| t["host_id"] != drained_host.as_str()));
    for a in fleet {
        a.kill().await;
    }
    s.stop().await;
}

/// A daemon service runs one task per eligible host, following hosts as
/// they join, drain and die.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daemon_service_follows_its_hosts() {
    let s = server(Backend::Postgres).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    c.register("logs").await;
    let dir = tempfile::tempdir().expect("dir");
    let server_url = format!("http://{}", s.addr);
    let start = |name: &'static str, role: &'static str| {
        let (c, url, dir) = (c.clone(), server_url.clone(), dir.path().to_owned());
        async move {
            SimAgent::start(&c, &url, "prod", &dir, name, Resources { cpu: 4096, memory: 4096 }, &[("role", role)])
                .await
        }
    };
    let a = start("a", "worker").await;
    let b = start("b", "worker").await;
    let _edge = start("edge", "edge").await;
    let created = c
        .post(
            SVC,
            json!({"name": "logs", "task_definition": "logs", "scheduling_strategy": "DAEMON",
                   "placement_constraints": [{"type": "member_of", "expression": "role == worker"}],
                   "deployment_configuration": {"min_healthy_time_seconds": 1}}),
        )
        .await
        .expect(201);
    let id = created["id"].as_str().expect("id").to_owned();
    let hosts_of = |v: &Value| -> Vec<String> {
        let mut h: Vec<String> =
            live_tasks(v).iter().map(|t| t["host_id"].as_str().expect("host").to_owned()).collect();
        h.sort();
        h
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    c.wait_for(&format!("{SVC}/logs"), "one task per worker", 30, |v| v["desired_count"] == 2 && steady(v, 2)).await;
    assert_eq!(hosts_of(&service_tasks(&c, &id).await), sorted(vec![a.host_id.clone(), b.host_id.clone()]));

    // A worker joins.
    let joined = start("c", "worker").await;
    c.wait_for(&format!("{SVC}/logs"), "a task on the new host", 30, |v| v["desired_count"] == 3 && steady(v, 3)).await;
    assert_eq!(
        hosts_of(&service_tasks(&c, &id).await),
        sorted(vec![a.host_id.clone(), b.host_id.clone(), joined.host_id.clone()])
    );

    // One drains: its task stops, nothing replaces it.
    c.post(&format!("/v1/clusters/prod/hosts/{}/drain", b.host_id), json!({})).await.expect(200);
    c.wait_for(&format!("{SVC}/logs"), "the drained host's task to go", 30, |v| {
        v["desired_count"] == 2 && steady(v, 2)
    })
    .await;
    let tasks = service_tasks(&c, &id).await;
    assert_eq!(hosts_of(&tasks), sorted(vec![a.host_id.clone(), joined.host_id.clone()]));
    let drained = tasks["tasks"].as_array().expect("t").iter().find(|t| t["host_id"] == b.host_id.as_str()).expect("t");
    assert_eq!(drained["stop_code"], "HostDrained");

    // One dies: the service follows once it is LOST.
    let gone = joined.host_id.clone();
    joined.kill().await;
    c.wait_for(&format!("{SVC}/logs"), "the lost host to leave", 30, |v| v["desired_count"] == 1 && steady(v, 1)).await;
    assert_eq!(hosts_of(&service_tasks(&c, &id).await), vec![a.host_id.clone()]);
    assert!(hosts_of(&service_tasks(&c, &id).await).iter().all(|h| *h != gone));
    a.kill().await;
    b.kill().await;
    s.stop().await;
}

/// A `berth server` process: the replica the takeover test kills.
struct ServerProcess {
    child: std::process::Child,
    url: String,
}

impl ServerProcess {
    fn start(database_url: &str, master_keys: &str, dir: &std::path::Path, name: &str) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
        let bin = std::env::var("BERTH_TEST_BERTH_BIN").expect("BERTH_TEST_BERTH_BIN: run with cargo xtask test");
        let child = std::process::Command::new(bin)
            .arg("server")
            .args(["--listen", &format!("127.0.0.1:{port}"), "--database-url", database_url])
            .arg("--bootstrap-credentials-file")
            .arg(dir.join("admin-credentials"))
            .env("BERTH_MASTER_KEYS", master_keys)
            .env("BERTH_SERVICE_LEASE_SECONDS", "3")
            .env("BERTH_HEARTBEAT_INTERVAL_SECONDS", "1")
            .env("BERTH_HOST_LOST_TIMEOUT_SECONDS", "10")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start berth server");
        ServerProcess { child, url: format!("http://127.0.0.1:{port}") }
    }

    async fn ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http.get(format!("{}/readyz", self.url)).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("berth server at {} did not become ready", self.url);
    }

    /// SIGKILL: no chance to hand anything over.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn credential(file: &str, key: &str) -> String {
    file.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| panic!("{key} in the bootstrap credentials"))
}

async fn lease_owner(db: &berth_control_plane::store::Db) -> Option<uuid::Uuid> {
    let berth_control_plane::store::Pool::Postgres(pool) = db.pool() else { panic!("PostgreSQL") };
    sqlx::query_scalar::<_, Option<uuid::Uuid>>("SELECT lease_owner FROM services")
        .fetch_one(pool)
        .await
        .expect("lease owner")
}

/// Two `berth server` replicas on one PostgreSQL. The one holding the
/// service's lease is killed with SIGKILL in the middle of a deployment; the
/// other takes the lease over and finishes it, and no task is started twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_survives_the_death_of_its_replica() {
    let testdb = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("dir");
    let master_keys = berth_control_plane::auth::keyring::Keyring::generate_entry("test1");
    let mut first = ServerProcess::start(&testdb.url, &master_keys, dir.path(), "first");
    first.ready().await;
    let creds = std::fs::read_to_string(dir.path().join("admin-credentials")).expect("bootstrap credentials");
    let http = reqwest::Client::new();
    let signed = |url: &str, akid: &str, secret: &str| {
        Client::new(
            url,
            &http,
            berth_tests::Auth::SigV4 { access_key_id: akid.into(), secret: secret.into(), region: "local".into() },
        )
    };
    let operator = signed(&first.url, &credential(&creds, "access_key_id"), &credential(&creds, "secret_access_key"));
    operator.post("/v1/accounts", json!({"name": "acme"})).await.expect(201);
    let key = operator.post("/v1/accounts/acme/access-keys", json!({})).await.expect(201);
    let (akid, secret) = (
        key["access_key"]["access_key_id"].as_str().expect("akid").to_owned(),
        key["secret_access_key"].as_str().expect("secret").to_owned(),
    );
    let c1 = signed(&first.url, &akid, &secret);
    c1.create_cluster("prod").await;
    c1.register("web").await;
    c1.post(
        SVC,
        json!({"name": "web", "task_definition": "web", "desired_count": 4,
               "deployment_configuration": {"minimum_healthy_percent": 50, "maximum_percent": 150,
                                            "min_healthy_time_seconds": 3}}),
    )
    .await
    .expect(201);
    // The only replica claims the service.
    let mut holder = None;
    for _ in 0..50 {
        holder = lease_owner(&testdb.db).await;
        if holder.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let holder = holder.expect("the first replica took the service's lease");

    // The second replica, which the agents and the test talk to from now on.
    let second = ServerProcess::start(&testdb.url, &master_keys, dir.path(), "second");
    second.ready().await;
    let c2 = signed(&second.url, &akid, &secret);
    let mut fleet = Vec::new();
    for i in 0..3 {
        let name = format!("sim-{i}");
        fleet.push(
            SimAgent::start(&c2, &second.url, "prod", dir.path(), &name, Resources { cpu: 4096, memory: 4096 }, &[])
                .await,
        );
    }
    c2.wait_for(&format!("{SVC}/web"), "four healthy tasks", 60, |v| steady(v, 4)).await;
    assert_eq!(lease_owner(&testdb.db).await, Some(holder), "the first replica still holds the service");

    // Deploy, and kill the lease holder once the rollout is under way.
    c2.patch(&format!("{SVC}/web"), json!({"container_changes": [{"name": "app", "environment": {"V": "2"}}]}))
        .await
        .expect(200);
    let service = c2.get(&format!("{SVC}/web")).await.expect(200);
    let id = service["id"].as_str().expect("id").to_owned();
    c2.wait_for(&format!("/v1/clusters/prod/tasks?service_id={id}&limit=100"), "the rollout to start", 30, |v| {
        live_tasks(v).iter().any(|t| t["task_definition"] == "web:2")
    })
    .await;
    let before = c2.get(&format!("{SVC}/web")).await.expect(200);
    assert_eq!(before["deployments"].as_array().expect("d").len(), 2, "mid-deployment: {before:#}");
    first.kill();

    let done = c2
        .wait_for(&format!("{SVC}/web"), "the other replica to finish the deployment", 60, |v| {
            v["task_definition"] == "web:2" && steady(v, 4)
        })
        .await;
    assert_eq!(done["deployments"][0]["task_definition"], "web:2");
    let taker = lease_owner(&testdb.db).await;
    assert!(taker.is_some() && taker != Some(holder), "the second replica took the service over");
    let tasks = service_tasks(&c2, &id).await;
    let all = tasks["tasks"].as_array().expect("tasks");
    let of = |rev: &str| all.iter().filter(|t| t["task_definition"] == rev).count();
    assert_eq!(of("web:1"), 4, "no old task was started twice: {tasks:#}");
    assert_eq!(of("web:2"), 4, "no new task was started twice: {tasks:#}");
    let history = c2.get(&format!("{SVC}/web/deployments")).await.expect(200);
    let states: Vec<&str> =
        history["deployments"].as_array().expect("d").iter().map(|d| d["state"].as_str().expect("s")).collect();
    assert_eq!(states, ["COMPLETED", "COMPLETED"]);
    for a in fleet {
        a.kill().await;
    }
}

/// When tasks do not fit, the service says why in plain words, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_explains_why_it_is_short_of_its_count() {
    let (s, c, _dir, fleet) = prod_with_hosts(2, 256).await;
    c.post(SVC, json!({"name": "web", "task_definition": "web", "desired_count": 10})).await.expect(201);
    let v = c
        .wait_for(&format!("{SVC}/web"), "the explanation", 30, |v| {
            v["running_count"] == 8
                && v["events"].as_array().is_some_and(|e| {
                    e.iter().any(|e| e["message"] == "unable to place 2 task(s): 2 hosts lacked memory")
                })
        })
        .await;
    assert_eq!(v["deployments"][0]["state"], "IN_PROGRESS", "short of its count, the deployment is not done");
    // Said once, not every round.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = c.get(&format!("{SVC}/web")).await.expect(200);
    let said = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["message"].as_str().unwrap_or("").starts_with("unable to place"))
        .count();
    assert_eq!(said, 1, "{v:#}");
    let log = c.get("/v1/events?types=service.event").await.expect(200);
    assert!(
        log["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["detail"]["message"].as_str().is_some_and(|m| m.contains("lacked memory"))),
        "the event log has it too: {log:#}"
    );
    for a in fleet {
        a.kill().await;
    }
    s.stop().await;
}

/// Services spread over the replicas: each holds an even share, and when
/// one leaves, another takes its services over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_the_services_and_take_over_when_one_leaves() {
    let s1 = server(Backend::Postgres).await;
    let c = s1.tenant("acme").await;
    c.create_cluster("prod").await;
    c.register("web").await;
    let db2 = TestDb::attach(&s1.testdb.url).await;
    let mut config2 = test_config(&s1.testdb.url);
    config2.auth = s1.config.auth.clone();
    let s2 = TestServer::start_with(db2, config2).await;
    for i in 0..4 {
        c.post(SVC, json!({"name": format!("s{i}"), "task_definition": "web", "desired_count": 0})).await.expect(201);
    }
    let owners = |db: berth_control_plane::store::Db| async move {
        let berth_control_plane::store::Pool::Postgres(pool) = db.pool() else { panic!("PostgreSQL") };
        let rows: Vec<(Option<uuid::Uuid>, i64)> =
            sqlx::query_as("SELECT lease_owner, COUNT(*) FROM services GROUP BY lease_owner ORDER BY 2")
                .fetch_all(pool)
                .await
                .expect("owners");
        rows
    };
    let mut split = Vec::new();
    for _ in 0..100 {
        split = owners(s1.testdb.db.clone()).await;
        if split.len() == 2 && split.iter().all(|(o, n)| o.is_some() && *n == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(split.len() == 2 && split.iter().all(|(o, n)| o.is_some() && *n == 2), "two services each: {split:?}");
    let second = s2.app.replica_id();
    s2.stop().await;
    let mut after = Vec::new();
    for _ in 0..100 {
        after = owners(s1.testdb.db.clone()).await;
        if after.len() == 1 && after[0].1 == 4 && after[0].0.is_some_and(|o| o != second) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        after.len() == 1 && after[0].1 == 4 && after[0].0 != Some(second),
        "the first replica holds all four: {after:?}"
    );
    s1.stop().await;
}
