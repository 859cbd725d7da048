//! The agent protocol, driven over HTTP by a test double standing in for an
//! agent: assignments with a cursor, acknowledgements, sequenced reports,
//! stopping, reconnecting, heartbeats, and host loss and return.

use std::time::Duration;

use berth_tests::{Auth, Backend, Client, TestDb, TestServer, on_both_backends, test_config};
use serde_json::{Value, json};

/// Speaks the agent protocol with a host credential (a test double, not the agent).
struct FakeAgent {
    client: Client,
    host: String,
}

impl FakeAgent {
    async fn join(tenant: &Client, cluster: &str) -> FakeAgent {
        let reg = tenant.add_host(cluster, 4096, 4096, json!({"os": "linux"})).await;
        let cred = reg["host_credential"].as_str().expect("credential");
        FakeAgent {
            client: tenant.with_auth(Auth::Header(format!("BerthHost {cred}"))),
            host: reg["host_id"].as_str().expect("host").to_owned(),
        }
    }

    async fn poll(&self, after: Option<i64>, wait: u32) -> Value {
        let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
        self.poll_with(&format!("wait={wait}{after}")).await.expect(200)
    }

    /// A poll with the given query parameters, whatever it answers.
    async fn poll_with(&self, query: &str) -> berth_tests::Resp {
        self.client.get(&format!("/v1/agent/hosts/{}/assignments?{query}", self.host)).await
    }

    async fn ack(&self, cursor: i64) {
        let r = self
            .client
            .post(&format!("/v1/agent/hosts/{}/assignments/ack", self.host), json!({"cursor": cursor}))
            .await;
        assert_eq!(r.status.as_u16(), 204, "{}", r.body);
    }

    async fn report(&self, task: &str, body: Value) -> berth_tests::Resp {
        self.client.post(&format!("/v1/agent/hosts/{}/tasks/{task}/status", self.host), body).await
    }

    async fn heartbeat(&self, observed: Value) -> Value {
        self.client
            .post(&format!("/v1/agent/hosts/{}/heartbeat", self.host), json!({"observed": observed}))
            .await
            .expect(200)
    }
}

async fn setup(s: &TestServer) -> Client {
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    c.post(
        "/v1/task-definitions",
        json!({"family": "web", "container_definitions": [{"name": "app", "image": "busybox", "memory": 256,
               "command": ["sleep", "60"], "port_mappings": [{"container_port": 80}]}]}),
    )
    .await
    .expect(201);
    c
}

async fn run_one(c: &Client) -> String {
    let r = c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web"})).await.expect(201);
    r["tasks"][0]["id"].as_str().expect("task id").to_owned()
}

async fn task(c: &Client, id: &str) -> Value {
    c.get(&format!("/v1/clusters/prod/tasks/{id}")).await.expect(200)
}

async fn assignments_reports_and_stopping(backend: Backend) {
    // The servers' logs go to the test's output, shown when it fails.
    let _log = berth_control_plane::telemetry::init(Default::default());
    let s = TestServer::start(backend).await;
    let c = setup(&s).await;
    let agent = FakeAgent::join(&c, "prod").await;
    let id = run_one(&c).await;
    assert_eq!(task(&c, &id).await["last_status"], "PENDING");

    let got = agent.poll(None, 0).await;
    let a = &got["assignments"][0];
    assert_eq!(a["seq"], 1);
    assert_eq!(a["task_id"], id.as_str());
    assert_eq!(a["desired_status"], "RUNNING");
    assert_eq!(a["task"]["containers"][0]["command"], json!(["sleep", "60"]));
    let binding = &a["task"]["port_bindings"][0];
    assert_eq!(binding["container_port"], 80);
    assert!(binding["host_port"].as_u64().is_some_and(|p| (32768..=60999).contains(&p)), "{binding}");
    assert_eq!(got["cursor"], 1);
    agent.ack(1).await;

    // Reports move the task forward; a repeated or older report changes nothing.
    let running = json!({"seq": 1, "last_status": "RUNNING",
                         "containers": [{"name": "app", "image": "busybox", "last_status": "RUNNING"}]});
    assert_eq!(agent.report(&id, running.clone()).await.expect(200)["applied"], true);
    let t = task(&c, &id).await;
    assert_eq!(t["last_status"], "RUNNING");
    assert!(t["running_at"].is_string());
    assert_eq!(t["containers"][0]["last_status"], "RUNNING");
    assert_eq!(agent.report(&id, running).await.expect(200)["applied"], false);
    agent.report(&id, json!({"seq": 2, "last_status": "PENDING"})).await.expect_error(409, "InvalidStateTransition");
    agent.report("not-a-task", json!({"seq": 1, "last_status": "RUNNING"})).await.expect_error(404, "ResourceNotFound");

    // The user stops it: the agent is told, stops the containers, reports back.
    c.post(&format!("/v1/clusters/prod/tasks/{id}/stop"), json!({"reason": "done"})).await.expect(200);
    let got = agent.poll(Some(1), 0).await;
    assert_eq!(got["assignments"][0]["desired_status"], "STOPPED");
    assert_eq!(got["cursor"], 2);
    agent.report(&id, json!({"seq": 3, "last_status": "STOPPING"})).await.expect(200);
    let stopped = json!({"seq": 4, "last_status": "STOPPED",
                         "containers": [{"name": "app", "image": "busybox", "last_status": "STOPPED", "exit_code": 143}]});
    agent.report(&id, stopped).await.expect(200);
    let t = task(&c, &id).await;
    assert_eq!(t["last_status"], "STOPPED");
    assert_eq!(t["stop_code"], "UserInitiated");
    assert_eq!(t["stopped_reason"], "done");
    assert_eq!(t["containers"][0]["exit_code"], 143);
    assert!(t["stopping_at"].is_string() && t["stopped_at"].is_string());
    let host = c.get(&format!("/v1/clusters/prod/hosts/{}", agent.host)).await.expect(200);
    assert_eq!(host["used"], json!({"cpu": 0, "memory": 0}), "a stopped task gives its resources back");

    // A task that never ran stops as TaskFailedToStart.
    let id2 = run_one(&c).await;
    agent
        .report(&id2, json!({"seq": 1, "last_status": "STOPPED", "reason": "CannotPullImage: not found"}))
        .await
        .expect(200);
    let t = task(&c, &id2).await;
    assert_eq!(t["stop_code"], "TaskFailedToStart");
    assert_eq!(t["stopped_reason"], "CannotPullImage: not found");

    // Acknowledged changes are purged; the stream resumes after them as before.
    agent.ack(3).await;
    assert_eq!(s.app.purge_expired().await.expect("purge").assignments, 3);
    let resumed = agent.poll(None, 0).await;
    assert_eq!(resumed["assignments"], json!([]));
    assert_eq!(resumed["cursor"], 3);
    s.stop().await;
}

async fn an_agent_that_reconnects_misses_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = setup(&s).await;
    let agent = FakeAgent::join(&c, "prod").await;
    let first = run_one(&c).await;
    let got = agent.poll(None, 0).await;
    agent.ack(got["cursor"].as_i64().expect("cursor")).await;
    // While the agent is away, two more tasks and a stop arrive.
    let second = run_one(&c).await;
    let third = run_one(&c).await;
    c.post(&format!("/v1/clusters/prod/tasks/{first}/stop"), json!({})).await.expect(200);
    // After a restart it resumes from its acknowledged position.
    let got = agent.poll(None, 0).await;
    let seen: Vec<(String, String)> = got["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .map(|a| (a["task_id"].as_str().expect("id").to_owned(), a["desired_status"].as_str().expect("s").to_owned()))
        .collect();
    assert_eq!(seen, [(second, "RUNNING".to_owned()), (third, "RUNNING".to_owned()), (first, "STOPPED".to_owned())]);
    assert_eq!(got["cursor"], 4);
    agent
        .client
        .post(&format!("/v1/agent/hosts/{}/assignments/ack", agent.host), json!({"cursor": 99}))
        .await
        .expect_error(422, "ValidationError");
    s.stop().await;
}

/// `ack` on a poll acknowledges as `POST .../ack` does: forward only, never
/// past the stream's end (refused, and then nothing changes).
async fn a_poll_can_carry_the_acknowledgement(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = setup(&s).await;
    let agent = FakeAgent::join(&c, "prod").await;
    let first = run_one(&c).await;
    let got = agent.poll(None, 0).await;
    assert_eq!(got["assignments"][0]["task_id"], first.as_str());
    assert_eq!(got["cursor"], 1);
    let acked = agent.poll_with("wait=0&ack=1").await.expect(200);
    assert_eq!(acked, json!({"assignments": [], "cursor": 1}));
    // A restart without a cursor resumes after the acknowledged change.
    assert_eq!(agent.poll(None, 0).await, json!({"assignments": [], "cursor": 1}));

    let second = run_one(&c).await;
    let third = run_one(&c).await;
    let refused = agent.poll_with("wait=0&ack=99").await.expect_error(422, "ValidationError");
    assert_eq!(refused["field"], "ack", "{refused}");
    let pending = agent.poll(None, 0).await;
    let ids: Vec<&str> =
        pending["assignments"].as_array().expect("assignments").iter().filter_map(|a| a["task_id"].as_str()).collect();
    assert_eq!(ids, [second.as_str(), third.as_str()], "a refused ack acknowledges nothing");

    // Acknowledging the first of them answers with the one after it.
    let rest = agent.poll_with("wait=0&ack=2").await.expect(200);
    assert_eq!(rest["assignments"][0]["task_id"], third.as_str());
    assert_eq!(rest["assignments"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["cursor"], 3);
    // An older cursor does not move the acknowledgement back.
    agent.poll_with("wait=0&ack=3").await.expect(200);
    assert_eq!(agent.poll_with("wait=0&ack=1").await.expect(200), json!({"assignments": [], "cursor": 3}));
    s.stop().await;
}

async fn long_poll_answers_when_a_change_arrives(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = setup(&s).await;
    let agent = FakeAgent::join(&c, "prod").await;
    let c2 = c.clone();
    let starter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        run_one(&c2).await
    });
    // Waits (up to 10 s) and answers with the change made meanwhile.
    let got = agent.poll(Some(0), 10).await;
    let id = starter.await.expect("join");
    assert_eq!(got["assignments"][0]["task_id"], id.as_str());
    // With nothing new it answers empty after the wait, with the same cursor.
    let empty = agent.poll(Some(1), 1).await;
    assert_eq!(empty["assignments"], json!([]));
    assert_eq!(empty["cursor"], 1);
    // Another host's credential cannot read this host's stream.
    let other = FakeAgent::join(&c, "prod").await;
    other
        .client
        .get(&format!("/v1/agent/hosts/{}/assignments?wait=0", agent.host))
        .await
        .expect_error(403, "AccessDenied");
    s.stop().await;
}

/// A task placed through one replica reaches an agent long-polling another:
/// the commit's notification wakes it, long before its wait runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_replica_wakes_an_agent_waiting_on_another() {
    let s1 = TestServer::start(Backend::Postgres).await;
    let c1 = setup(&s1).await;
    let db2 = TestDb::attach(&s1.testdb.url).await;
    let mut config2 = test_config(&s1.testdb.url);
    config2.auth = s1.config.auth.clone();
    let s2 = TestServer::start_with(db2, config2).await;
    let agent = FakeAgent::join(&c1, "prod").await;
    // The agent's requests go to the second replica.
    let client = Client::new(&format!("http://{}", s2.addr), &agent.client.http, agent.client.auth.clone());
    let agent = FakeAgent { client, host: agent.host };
    let started = std::time::Instant::now();
    let waiting = tokio::spawn(async move { agent.poll(Some(0), 30).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = run_one(&c1).await;
    let got = waiting.await.expect("join");
    assert_eq!(got["assignments"][0]["task_id"], id.as_str());
    assert!(started.elapsed() < Duration::from_secs(25), "answered by the wake-up, not the 30 s deadline");
    s2.stop().await;
    s1.stop().await;
}

/// Several reports in one request: each is judged alone, and a refused one
/// changes nothing while the others apply.
async fn batched_reports_are_judged_one_by_one(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = setup(&s).await;
    let agent = FakeAgent::join(&c, "prod").await;
    let (a, b) = (run_one(&c).await, run_one(&c).await);
    let unknown = "0190a5b0-0000-7000-8000-000000000000";
    let r = agent
        .client
        .post(
            &format!("/v1/agent/hosts/{}/tasks/status", agent.host),
            json!({"reports": [
                {"task_id": a, "report": {"seq": 1, "last_status": "RUNNING"}},
                {"task_id": unknown, "report": {"seq": 1, "last_status": "RUNNING"}},
                {"task_id": b, "report": {"seq": 1, "last_status": "PROVISIONING"}},
                {"task_id": b, "report": {"seq": 2, "last_status": "RUNNING"}},
            ]}),
        )
        .await
        .expect(200);
    let results = r["results"].as_array().expect("results");
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["applied"]["last_status"], "RUNNING");
    assert_eq!(results[1]["error"], "ResourceNotFound");
    assert_eq!(results[2]["error"], "InvalidStateTransition");
    assert_eq!(results[3]["applied"]["applied"], true);
    assert_eq!(task(&c, &a).await["last_status"], "RUNNING");
    assert_eq!(task(&c, &b).await["last_status"], "RUNNING");
    // Two state changes, two events: the refused reports left none.
    let events = c.get("/v1/events?types=task.state_changed").await.expect(200);
    let running =
        events["events"].as_array().expect("events").iter().filter(|e| e["detail"]["last_status"] == "RUNNING");
    assert_eq!(running.count(), 2);
    s.stop().await;
}

/// A stop gives back exactly the stopped task's share of its host: the
/// other tasks there keep theirs (on SQLite it once zeroed the host).
async fn a_stop_gives_back_only_the_stopped_tasks_resources(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = setup(&s).await;
    let agent = FakeAgent::join(&c, "prod").await;
    let (first, second) = (run_one(&c).await, run_one(&c).await);
    let host = format!("/v1/clusters/prod/hosts/{}", agent.host);
    assert_eq!(c.get(&host).await.expect(200)["used"]["memory"], 512);
    agent.report(&first, json!({"seq": 1, "last_status": "STOPPED"})).await.expect(200);
    let after = c.get(&host).await.expect(200);
    assert_eq!(after["used"]["memory"], 256, "the second task's share stays: {after}");
    assert_eq!(task(&c, &second).await["last_status"], "PENDING");
}

on_both_backends!(
    a_stop_gives_back_only_the_stopped_tasks_resources,
    batched_reports_are_judged_one_by_one,
    assignments_reports_and_stopping,
    an_agent_that_reconnects_misses_nothing,
    a_poll_can_carry_the_acknowledgement,
    long_poll_answers_when_a_change_arrives
);

/// A host that stops heartbeating becomes DISCONNECTED, then LOST; its tasks
/// stop with HostLost; when it comes back it is told to stop them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_loss_and_return() {
    let t = TestDb::new(Backend::Postgres).await;
    let mut config = test_config(&t.url);
    config.agent.heartbeat_interval = Duration::from_secs(1);
    config.agent.lost_timeout = Duration::from_secs(4);
    let s = TestServer::start_with(t, config).await;
    let c = setup(&s).await;
    let agent = FakeAgent::join(&c, "prod").await;
    let id = run_one(&c).await;
    agent.report(&id, json!({"seq": 1, "last_status": "RUNNING"})).await.expect(200);
    let hb = agent.heartbeat(json!([{"task_id": id, "last_status": "RUNNING"}])).await;
    assert_eq!(hb["host_status"], "ACTIVE");
    assert_eq!(hb["stop_tasks"], json!([]));
    assert_eq!(hb["heartbeat_interval_seconds"], 1);

    // The agent goes quiet; the control plane's own sweep notices.
    let mut seen = Vec::new();
    for _ in 0..100 {
        let status = c.get(&format!("/v1/clusters/prod/hosts/{}", agent.host)).await.expect(200)["status"]
            .as_str()
            .expect("s")
            .to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "LOST" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(seen, ["ACTIVE", "DISCONNECTED", "LOST"]);
    let lost = task(&c, &id).await;
    assert_eq!(lost["last_status"], "STOPPED");
    assert_eq!(lost["stop_code"], "HostLost");
    let host = c.get(&format!("/v1/clusters/prod/hosts/{}", agent.host)).await.expect(200);
    assert_eq!(host["used"]["memory"], 0);
    // Nothing is placed on a lost host.
    let r = c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web"})).await.expect(201);
    assert_eq!(r["failures"][0]["reason"], "AGENT");

    // It comes back still running the task: it is told to stop it, and is ACTIVE again.
    let hb = agent.heartbeat(json!([{"task_id": id, "last_status": "RUNNING"}])).await;
    assert_eq!(hb["stop_tasks"], json!([id]));
    assert_eq!(hb["host_status"], "ACTIVE");
    let events = c.get("/v1/events?types=host.disconnected,host.lost").await.expect(200);
    assert_eq!(events["events"].as_array().expect("events").len(), 2);
    s.stop().await;
}

/// Queued tasks are placed when capacity appears (a host joins, a task
/// stops), oldest first, under the rules they were submitted with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_tasks_are_placed_when_capacity_appears() {
    let t = TestDb::new(Backend::Postgres).await;
    let mut config = test_config(&t.url);
    config.agent.heartbeat_interval = Duration::from_secs(1);
    config.agent.lost_timeout = Duration::from_secs(30);
    let s = TestServer::start_with(t, config).await;
    let c = setup(&s).await;
    let queued = |constraints: Value| {
        let c = c.clone();
        async move {
            let r = c
                .post(
                    "/v1/clusters/prod/tasks",
                    json!({"task_definition": "web", "queue": true, "placement_constraints": constraints}),
                )
                .await
                .expect(201);
            r["tasks"][0]["id"].as_str().expect("id").to_owned()
        }
    };
    let oldest = queued(json!([])).await;
    let picky = queued(json!([{"type": "member_of", "expression": "gpu exists"}])).await;
    assert_eq!(task(&c, &oldest).await["last_status"], "PROVISIONING");

    // A host joins (room for exactly one 256 MiB task): the oldest task goes there; the
    // picky one waits for a host with a GPU.
    let token = c.post("/v1/clusters/prod/registration-tokens", json!({"max_uses": 2})).await.expect(201);
    let join = |attrs: Value| {
        let (anon, token) = (s.anonymous(), token["token"].clone());
        async move {
            anon.post(
                "/v1/agent/register",
                json!({"registration_token": token, "hostname": "h", "total": {"cpu": 1024, "memory": 256},
                                                    "attributes": attrs, "agent_version": "t"}),
            )
            .await
            .expect(201)
        }
    };
    let plain = join(json!({})).await;
    let mut placed = Value::Null;
    for _ in 0..50 {
        placed = task(&c, &oldest).await;
        if placed["last_status"] == "PENDING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(placed["last_status"], "PENDING");
    assert_eq!(placed["host_id"], plain["host_id"]);
    assert_eq!(task(&c, &picky).await["last_status"], "PROVISIONING");

    let gpu = join(json!({"gpu": "yes"})).await;
    let mut picked = Value::Null;
    for _ in 0..50 {
        picked = task(&c, &picky).await;
        if picked["last_status"] == "PENDING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(picked["host_id"], gpu["host_id"], "the member_of constraint held while queued");
    assert_eq!(picked["placement"]["constraints"][0]["expression"], "gpu exists");
    s.stop().await;
}

/// Stopped tasks, events and idempotency keys are kept for their retention, then purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_what_outlived_it() {
    let t = TestDb::new(Backend::Sqlite).await;
    let mut config = test_config(&t.url);
    config.agent.task_retention = Duration::from_secs(1);
    config.agent.event_retention = Duration::from_secs(1);
    config.agent.idempotency_retention = Duration::from_secs(1);
    let s = TestServer::start_with(t, config).await;
    let c = setup(&s).await;
    let r = c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "queue": true})).await.expect(201);
    let stopped = r["tasks"][0]["id"].as_str().expect("id").to_owned();
    c.post(&format!("/v1/clusters/prod/tasks/{stopped}/stop"), json!({})).await.expect(200);
    let kept = c.post("/v1/clusters/prod/tasks", json!({"task_definition": "web", "queue": true})).await.expect(201);
    let kept = kept["tasks"][0]["id"].as_str().expect("id").to_owned();
    let keyed = |name: &str| {
        c.request(reqwest::Method::POST, "/v1/clusters").header("idempotency-key", "k").json(&json!({"name": name}))
    };
    c.send(keyed("a")).await.expect(201);
    // Within retention everything is there.
    assert_eq!(s.app.purge_expired().await.expect("purge").tasks, 0);
    task(&c, &stopped).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let purged = s.app.purge_expired().await.expect("purge");
    assert_eq!(purged.tasks, 1, "only the stopped task");
    assert_eq!(purged.assignments, 0, "nothing was acknowledged");
    assert!(purged.events > 0 && purged.idempotency_records == 1, "{purged:?}");
    c.get(&format!("/v1/clusters/prod/tasks/{stopped}")).await.expect_error(404, "ResourceNotFound");
    assert_eq!(task(&c, &kept).await["last_status"], "PROVISIONING", "unstopped tasks are never purged");
    // The key is forgotten: the same key with another body now creates.
    c.send(keyed("b")).await.expect(201);
    s.stop().await;
}
