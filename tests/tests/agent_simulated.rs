//! The agent's own client and loops, end to end against a real control
//! plane, with the simulated runtime (a test double: no containers run).

use std::sync::Arc;
use std::time::Duration;

use berth_api::hosts::Resources;
use berth_host_agent::{AgentConfig, SimulatedRuntime};
use berth_tests::{Backend, TestServer};
use serde_json::json;
use tokio::sync::watch;

fn config(server: &str, token: &str, dir: &std::path::Path, i: usize) -> AgentConfig {
    AgentConfig {
        server: server.to_owned(),
        registration_token: token.to_owned(),
        state_dir: dir.join(format!("sim-{i}")),
        hostname: format!("sim-{i}"),
        total: Resources { cpu: 2048, memory: 2048 },
        reserved: Resources::default(),
        dynamic_port_range: [32768, 60999],
        attributes: [("zone".to_owned(), format!("z{i}"))].into(),
        runtime: berth_api::auth::RuntimeDetails { name: "simulated".into(), version: "test".into() },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulated_agents_run_and_stop_tasks_and_keep_their_identity() {
    let s = TestServer::start(Backend::Postgres).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    c.register("web").await;
    let token = c.post("/v1/clusters/prod/registration-tokens", json!({"max_uses": 3})).await.expect(201);
    let token = token["token"].as_str().expect("token").to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = format!("http://{}", s.addr);

    let start = |stop: watch::Receiver<bool>| {
        let (server, token, dir) = (server.clone(), token.clone(), dir.path().to_owned());
        async move {
            let mut handles = Vec::new();
            let mut ids = Vec::new();
            for i in 0..3 {
                let identity = berth_host_agent::identify(&config(&server, &token, &dir, i)).await.expect("identify");
                ids.push(identity.host_id.to_string());
                handles.push(tokio::spawn(berth_host_agent::run(
                    identity,
                    Arc::new(SimulatedRuntime::default()),
                    None,
                    stop.clone(),
                )));
            }
            (ids, handles)
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ids, handles) = start(stop_rx).await;

    let run = c
        .post(
            "/v1/clusters/prod/tasks",
            json!({"task_definition": "web", "count": 3,
               "placement_strategy": [{"type": "spread", "field": "zone"}]}),
        )
        .await
        .expect(201);
    let tasks: Vec<String> =
        run["tasks"].as_array().expect("tasks").iter().map(|t| t["id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(tasks.len(), 3);
    let all_running = c
        .wait_for("/v1/clusters/prod/tasks", "three RUNNING tasks", 15, |v| {
            v["tasks"].as_array().is_some_and(|t| t.len() == 3 && t.iter().all(|t| t["last_status"] == "RUNNING"))
        })
        .await;
    let mut hosts: Vec<&str> =
        all_running["tasks"].as_array().expect("tasks").iter().map(|t| t["host_id"].as_str().expect("h")).collect();
    hosts.sort_unstable();
    hosts.dedup();
    assert_eq!(hosts.len(), 3, "spread over the three zones");

    c.post(&format!("/v1/clusters/prod/tasks/{}/stop", tasks[0]), json!({})).await.expect(200);
    let stopped = c
        .wait_for(&format!("/v1/clusters/prod/tasks/{}", tasks[0]), "the task to stop", 15, |t| {
            t["last_status"] == "STOPPED"
        })
        .await;
    assert_eq!(stopped["stop_code"], "UserInitiated");
    assert_eq!(stopped["containers"][0]["exit_code"], 0);

    // Restart the agents: they keep their identities (the token is used up anyway).
    stop_tx.send(true).expect("stop");
    for h in handles {
        h.await.expect("join").expect("agent");
    }
    // What the agents applied they acknowledged: on their next poll, or on
    // the way out for the batch they applied last (the stop).
    let berth_control_plane::store::Pool::Postgres(pool) = s.app.db().pool() else { panic!("a PostgreSQL test") };
    let unacknowledged: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM hosts WHERE assignment_acked <> assignment_seq OR assignment_seq = 0")
            .fetch_one(pool)
            .await
            .expect("count");
    assert_eq!(unacknowledged, 0, "every host acknowledged its whole stream");

    let (stop_tx, stop_rx) = watch::channel(false);
    let (ids_again, handles) = start(stop_rx).await;
    assert_eq!(ids, ids_again);
    let listed = c.get("/v1/clusters/prod/hosts").await.expect(200);
    assert_eq!(listed["hosts"].as_array().expect("hosts").len(), 3, "no new hosts after a restart");
    let attrs = &listed["hosts"][0]["attributes"];
    assert_eq!(attrs["runtime.name"], "simulated", "the runtime is reported at registration: {attrs}");
    assert!(attrs["os"].is_string() && attrs["arch"].is_string() && attrs["agent.version"].is_string());
    // They heartbeat.
    c.wait_for("/v1/clusters/prod/hosts", "heartbeats", 15, |v| {
        v["hosts"]
            .as_array()
            .is_some_and(|h| h.iter().all(|h| h["last_heartbeat_at"].is_string() && h["status"] == "ACTIVE"))
    })
    .await;
    stop_tx.send(true).expect("stop");
    for h in handles {
        h.await.expect("join").expect("agent");
    }
    s.stop().await;
}

/// A server stopping while agents long-poll their assignments answers them
/// at once: its graceful shutdown does not wait out their 20 s polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_server_does_not_wait_for_long_polls() {
    let s = TestServer::start(Backend::Postgres).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    let dir = tempfile::tempdir().expect("dir");
    let agent = berth_tests::simulated::SimAgent::start(
        &c,
        &format!("http://{}", s.addr),
        "prod",
        dir.path(),
        "sim",
        Resources { cpu: 1024, memory: 1024 },
        &[],
    )
    .await;
    c.wait_for("/v1/clusters/prod/hosts", "the host", 15, |v| v["hosts"][0]["last_heartbeat_at"].is_string()).await;
    // Let the agent settle into its long-poll.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    s.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "the server took {took:?} to stop");
    agent.kill().await;
}
