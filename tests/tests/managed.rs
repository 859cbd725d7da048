//! Managed capacity end to end: the operator's capacity pools, MANAGED tasks
//! and services of several accounts on them, validation, fair admission,
//! quotas and usage. The real HTTP server on real PostgreSQL and SQLite,
//! with simulated agents (the real protocol; a test double that runs no
//! containers). Network isolation between accounts on a shared host, with
//! real containers, is in `containers.rs`.

use std::time::Duration;

use berth_api::hosts::Resources;
use berth_tests::simulated::SimAgent;
use berth_tests::{Backend, Client, TestServer, on_both_backends};
use serde_json::{Value, json};

async fn server(backend: Backend) -> TestServer {
    TestServer::with_quick_host_loss(backend).await
}

/// A pool of the operator's with `n` simulated hosts of `cpu` units and 8 GiB each.
async fn pool(s: &TestServer, name: &str, n: usize, cpu: u32, dir: &std::path::Path) -> Vec<SimAgent> {
    s.operator.post("/v1/capacity-pools", json!({"name": name})).await.expect(201);
    let mut hosts = Vec::new();
    for i in 0..n {
        let token = s
            .operator
            .post(&format!("/v1/capacity-pools/{name}/registration-tokens"), json!({"max_uses": 1}))
            .await
            .expect(201);
        hosts.push(
            SimAgent::join(
                &format!("http://{}", s.addr),
                token["token"].as_str().expect("token"),
                dir,
                &format!("{name}-{i}"),
                Resources { cpu, memory: 8192 },
                &[],
            )
            .await,
        );
    }
    hosts
}

/// A definition asking for 200 CPU units and 300 MiB (a MANAGED task gets 256 and 512).
async fn register_small(c: &Client, family: &str) {
    c.post(
        "/v1/task-definitions",
        json!({"family": family, "cpu": 200, "memory": 300, "container_definitions": [
            {"name": "app", "image": "127.0.0.1:5000/busybox:latest", "command": ["sleep", "3600"]}
        ]}),
    )
    .await
    .expect(201);
}

async fn run(c: &Client, cluster: &str, body: Value) -> Value {
    c.post(&format!("/v1/clusters/{cluster}/tasks"), body).await.expect(201)
}

fn ids(resp: &Value) -> Vec<String> {
    resp["tasks"].as_array().expect("tasks").iter().map(|t| t["id"].as_str().expect("id").to_owned()).collect()
}

async fn wait_status(c: &Client, cluster: &str, task: &str, status: &str) -> Value {
    c.wait_for(&format!("/v1/clusters/{cluster}/tasks/{task}"), status, 20, |t| t["last_status"] == status).await
}

async fn pool_host(s: &TestServer, pool: &str) -> Value {
    s.operator.get(&format!("/v1/capacity-pools/{pool}/hosts")).await.expect(200)["hosts"][0].clone()
}

async fn managed_and_external_tasks_land_apart(backend: Backend) {
    let s = server(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let _pool = pool(&s, "shared", 1, 4096, dir.path()).await;
    let a = s.tenant("acme").await;
    let b = s.tenant("globex").await;
    a.create_cluster("prod").await;
    b.create_cluster("prod").await;
    let own = SimAgent::start(
        &a,
        &format!("http://{}", s.addr),
        "prod",
        dir.path(),
        "acme-own",
        Resources { cpu: 4096, memory: 8192 },
        &[],
    )
    .await;
    register_small(&a, "web").await;
    register_small(&b, "web").await;

    // EXTERNAL tasks go to the cluster's own host, MANAGED ones to the pool.
    let external = ids(&run(&a, "prod", json!({"task_definition": "web", "count": 3})).await);
    for t in &external {
        let task = wait_status(&a, "prod", t, "RUNNING").await;
        assert_eq!(task["host_id"], own.host_id.as_str());
        assert_eq!(task["launch_type"], "EXTERNAL");
    }
    let managed = run(&a, "prod", json!({"task_definition": "web", "count": 3, "launch_type": "MANAGED"})).await;
    assert!(managed["failures"].as_array().expect("failures").is_empty(), "{managed}");
    for t in &ids(&managed) {
        let task = wait_status(&a, "prod", t, "RUNNING").await;
        assert_eq!(task["launch_type"], "MANAGED");
        // Rounded up to the smallest allowed size, the request kept beside it.
        assert_eq!((task["cpu"].as_u64(), task["memory"].as_u64()), (Some(256), Some(512)));
        assert_eq!(task["requested_size"], json!({"cpu": 200, "memory": 300}));
        // The tenant sees no host of the operator's.
        assert!(task.get("host_id").is_none() && task.get("placement").is_none(), "{task}");
    }
    let own_host = a.get(&format!("/v1/clusters/prod/hosts/{}", own.host_id)).await.expect(200);
    assert_eq!(own_host["used"]["cpu"], 600, "{own_host}");
    assert_eq!(pool_host(&s, "shared").await["used"]["cpu"], 768);

    // Another account with no hosts at all runs MANAGED, and not EXTERNAL.
    let b_managed = ids(&run(&b, "prod", json!({"task_definition": "web", "launch_type": "MANAGED"})).await);
    wait_status(&b, "prod", &b_managed[0], "RUNNING").await;
    let b_external = run(&b, "prod", json!({"task_definition": "web"})).await;
    assert!(ids(&b_external).is_empty(), "{b_external}");
    assert_eq!(pool_host(&s, "shared").await["used"]["cpu"], 1024);

    // Accounts stay apart: another's task is a 404, the pool is the operator's.
    b.get(&format!("/v1/clusters/prod/tasks/{}", ids(&managed)[0])).await.expect_error(404, "ResourceNotFound");
    b.get("/v1/capacity-pools").await.expect_error(403, "AccessDenied");
    let hosts = a.get("/v1/clusters/prod/hosts").await.expect(200);
    assert_eq!(hosts["hosts"].as_array().expect("hosts").len(), 1, "only the tenant's own host: {hosts}");
    // The pool is not one of the operator's clusters, and takes no EXTERNAL work.
    let clusters = s.operator.get("/v1/clusters").await.expect(200);
    assert!(clusters["clusters"].as_array().expect("clusters").iter().all(|c| c["name"] != "shared"));
    s.operator
        .post(
            "/v1/task-definitions",
            json!({"family": "op", "container_definitions": [
        {"name": "app", "image": "127.0.0.1:5000/busybox:latest", "memory": 64}]}),
        )
        .await
        .expect(201);
    let refused = s.operator.post("/v1/clusters/shared/tasks", json!({"task_definition": "op"})).await;
    assert!(
        refused.expect_error(422, "ValidationError")["message"].as_str().expect("message").contains("capacity pool")
    );
    let listed = s.operator.get("/v1/capacity-pools").await.expect(200);
    let listed = &listed["capacity_pools"][0];
    assert_eq!((listed["name"].as_str(), listed["running_tasks"].as_i64()), (Some("shared"), Some(4)), "{listed}");
    // Described alone, the pool counts the same tasks: its tenants' MANAGED tasks on its hosts.
    let described = s.operator.get("/v1/capacity-pools/shared").await.expect(200);
    assert_eq!(described["running_tasks"].as_i64(), Some(4), "{described}");

    // Stopping a MANAGED task gives the pool host its resources back.
    a.post(&format!("/v1/clusters/prod/tasks/{}/stop", ids(&managed)[0]), json!({})).await.expect(200);
    wait_status(&a, "prod", &ids(&managed)[0], "STOPPED").await;
    assert_eq!(pool_host(&s, "shared").await["used"]["cpu"], 768);
}

async fn forbidden_settings_are_refused_and_change_nothing(backend: Backend) {
    let s = server(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let _pool = pool(&s, "shared", 1, 4096, dir.path()).await;
    let a = s.tenant("acme").await;
    a.create_cluster("prod").await;
    let base = json!({"name": "app", "image": "127.0.0.1:5000/busybox:latest"});
    let with = |patch: Value| {
        let mut c = base.clone();
        for (k, v) in patch.as_object().expect("object") {
            c[k] = v.clone();
        }
        c
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "hostnet",
            json!({"cpu": 256, "memory": 512, "network_mode": "host", "container_definitions": [base]}),
            "task_definition.network_mode",
        ),
        (
            "priv",
            json!({"cpu": 256, "memory": 512, "container_definitions": [with(json!({"privileged": true}))]}),
            "task_definition.container_definitions[0].privileged",
        ),
        (
            "caps",
            json!({"cpu": 256, "memory": 512, "container_definitions": [
            with(json!({"linux_parameters": {"capabilities": {"add": ["NET_ADMIN"]}}}))]}),
            "task_definition.container_definitions[0].linux_parameters.capabilities.add",
        ),
        (
            "bind",
            json!({"cpu": 256, "memory": 512, "volumes": [{"name": "etc", "host": {"source_path": "/etc"}}],
            "container_definitions": [with(json!({"mount_points": [{"source_volume": "etc", "container_path": "/host"}]}))]}),
            "task_definition.volumes[0].host",
        ),
        (
            "hostport",
            json!({"cpu": 256, "memory": 512, "container_definitions": [
            with(json!({"port_mappings": [{"container_port": 80, "host_port": 8080}]}))]}),
            "task_definition.container_definitions[0].port_mappings[0].host_port",
        ),
        ("nosize", json!({"container_definitions": [with(json!({"memory": 64}))]}), "task_definition"),
        ("huge", json!({"cpu": 8192, "memory": 512, "container_definitions": [base]}), "task_definition"),
    ];
    for (family, def, field) in &cases {
        let mut def = def.clone();
        def["family"] = json!(family);
        a.post("/v1/task-definitions", def).await.expect(201);
        let refused = a
            .post("/v1/clusters/prod/tasks", json!({"task_definition": family, "launch_type": "MANAGED"}))
            .await
            .expect_error(422, "ValidationError");
        assert_eq!(refused["field"], *field, "{family}: {refused}");
        assert!(refused["message"].as_str().expect("message").contains("MANAGED"), "{family}: {refused}");
        // The same refusal for a service.
        let refused = a
            .post(
                "/v1/clusters/prod/services",
                json!({"name": family, "task_definition": family, "launch_type": "MANAGED"}),
            )
            .await
            .expect_error(422, "ValidationError");
        assert_eq!(refused["field"], *field, "{family}: {refused}");
    }
    let refused = a
        .post(
            "/v1/clusters/prod/tasks",
            json!({"task_definition": "nosize", "launch_type": "MANAGED",
                   "placement_strategy": [{"type": "binpack", "field": "memory"}]}),
        )
        .await
        .expect_error(422, "ValidationError");
    assert_eq!(refused["field"], "placement_strategy");
    // Nothing was created: no task, no service, no quota used.
    let tasks = a.get("/v1/clusters/prod/tasks").await.expect(200);
    assert!(tasks["tasks"].as_array().expect("tasks").is_empty(), "{tasks}");
    let services = a.get("/v1/clusters/prod/services").await.expect(200);
    assert!(services["services"].as_array().expect("services").is_empty(), "{services}");
    let quotas = a.get("/v1/quotas").await.expect(200);
    for q in quotas["quotas"].as_array().expect("quotas") {
        if ["running_tasks", "managed_cpu", "managed_memory", "services"].contains(&q["name"].as_str().unwrap_or("")) {
            assert_eq!(q["usage"], 0, "{q}");
        }
    }
    assert_eq!(pool_host(&s, "shared").await["used"]["cpu"], 0);
}

on_both_backends!(managed_and_external_tasks_land_apart, forbidden_settings_are_refused_and_change_nothing);

/// A full pool and two tenants: tenant A's burst of queued tasks does not
/// keep tenant B's one task waiting behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_admits_queued_tasks_fairly_between_accounts() {
    let s = server(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("dir");
    // Room for four tasks of 256 units.
    let _pool = pool(&s, "shared", 1, 1024, dir.path()).await;
    let a = s.tenant("acme").await;
    let b = s.tenant("globex").await;
    for c in [&a, &b] {
        c.create_cluster("prod").await;
        register_small(c, "web").await;
    }
    let first = ids(&run(&a, "prod", json!({"task_definition": "web", "count": 4, "launch_type": "MANAGED"})).await);
    assert_eq!(first.len(), 4);
    // The pool is full: A's burst (30 tasks) and then B's single task wait.
    let mut burst = Vec::new();
    for _ in 0..3 {
        let r =
            run(&a, "prod", json!({"task_definition": "web", "count": 10, "launch_type": "MANAGED", "queue": true}))
                .await;
        burst.extend(ids(&r));
    }
    assert_eq!(burst.len(), 30);
    let single =
        ids(&run(&b, "prod", json!({"task_definition": "web", "launch_type": "MANAGED", "queue": true})).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = a.get(&format!("/v1/clusters/prod/tasks/{}", burst[0])).await.expect(200);
    assert_eq!(waiting["last_status"], "PROVISIONING");

    // One slot frees: B, which runs nothing, gets it before A's older burst.
    a.post(&format!("/v1/clusters/prod/tasks/{}/stop", first[0]), json!({})).await.expect(200);
    wait_status(&b, "prod", &single[0], "RUNNING").await;
    for t in &burst {
        let task = a.get(&format!("/v1/clusters/prod/tasks/{t}")).await.expect(200);
        assert_eq!(task["last_status"], "PROVISIONING", "A's burst waited: {task}");
    }
    // The next slot goes to A again, oldest first.
    a.post(&format!("/v1/clusters/prod/tasks/{}/stop", first[1]), json!({})).await.expect(200);
    wait_status(&a, "prod", &burst[0], "RUNNING").await;
    let next = a.get(&format!("/v1/clusters/prod/tasks/{}", burst[1])).await.expect(200);
    assert_eq!(next["last_status"], "PROVISIONING");
}

/// The account's MANAGED CPU quota holds at admission; EXTERNAL tasks do not count against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_quotas_are_enforced_at_admission() {
    let s = server(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("dir");
    let _pool = pool(&s, "shared", 1, 4096, dir.path()).await;
    let a = s.tenant("acme").await;
    a.create_cluster("prod").await;
    register_small(&a, "web").await;
    let put =
        s.operator.request(reqwest::Method::PUT, "/v1/accounts/acme/quotas/managed_cpu").json(&json!({"limit": 512}));
    s.operator.send(put).await.expect(200);
    let r = run(&a, "prod", json!({"task_definition": "web", "count": 3, "launch_type": "MANAGED"})).await;
    assert_eq!(ids(&r).len(), 2, "{r}");
    assert_eq!(r["failures"][0]["reason"], "QUOTA:managed_cpu", "{r}");
    let refused = a
        .post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "launch_type": "MANAGED"}))
        .await
        .expect_error(409, "LimitExceeded");
    assert_eq!(refused["quota"]["quota"], "managed_cpu", "{refused}");
    let quotas = a.get("/v1/quotas").await.expect(200);
    let managed_cpu = quotas["quotas"].as_array().expect("quotas").iter().find(|q| q["name"] == "managed_cpu").cloned();
    assert_eq!(managed_cpu.expect("listed")["usage"], 512);
}

/// Usage adds up to the tasks' run times, per account, and only the operator sees every account's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_adds_up_to_the_tasks_run_times() {
    let s = server(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("dir");
    let _pool = pool(&s, "shared", 1, 4096, dir.path()).await;
    let a = s.tenant("acme").await;
    let b = s.tenant("globex").await;
    a.create_cluster("prod").await;
    register_small(&a, "web").await;
    let tasks = ids(&run(&a, "prod", json!({"task_definition": "web", "count": 2, "launch_type": "MANAGED"})).await);
    for t in &tasks {
        wait_status(&a, "prod", t, "RUNNING").await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    a.post(&format!("/v1/clusters/prod/tasks/{}/stop", tasks[0]), json!({})).await.expect(200);
    let stopped = wait_status(&a, "prod", &tasks[0], "STOPPED").await;

    let usage = a.get("/v1/usage").await.expect(200);
    let records = usage["records"].as_array().expect("records");
    assert_eq!(records.len(), 2, "{usage}");
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str().expect("time"), &time::format_description::well_known::Rfc3339)
            .expect("rfc3339")
    };
    let done = records.iter().find(|r| r["task_id"] == tasks[0].as_str()).expect("the stopped task's record");
    // The record's run is the task's own, to the second.
    let ran = (parse(&stopped["stopped_at"]) - parse(&stopped["running_at"])).whole_seconds();
    let seconds = done["seconds"].as_i64().expect("seconds");
    assert!((seconds - ran).abs() <= 1 && seconds >= 2, "record {seconds}s, task ran {ran}s: {done}");
    assert_eq!(done["vcpu_seconds"].as_f64(), Some(0.25 * seconds as f64));
    assert_eq!(done["gib_seconds"].as_f64(), Some(0.5 * seconds as f64));
    // The running one counts up to now.
    let running = records.iter().find(|r| r["task_id"] == tasks[1].as_str()).expect("the running task's record");
    assert!(running.get("stopped_at").is_none() && running["seconds"].as_i64() >= Some(2), "{running}");
    let total: f64 = records.iter().map(|r| r["vcpu_seconds"].as_f64().expect("vcpu")).sum();
    assert_eq!(usage["accounts"][0]["vcpu_seconds"].as_f64(), Some(total));

    // A window before the tasks ran holds nothing.
    let early = a.get("/v1/usage?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z").await.expect(200);
    assert!(early["records"].as_array().expect("records").is_empty());
    let bad = a.get("/v1/usage?from=2020-01-02T00:00:00Z&to=2020-01-01T00:00:00Z").await;
    assert_eq!(bad.expect_error(422, "ValidationError")["field"], "from");
    // Another account has none; every account's is the operator's to read.
    let theirs = b.get("/v1/usage").await.expect(200);
    assert!(theirs["records"].as_array().expect("records").is_empty(), "{theirs}");
    b.get("/v1/usage?all_accounts=true").await.expect_error(403, "AccessDenied");
    let all = s.operator.get("/v1/usage?all_accounts=true").await.expect(200);
    assert_eq!(all["records"].as_array().expect("records").len(), 2);
}

/// A MANAGED service keeps its count on the pool and moves off a drained pool host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_service_runs_on_the_pool_and_leaves_a_drained_host() {
    let s = server(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("dir");
    let hosts = pool(&s, "shared", 2, 4096, dir.path()).await;
    let a = s.tenant("acme").await;
    a.create_cluster("prod").await;
    register_small(&a, "web").await;
    a.post(
        "/v1/clusters/prod/services",
        json!({"name": "web", "task_definition": "web", "desired_count": 4, "launch_type": "MANAGED",
               "deployment_configuration": {"min_healthy_time_seconds": 1}}),
    )
    .await
    .expect(201);
    let svc = a.wait_for("/v1/clusters/prod/services/web", "4 running", 30, |v| v["running_count"] == 4).await;
    assert_eq!(svc["launch_type"], "MANAGED");
    // Spread over both pool hosts by default.
    for h in &hosts {
        let host = s.operator.get(&format!("/v1/clusters/shared/hosts/{}", h.host_id)).await.expect(200);
        assert_eq!(host["used"]["cpu"], 512, "{host}");
    }
    s.operator
        .post(&format!("/v1/capacity-pools/shared/hosts/{}/drain", hosts[0].host_id), json!({}))
        .await
        .expect(200);
    let drained = format!("/v1/clusters/shared/hosts/{}", hosts[0].host_id);
    s.operator.wait_for(&drained, "the drained host empty", 30, |h| h["used"]["cpu"] == 0).await;
    a.wait_for("/v1/clusters/prod/services/web", "4 running again", 30, |v| v["running_count"] == 4).await;
    let other = s.operator.get(&format!("/v1/clusters/shared/hosts/{}", hosts[1].host_id)).await.expect(200);
    assert_eq!(other["used"]["cpu"], 1024, "{other}");
}
