//! Tasks as real containers: a real host agent on the private containerd and
//! registry that `cargo xtask test` starts, with a test image built from
//! busybox-static. What a user checks: the task RUNNING in containerd, its
//! logs, exit codes, limits, ports, health, stop behaviour and recovery.

use std::time::Duration;

use berth_tests::containers::{ClusterWithAgent, ContainerEnv, logs, register, run_one, stop_task, wait_task};
use berth_tests::{Backend, TestServer};
use serde_json::json;

fn status(t: &serde_json::Value) -> &str {
    t["last_status"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_runs_in_containerd_serves_its_logs_and_stops_cleanly() {
    let h = ClusterWithAgent::start().await;
    let (env, s, c) = (&h.env, &h.server, &h.tenant);
    register(
        c,
        env,
        "web",
        json!({"container_definitions": [{"name": "app", "memory": 64, "command": ["sh", "-c",
            "echo started; echo to-stderr >&2; trap 'echo bye; exit 0' TERM; while true; do sleep 1; done"]}]}),
    )
    .await;
    let task = run_one(c, "prod", "web").await;
    let running = wait_task(c, "prod", &task, 60, "RUNNING", |t| status(t) == "RUNNING").await;
    assert_eq!(running["host_id"], h.agent.host_id.as_str());
    assert_eq!(running["containers"][0]["last_status"], "RUNNING");

    // containerd agrees: the container runs, in the agent's namespace.
    let (ctr_status, pid) = env.container_status(&task, 0).await.expect("containerd knows the container");
    assert_eq!(ctr_status, "RUNNING");
    assert!(pid > 0);

    // Both streams reach the logs, through the control plane.
    let mut text = String::new();
    for _ in 0..50 {
        text = logs(c, "prod", &task, "").await;
        if text.contains("to-stderr") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains("started\n") && text.contains("to-stderr\n"), "logs: {text:?}");
    let stamped = logs(c, "prod", &task, "?timestamps=true&tail=1").await;
    assert_eq!(stamped.lines().count(), 1, "tail=1 gives one line: {stamped:?}");
    assert!(stamped.starts_with("20"), "timestamps come first: {stamped:?}");
    // Another tenant sees neither the task nor its logs.
    let other = s.tenant("other").await;
    other.create_cluster("prod").await;
    other.get(&format!("/v1/clusters/prod/tasks/{task}/logs")).await.expect_error(404, "ResourceNotFound");
    c.get(&format!("/v1/clusters/prod/tasks/{task}/logs?tail=0")).await.expect_error(422, "ValidationError");

    // A follower sees what is written after it started, and its stream ends with the task.
    let follower = {
        let (c, path) = (c.clone(), format!("/v1/clusters/prod/tasks/{task}/logs?follow=true&tail=1"));
        tokio::spawn(async move { c.get(&path).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = stop_task(c, "prod", &task).await;
    let followed = tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .expect("the followed stream ends once the task has stopped")
        .expect("follower task");
    assert_eq!(followed.status.as_u16(), 200);
    let followed = followed.body.as_str().unwrap_or_default().to_owned();
    // The one line tail=1 asked for, then only what came after: the goodbye.
    assert!(followed.ends_with("bye\n") && followed.lines().count() == 2, "followed logs: {followed:?}");
    assert_eq!(stopped["stop_code"], "UserInitiated");
    assert_eq!(stopped["containers"][0]["exit_code"], 0, "the TERM trap ran: {stopped}");
    assert!(env.container_status(&task, 0).await.is_none(), "the container was removed from containerd");
    // The logs outlive the task.
    let after = logs(c, "prod", &task, "").await;
    assert!(after.contains("bye\n"), "logs after the stop: {after:?}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exit_codes_out_of_memory_and_bad_images_reach_the_api() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    register(
        c,
        env,
        "exits",
        json!({"container_definitions": [
        {"name": "app", "memory": 32, "command": ["sh", "-c", "echo done; exit 3"]}]}),
    )
    .await;
    register(
        c,
        env,
        "hog",
        json!({"container_definitions": [
        {"name": "app", "memory": 16, "command": ["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"]}]}),
    )
    .await;
    let missing = format!("{}/berth/does-not-exist:1", env.registry);
    register(
        c,
        env,
        "missing",
        json!({"container_definitions": [
        {"name": "app", "image": missing, "memory": 16, "command": ["true"]}]}),
    )
    .await;

    let exits = run_one(c, "prod", "exits").await;
    let hog = run_one(c, "prod", "hog").await;
    let bad = run_one(c, "prod", "missing").await;

    let t = wait_task(c, "prod", &exits, 60, "the exit", |t| status(t) == "STOPPED").await;
    assert_eq!(t["stop_code"], "EssentialContainerExited", "{t}");
    assert_eq!(t["containers"][0]["exit_code"], 3);

    let t = wait_task(c, "prod", &hog, 60, "the OOM kill", |t| status(t) == "STOPPED").await;
    assert_eq!(t["containers"][0]["exit_code"], 137, "{t}");
    assert_eq!(t["containers"][0]["reason"], "OutOfMemory", "{t}");

    let t = wait_task(c, "prod", &bad, 60, "the failed pull", |t| status(t) == "STOPPED").await;
    assert_eq!(t["stop_code"], "TaskFailedToStart");
    let reason = t["stopped_reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("CannotPullImage:") && reason.contains("does-not-exist"), "{t}");
    assert!(reason.contains("MANIFEST_UNKNOWN") || reason.contains("NAME_UNKNOWN"), "the registry's words: {reason}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dynamic_host_port_answers_on_loopback() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    register(
        c,
        env,
        "httpd",
        json!({"network_mode": "bridge", "container_definitions": [
        {"name": "web", "memory": 32, "command": ["httpd", "-f", "-p", "80", "-h", "/www"],
         "port_mappings": [{"container_port": 80}]}]}),
    )
    .await;
    let task = run_one(c, "prod", "httpd").await;
    let t = wait_task(c, "prod", &task, 60, "RUNNING", |t| status(t) == "RUNNING").await;
    let binding = &t["containers"][0]["network_bindings"][0];
    assert_eq!(binding["container_port"], 80);
    let port = binding["host_port"].as_u64().expect("a host port");
    assert!((40000..=40999).contains(&port), "the port comes from the host's dynamic range: {t}");
    let http = reqwest::Client::new();
    let mut body = String::new();
    for _ in 0..50 {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/index.html")).send().await
            && let Ok(text) = r.text().await
        {
            body = text;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body, "hello from berth\n");
    stop_task(c, "prod", &task).await;
    assert!(
        http.get(format!("http://127.0.0.1:{port}/index.html")).timeout(Duration::from_secs(2)).send().await.is_err(),
        "nothing answers on the port after the stop"
    );
    let nat = std::process::Command::new("iptables-save").args(["-t", "nat"]).output().expect("iptables-save");
    let id = task.replace('-', "");
    assert!(!String::from_utf8_lossy(&nat.stdout).contains(&id), "the task's port-mapping rules were removed");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_checks_and_essential_containers_drive_the_task() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    // The app is healthy while /tmp/healthy exists; it removes it after a while.
    // The sidecar (not essential) ends on its own; the task runs on.
    register(c, env, "checked", json!({"container_definitions": [
        {"name": "app", "memory": 32, "command": ["sh", "-c", "touch /tmp/healthy; sleep 8; rm /tmp/healthy; sleep 3600"],
         "health_check": {"command": ["CMD-SHELL", "test -f /tmp/healthy"], "interval": 5, "timeout": 2, "retries": 1}},
        {"name": "sidecar", "memory": 16, "essential": false, "command": ["sh", "-c", "exit 0"]}]}))
    .await;
    let task = run_one(c, "prod", "checked").await;
    let t = wait_task(c, "prod", &task, 60, "HEALTHY", |t| t["health_status"] == "HEALTHY").await;
    assert_eq!(status(&t), "RUNNING");
    let t =
        wait_task(c, "prod", &task, 60, "the sidecar's exit", |t| t["containers"][1]["last_status"] == "STOPPED").await;
    assert_eq!(t["containers"][1]["exit_code"], 0);
    assert_eq!(status(&t), "RUNNING", "a non-essential container's exit leaves the task running");
    let t = wait_task(c, "prod", &task, 60, "UNHEALTHY", |t| t["health_status"] == "UNHEALTHY").await;
    assert_eq!(t["containers"][0]["health_status"], "UNHEALTHY");
    stop_task(c, "prod", &task).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_container_that_ignores_the_stop_signal_is_killed_after_its_stop_timeout() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    // As PID 1, sleep has no default action for SIGTERM: only SIGKILL ends it.
    register(
        c,
        env,
        "stubborn",
        json!({"container_definitions": [
        {"name": "app", "memory": 16, "stop_timeout": 2, "command": ["sleep", "3600"]}]}),
    )
    .await;
    let task = run_one(c, "prod", "stubborn").await;
    wait_task(c, "prod", &task, 60, "RUNNING", |t| status(t) == "RUNNING").await;
    let asked = std::time::Instant::now();
    let t = stop_task(c, "prod", &task).await;
    assert_eq!(t["containers"][0]["exit_code"], 137, "SIGKILL ended it: {t}");
    assert!(asked.elapsed() >= Duration::from_secs(2), "the stop timeout was waited out");
    h.finish().await;
}

/// `berth agent` as its own process, so it can be killed for real.
struct AgentProcess {
    child: std::process::Child,
}

impl AgentProcess {
    fn start(env: &ContainerEnv, server: &str, token: &str, state_dir: &std::path::Path) -> AgentProcess {
        Self::start_in(env, server, token, state_dir, "berth", None)
    }

    /// In a containerd namespace of its own, optionally armed to crash at a failpoint.
    fn start_in(
        env: &ContainerEnv,
        server: &str,
        token: &str,
        state_dir: &std::path::Path,
        namespace: &str,
        failpoint: Option<&str>,
    ) -> AgentProcess {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(state_dir.join("agent.log")).expect("log");
        let mut cmd = std::process::Command::new(&env.berth_bin);
        if let Some(f) = failpoint {
            cmd.env(berth_host_agent::failpoint::ENV, f);
        }
        let child = cmd
            .args(["agent", "--server", server, "--cluster", "prod", "--registration-token", token])
            .args(["--containerd-namespace", namespace])
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--containerd-socket")
            .arg(&env.socket)
            .args(["--logs-listen", "127.0.0.1:0", "--cpu", "2048", "--memory", "4096", "--port-range", "41000-41999"])
            .args([
                "--bridge",
                berth_tests::containers::TEST_BRIDGE,
                "--bridge-subnet",
                berth_tests::containers::TEST_SUBNET,
            ])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start berth agent");
        AgentProcess { child }
    }

    fn kill(mut self) {
        // SIGKILL: no chance to tidy up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_killed_and_restarted_re_adopts_its_containers() {
    let env = ContainerEnv::from_env();
    let s = TestServer::start(Backend::Postgres).await;
    let c = s.tenant("acme").await;
    c.create_cluster("prod").await;
    let token = c.post("/v1/clusters/prod/registration-tokens", json!({"max_uses": 1})).await.expect(201);
    let token = token["token"].as_str().expect("token").to_owned();
    let state = tempfile::tempdir().expect("state dir");
    let server = format!("http://{}", s.addr);
    let agent = AgentProcess::start(&env, &server, &token, state.path());
    register(
        &c,
        &env,
        "long",
        json!({"container_definitions": [{"name": "app", "memory": 16,
        "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}]}),
    )
    .await;
    let mut task = None;
    for _ in 0..100 {
        let run = c.post("/v1/clusters/prod/tasks", json!({"task_definition": "long"})).await.expect(201);
        if let Some(id) = run["tasks"][0]["id"].as_str() {
            task = Some(id.to_owned());
            break;
        }
        // The agent has not registered yet.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let task = task.expect("the agent's host took the task");
    wait_task(&c, "prod", &task, 60, "RUNNING", |t| status(t) == "RUNNING").await;
    let (_, pid_before) = env.container_status(&task, 0).await.expect("the container runs");

    agent.kill();
    assert_eq!(
        env.container_status(&task, 0).await.map(|s| s.0).as_deref(),
        Some("RUNNING"),
        "containers outlive the agent"
    );
    let agent = AgentProcess::start(&env, &server, &token, state.path());
    // The restarted agent keeps its identity (the token was single-use) and heartbeats again.
    let hosts = c.get("/v1/clusters/prod/hosts").await.expect(200);
    assert_eq!(hosts["hosts"].as_array().map(Vec::len), Some(1), "{hosts}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let agent_log = || std::fs::read_to_string(state.path().join("agent.log")).unwrap_or_default();
    let (status_after, pid_after) = env
        .container_status(&task, 0)
        .await
        .unwrap_or_else(|| panic!("the container is gone; agent log:\n{}", agent_log()));
    assert_eq!((status_after.as_str(), pid_after), ("RUNNING", pid_before), "re-adopted, not started again");
    let t = c.get(&format!("/v1/clusters/prod/tasks/{task}")).await.expect(200);
    assert_eq!(status(&t), "RUNNING");

    // The re-adopted container stops as any other, and nothing is left behind.
    let t = stop_task(&c, "prod", &task).await;
    assert_eq!(t["containers"][0]["exit_code"], 0, "{t}");
    assert!(env.container_status(&task, 0).await.is_none());
    assert!(!state.path().join("tasks").join(format!("{task}.json")).exists(), "the task record is gone");
    agent.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_policy_reruns_a_failing_sidecar_up_to_its_limit() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    register(
        c,
        env,
        "restarts",
        json!({"container_definitions": [
        {"name": "app", "memory": 16, "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]},
        {"name": "flaky", "memory": 16, "essential": false, "command": ["sh", "-c", "echo attempt; exit 2"],
         "restart_policy": {"condition": "ON_FAILURE", "max_restarts": 2}}]}),
    )
    .await;
    let task = run_one(c, "prod", "restarts").await;
    // Restarts after 1 s and 2 s, then it stays down.
    let t = wait_task(c, "prod", &task, 60, "two restarts", |t| {
        t["containers"][1]["restart_count"] == 2 && t["containers"][1]["last_status"] == "STOPPED"
    })
    .await;
    assert_eq!(t["containers"][1]["exit_code"], 2);
    assert_eq!(t["last_status"], "RUNNING", "the essential container runs on: {t}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let t = c.get(&format!("/v1/clusters/prod/tasks/{task}")).await.expect(200);
    assert_eq!(t["containers"][1]["restart_count"], 2, "no third restart: {t}");
    let text = logs(c, "prod", &task, "?container=flaky").await;
    assert_eq!(text.matches("attempt").count(), 3, "three runs, one log: {text:?}");
    stop_task(c, "prod", &task).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_private_registry_pulls_with_the_accounts_stored_credentials() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    let image = format!("{}/berth/busybox:1", env.private_registry);
    let long_running = json!(["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]);

    // Without credentials, the registry's refusal is the task's reason.
    register(
        c,
        env,
        "anonymous",
        json!({"container_definitions": [
        {"name": "app", "image": image, "memory": 16, "command": long_running}]}),
    )
    .await;
    let task = run_one(c, "prod", "anonymous").await;
    let t = wait_task(c, "prod", &task, 60, "the refused pull", |t| status(t) == "STOPPED").await;
    let reason = t["stopped_reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("CannotPullImage:") && reason.contains("401 Unauthorized"), "{t}");

    // A definition naming a credential the account lacks is refused, and nothing is created.
    let named = json!({"family": "private", "container_definitions": [
        {"name": "app", "image": image, "memory": 16, "command": long_running, "repository_credentials": "private"}]});
    let r = c.post("/v1/task-definitions", named.clone()).await.expect_error(422, "ValidationError");
    assert_eq!(r["field"], "container_definitions[0].repository_credentials");
    c.get("/v1/task-definitions/private").await.expect_error(404, "ResourceNotFound");

    let created = c
        .post(
            "/v1/registry-credentials",
            json!({"name": "private", "registry": env.private_registry, "username": env.private_user,
                   "password": env.private_password}),
        )
        .await
        .expect(201);
    let listed = c.get("/v1/registry-credentials").await.expect(200);
    for body in [&created, &listed] {
        assert!(!body.to_string().contains(&env.private_password), "the password never comes back: {body}");
    }
    assert_eq!(listed["registry_credentials"][0]["username"], env.private_user.as_str());
    // Stored encrypted, not in the clear.
    let stored: String = sqlx::query_scalar("SELECT password_ciphertext FROM registry_credentials")
        .fetch_one(match h.server.testdb.db.pool() {
            berth_control_plane::store::Pool::Postgres(p) => p,
            berth_control_plane::store::Pool::Sqlite(_) => panic!("the container tests run on PostgreSQL"),
        })
        .await
        .expect("the stored credential");
    assert!(!stored.contains(&env.private_password));

    c.post("/v1/task-definitions", named).await.expect(201);
    let task = run_one(c, "prod", "private").await;
    wait_task(c, "prod", &task, 60, "RUNNING", |t| status(t) == "RUNNING").await;
    stop_task(c, "prod", &task).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tasks_cpu_and_memory_use_shows_on_the_task() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    // About 30 MiB held in a shell variable, and one core kept busy.
    register(
        c,
        env,
        "busy",
        json!({"container_definitions": [{"name": "app", "memory": 128, "command": ["sh", "-c",
        "x=$(head -c 30000000 /dev/zero | tr '\\0' a); trap 'exit 0' TERM; while true; do :; done"]}]}),
    )
    .await;
    let task = run_one(c, "prod", "busy").await;
    // The first heartbeat after RUNNING sets the CPU baseline; the next measures the rate.
    let t = wait_task(c, "prod", &task, 60, "measured use", |t| {
        t["usage"]["cpu"].as_u64().is_some_and(|cpu| cpu > 256)
            && t["usage"]["memory"].as_u64().is_some_and(|m| m >= 25)
    })
    .await;
    let usage = &t["usage"];
    assert!(usage["cpu"].as_u64().is_some_and(|cpu| cpu <= 2 * 1024 + 128), "at most the machine's two cores: {usage}");
    assert!(usage["memory"].as_u64().is_some_and(|m| m <= 128), "within the limit: {usage}");
    assert!(usage["measured_at"].as_str().is_some());
    stop_task(c, "prod", &task).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn containers_start_in_dependency_order() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    // "web" waits for "migrate" to succeed; "sidecar" only for "web" to start.
    register(c, env, "ordered", json!({"container_definitions": [
        {"name": "sidecar", "memory": 16, "essential": false, "stop_timeout": 1, "command": ["sh", "-c", "echo sidecar-up; sleep 3600"],
         "depends_on": [{"container_name": "web", "condition": "START"}]},
        {"name": "web", "memory": 16, "command": ["sh", "-c", "echo web-up; trap 'exit 0' TERM; while true; do sleep 1; done"],
         "depends_on": [{"container_name": "migrate", "condition": "SUCCESS"}]},
        {"name": "migrate", "memory": 16, "essential": false, "command": ["sh", "-c", "sleep 1; echo migrated"]}]}))
    .await;
    let task = run_one(c, "prod", "ordered").await;
    let t = wait_task(c, "prod", &task, 60, "RUNNING", |t| status(t) == "RUNNING").await;
    assert_eq!(t["containers"][2]["exit_code"], 0, "migrate ran to completion first: {t}");
    let mut text = String::new();
    for _ in 0..50 {
        text = logs(c, "prod", &task, "").await;
        if text.contains("sidecar-up") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} missing from {text:?}"));
    assert!(at("[migrate] migrated") < at("[web] web-up"), "web waited for migrate: {text:?}");
    assert!(at("[web] web-up") < at("[sidecar] sidecar-up"), "the sidecar started after web: {text:?}");
    stop_task(c, "prod", &task).await;

    // A SUCCESS dependency that fails can never be met: the task fails and says why.
    register(
        c,
        env,
        "blocked",
        json!({"container_definitions": [
        {"name": "web", "memory": 16, "stop_timeout": 1, "command": ["sleep", "3600"],
         "depends_on": [{"container_name": "migrate", "condition": "SUCCESS"}]},
        {"name": "migrate", "memory": 16, "essential": false, "command": ["sh", "-c", "exit 4"]}]}),
    )
    .await;
    let task = run_one(c, "prod", "blocked").await;
    let t = wait_task(c, "prod", &task, 60, "STOPPED", |t| status(t) == "STOPPED").await;
    assert_eq!(t["stop_code"], "TaskFailedToStart");
    assert!(t["stopped_reason"].as_str().is_some_and(|r| r.contains("migrate exited with 4")), "{t}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_and_none_network_modes() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    let port = 42000 + (std::process::id() % 1000) as u16;
    register(
        c,
        env,
        "on-host",
        json!({"network_mode": "host", "container_definitions": [
        {"name": "web", "memory": 16, "stop_timeout": 1, "command": ["httpd", "-f", "-p", port.to_string(), "-h", "/www"],
         "port_mappings": [{"container_port": port}]}]}),
    )
    .await;
    register(
        c,
        env,
        "isolated",
        json!({"network_mode": "none", "container_definitions": [
        {"name": "app", "memory": 16, "stop_timeout": 1, "command": ["sh", "-c", "ls /sys/class/net; sleep 3600"]}]}),
    )
    .await;
    let web = run_one(c, "prod", "on-host").await;
    let isolated = run_one(c, "prod", "isolated").await;
    wait_task(c, "prod", &web, 60, "RUNNING", |t| status(t) == "RUNNING").await;
    let http = reqwest::Client::new();
    let mut body = String::new();
    for _ in 0..50 {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/index.html")).send().await
            && let Ok(text) = r.text().await
        {
            body = text;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body, "hello from berth\n", "host networking serves on the host's own port");
    wait_task(c, "prod", &isolated, 60, "RUNNING", |t| status(t) == "RUNNING").await;
    let mut text = String::new();
    for _ in 0..50 {
        text = logs(c, "prod", &isolated, "").await;
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(text, "lo\n", "network mode none has only loopback");
    stop_task(c, "prod", &web).await;
    stop_task(c, "prod", &isolated).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_images_are_collected_by_age_and_disk_budget() {
    use berth_host_agent::containerd::client::Containerd;
    use berth_host_agent::containerd::image::{ImageStore, PullPolicy};
    use std::collections::HashSet;
    berth_tests::init();
    let env = ContainerEnv::from_env();
    // A namespace of its own, so no other test's images are counted.
    let ctr = Containerd::connect(&env.socket, &format!("berth-gc-{}", std::process::id()), "overlayfs")
        .await
        .expect("containerd");
    let http = berth_host_agent::registry::http().expect("http client");
    let store = ImageStore::new(ctr, http, Vec::new());
    let image = store.ensure(&env.image, PullPolicy::IfNotPresent, None).await.expect("pull");
    let in_use: HashSet<String> = [image.name.clone()].into();
    let week = Duration::from_secs(7 * 24 * 3600);

    // Recent and within budget: kept. In use: kept even over budget and age.
    assert!(store.collect_garbage(&HashSet::new(), week, u64::MAX).await.expect("gc").is_empty());
    assert!(store.collect_garbage(&in_use, Duration::ZERO, 0).await.expect("gc").is_empty());
    // Unused and over the budget: removed, and a later start pulls it again.
    let removed = store.collect_garbage(&HashSet::new(), week, 0).await.expect("gc");
    assert_eq!(removed, vec![image.name.clone()]);
    assert!(store.collect_garbage(&HashSet::new(), week, 0).await.expect("gc").is_empty(), "nothing left");
    store.ensure(&env.image, PullPolicy::IfNotPresent, None).await.expect("pulled again");
    // Last use is kept to the second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let removed = store.collect_garbage(&HashSet::new(), Duration::ZERO, u64::MAX).await.expect("gc");
    assert_eq!(removed, vec![image.name], "unused past its age: removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_names_resolve_through_the_images_passwd() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    register(
        c,
        env,
        "as-nobody",
        json!({"container_definitions": [
        {"name": "app", "memory": 16, "user": "nobody", "command": ["sh", "-c", "id -u; id -g"]}]}),
    )
    .await;
    register(
        c,
        env,
        "as-ghost",
        json!({"container_definitions": [
        {"name": "app", "memory": 16, "user": "ghost", "command": ["true"]}]}),
    )
    .await;
    let nobody = run_one(c, "prod", "as-nobody").await;
    let ghost = run_one(c, "prod", "as-ghost").await;
    let t = wait_task(c, "prod", &nobody, 60, "STOPPED", |t| status(t) == "STOPPED").await;
    assert_eq!(t["containers"][0]["exit_code"], 0, "{t}");
    assert_eq!(logs(c, "prod", &nobody, "").await, "65534\n65534\n");
    let t = wait_task(c, "prod", &ghost, 60, "STOPPED", |t| status(t) == "STOPPED").await;
    assert_eq!(t["stop_code"], "TaskFailedToStart");
    assert!(
        t["stopped_reason"].as_str().is_some_and(|r| r.contains("\"ghost\" is not in the image's /etc/passwd")),
        "{t}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_that_dies_mid_pull_or_mid_start_finishes_the_task_once() {
    use berth_host_agent::failpoint::{MID_PULL, MID_START};
    use containerd_client::services::v1::ListTasksRequest;
    let env = ContainerEnv::from_env();
    let s = TestServer::start(Backend::Postgres).await;
    let c = s.tenant("acme").await;
    let server = format!("http://{}", s.addr);
    register(
        &c,
        &env,
        "long",
        json!({"container_definitions": [{"name": "app", "memory": 16,
        "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}]}),
    )
    .await;
    for failpoint in [MID_PULL, MID_START] {
        // Its own cluster and containerd namespace: a fresh pull, and only this agent's containers.
        let cluster = format!("crash-{failpoint}");
        let namespace = format!("berth-crash-{}-{failpoint}", std::process::id());
        c.create_cluster(&cluster).await;
        let token =
            c.post(&format!("/v1/clusters/{cluster}/registration-tokens"), json!({"max_uses": 1})).await.expect(201);
        let token = token["token"].as_str().expect("token").to_owned();
        let state = tempfile::tempdir().expect("state dir");
        let mut agent = AgentProcess::start_in(&env, &server, &token, state.path(), &namespace, Some(failpoint));
        let mut task = None;
        for _ in 0..100 {
            let run =
                c.post(&format!("/v1/clusters/{cluster}/tasks"), json!({"task_definition": "long"})).await.expect(201);
            if let Some(id) = run["tasks"][0]["id"].as_str() {
                task = Some(id.to_owned());
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let task = task.expect("the agent's host took the task");
        // The agent dies at the failpoint.
        let mut died = None;
        for _ in 0..300 {
            if let Ok(Some(status)) = agent.child.try_wait() {
                died = Some(status);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(state.path().join("agent.log")).unwrap_or_default();
        let died = died.unwrap_or_else(|| panic!("the agent did not reach {failpoint}; log:\n{log}"));
        assert!(!died.success() && log.contains(failpoint), "{failpoint}: {died}; log:\n{log}");

        let agent = AgentProcess::start_in(&env, &server, &token, state.path(), &namespace, None);
        let t = wait_task(&c, &cluster, &task, 60, "RUNNING after the restart", |t| status(t) == "RUNNING").await;
        assert_eq!(t["containers"][0]["last_status"], "RUNNING");
        let ctr = berth_host_agent::containerd::client::Containerd::connect(&env.socket, &namespace, "overlayfs")
            .await
            .expect("containerd");
        let listed = ctr.tasks().list(ctr.req(ListTasksRequest { filter: String::new() })).await.expect("list");
        let ids: Vec<String> = listed.into_inner().tasks.into_iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![format!("{task}-0")], "{failpoint}: exactly one container runs, started once");

        let t = stop_task(&c, &cluster, &task).await;
        assert_eq!(t["containers"][0]["exit_code"], 0, "{t}");
        let listed = ctr.tasks().list(ctr.req(ListTasksRequest { filter: String::new() })).await.expect("list");
        assert!(listed.into_inner().tasks.is_empty(), "{failpoint}: nothing left running");
        agent.kill();
    }
}

/// A service deployed with an image that exits at once: the circuit
/// breaker fails the deployment after three failed launches and rolls back
/// to the last completed revision, whose tasks kept running all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashing_deployment_trips_the_circuit_breaker_and_rolls_back() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    register(
        c,
        env,
        "api",
        json!({"container_definitions": [{"name": "app", "memory": 32,
            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}]}),
    )
    .await;
    let svc = "/v1/clusters/prod/services";
    c.post(
        svc,
        json!({"name": "api", "task_definition": "api", "desired_count": 2,
               "deployment_configuration": {"min_healthy_time_seconds": 5, "circuit_breaker": {"threshold": 3}}}),
    )
    .await
    .expect(201);
    let steady = |v: &serde_json::Value| {
        v["running_count"] == 2
            && v["healthy_count"] == 2
            && v["deployments"].as_array().is_some_and(|d| d.len() == 1 && d[0]["state"] == "COMPLETED")
    };
    let first = c.wait_for(&format!("{svc}/api"), "the first deployment to complete", 60, steady).await;
    let id = first["id"].as_str().expect("id").to_owned();
    let tasks_path = format!("/v1/clusters/prod/tasks?service_id={id}&limit=100");
    let original: Vec<String> = c.get(&tasks_path).await.expect(200)["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(original.len(), 2);
    // The containers really run.
    for t in &original {
        assert_eq!(env.container_status(t, 0).await.expect("in containerd").0, "RUNNING");
    }

    // Revision 2 exits with code 3 as soon as it starts: well within the 5 s a
    // task must run to count as healthy, even when reports arrive late on a busy machine.
    register(
        c,
        env,
        "api",
        json!({"container_definitions": [{"name": "app", "memory": 32, "command": ["sh", "-c", "echo crashing; exit 3"]}]}),
    )
    .await;
    c.patch(&format!("{svc}/api"), json!({"task_definition": "api:2"})).await.expect(200);
    let v = c
        .wait_for(&format!("{svc}/api/deployments"), "the rollback to complete", 120, |v| {
            v["deployments"].as_array().is_some_and(|d| d.len() == 3 && d[0]["state"] == "COMPLETED")
        })
        .await;
    let d = v["deployments"].as_array().expect("deployments");
    assert_eq!(d.len(), 3, "created, failed, rollback: {v:#}");
    assert_eq!(d[0]["trigger"], "rollback");
    assert_eq!(d[0]["task_definition"], "api:1");
    assert_eq!(d[0]["state"], "COMPLETED");
    assert_eq!(d[0]["rollback_of"], d[1]["id"]);
    assert_eq!(d[1]["task_definition"], "api:2");
    assert_eq!(d[1]["state"], "ROLLED_BACK");
    assert!(d[1]["failed_tasks"].as_u64().expect("n") >= 3, "{v:#}");
    assert!(d[1]["reason"].as_str().expect("reason").contains("rolled back to api:1"), "{v:#}");

    let service = c.get(&format!("{svc}/api")).await.expect(200);
    assert_eq!(service["task_definition"], "api:1");
    let messages: Vec<&str> =
        service["events"].as_array().expect("events").iter().map(|e| e["message"].as_str().expect("m")).collect();
    assert!(messages.iter().any(|m| m.contains("rolled back")), "{messages:#?}");
    assert!(messages.iter().any(|m| m.contains("EssentialContainerExited")), "{messages:#?}");
    // The old tasks never stopped: the floor of 100% kept them until a healthy replacement existed.
    let tasks = c.get(&tasks_path).await.expect(200);
    let all = tasks["tasks"].as_array().expect("tasks");
    let live: Vec<&str> = all
        .iter()
        .filter(|t| t["last_status"] == "RUNNING" && t["desired_status"] == "RUNNING")
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    assert_eq!(live, original.iter().map(String::as_str).collect::<Vec<_>>(), "{tasks:#}");
    let crashed: Vec<&serde_json::Value> = all.iter().filter(|t| t["task_definition"] == "api:2").collect();
    assert!(crashed.len() >= 3 && crashed.len() <= 6, "the backoff kept launches few: {}", crashed.len());
    assert!(
        crashed.iter().all(|t| t["last_status"] == "STOPPED" && t["containers"][0]["exit_code"] == 3),
        "{crashed:#?}"
    );
    h.finish().await;
}

/// Runs one MANAGED task of `family` (with `env` for its containers) and returns its id.
async fn run_managed(c: &berth_tests::Client, family: &str, env: serde_json::Value) -> String {
    let overrides = json!({"container_overrides": [{"name": "app", "environment": env}]});
    let run = c
        .post(
            "/v1/clusters/prod/tasks",
            json!({"task_definition": family, "launch_type": "MANAGED", "overrides": overrides}),
        )
        .await
        .expect(201);
    assert_eq!(run["failures"], json!([]), "the task was not placed: {run}");
    run["tasks"][0]["id"].as_str().expect("task id").to_owned()
}

/// The logs of a task once its essential container has exited.
async fn finished_logs(c: &berth_tests::Client, task: &str) -> String {
    wait_task(c, "prod", task, 60, "STOPPED", |t| status(t) == "STOPPED").await;
    logs(c, "prod", task, "").await
}

/// Two accounts' MANAGED tasks on one shared host: account B cannot open a
/// TCP connection to a port served by account A's container, while A's
/// other task can, and the containers of one task share localhost. Every
/// MANAGED container runs under the seccomp filter with no new privileges
/// and its memory limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn managed_tasks_of_different_accounts_are_isolated_on_a_shared_host() {
    let env = ContainerEnv::from_env();
    let s = TestServer::start(Backend::Postgres).await;
    s.operator.post("/v1/capacity-pools", json!({"name": "shared"})).await.expect(201);
    let token =
        s.operator.post("/v1/capacity-pools/shared/registration-tokens", json!({"max_uses": 1})).await.expect(201);
    let agent =
        berth_tests::containers::InProcessAgent::join(&s, token["token"].as_str().expect("token").into(), &env).await;
    let a = s.tenant("acme").await;
    let b = s.tenant("globex").await;
    // busybox-static's wget crashes here; nc speaks the HTTP it needs.
    let script = "out=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 $TARGET 8080); \
                  case \"$out\" in *hello*) echo REACHED;; *) echo BLOCKED;; esac";
    for c in [&a, &b] {
        c.create_cluster("prod").await;
        register(
            c,
            &env,
            "client",
            json!({"cpu": 256, "memory": 512, "container_definitions": [
            {"name": "app", "environment": {"TARGET": "127.0.0.1"}, "command": ["sh", "-c", script]}]}),
        )
        .await;
    }
    // A's server, with a sidecar that reaches it over the task's own localhost.
    register(&a, &env, "web", json!({"cpu": 512, "memory": 1024, "container_definitions": [
        {"name": "app", "command": ["sh", "-c",
            "echo hello > /tmp/index.html; ip -4 -o addr show eth0; exec httpd -f -p 8080 -h /tmp"]},
        {"name": "sidecar", "essential": false, "command": ["sh", "-c",
            "sleep 1; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 8080 | grep -q hello && echo SIDECAR-REACHED"]}]}))
    .await;
    let web = run_managed(&a, "web", json!({})).await;
    wait_task(&a, "prod", &web, 60, "RUNNING", |t| status(t) == "RUNNING").await;
    let (ctr_status, _) = env.container_status(&web, 0).await.expect("containerd runs the server");
    assert_eq!(ctr_status, "RUNNING");
    let mut text = String::new();
    for _ in 0..100 {
        text = logs(&a, "prod", &web, "").await;
        if text.contains("SIDECAR-REACHED") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains("SIDECAR-REACHED"), "the task's containers share localhost: {text:?}");
    let ip = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .expect("the server printed its address")
        .to_owned();
    assert!(ip.starts_with("10.216."), "a MANAGED task is on its account's network: {ip}");

    // Another task of A reaches the server; a task of B on the same host does not.
    let same_account = run_managed(&a, "client", json!({"TARGET": ip})).await;
    let other_account = run_managed(&b, "client", json!({"TARGET": ip})).await;
    let reached = finished_logs(&a, &same_account).await;
    assert!(reached.contains("REACHED"), "A's own task: {reached:?}");
    let blocked = finished_logs(&b, &other_account).await;
    assert!(blocked.contains("BLOCKED"), "B's task: {blocked:?}");

    // The sandbox: seccomp filter, no new privileges, the memory limit, no namespaces of its own.
    register(
        &b,
        &env,
        "inspect",
        json!({"cpu": 256, "memory": 512, "container_definitions": [
        {"name": "app", "command": ["sh", "-c",
            "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; \
             cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
             unshare -U true 2>/dev/null && echo UNSHARED || echo NO-UNSHARE"]}]}),
    )
    .await;
    let inspected = run_managed(&b, "inspect", json!({})).await;
    let report = finished_logs(&b, &inspected).await;
    assert!(report.contains("Seccomp:\t2"), "the seccomp filter is in force: {report:?}");
    assert!(report.contains("NoNewPrivs:\t1"), "{report:?}");
    assert!(report.contains(&(512u64 * 1024 * 1024).to_string()), "the task's memory is the limit: {report:?}");
    assert!(report.contains("NO-UNSHARE"), "no namespaces of its own: {report:?}");
    stop_task(&a, "prod", &web).await;
    agent.stop().await;
}

/// `logs?follow=true` right after RunTask, while the task is PENDING and
/// its container (and so its log) does not exist yet, as `berth tasks run`
/// then `berth logs -f` does: the follower waits for the log instead of
/// being told there is none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_logs_of_a_task_that_has_not_started_yet_waits_for_them() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    register(
        c,
        env,
        "quiet",
        json!({"container_definitions": [{"name": "app", "memory": 32,
            "command": ["sh", "-c", "sleep 2; echo the-first-line; sleep 1"]}]}),
    )
    .await;
    let task = run_one(c, "prod", "quiet").await;
    // The line written two seconds after the start arrives, and the stream
    // ends when the container does.
    let text = logs(c, "prod", &task, "?follow=true").await;
    assert!(text.contains("the-first-line"), "{text:?}");
    let t = wait_task(c, "prod", &task, 30, "STOPPED", |t| status(t) == "STOPPED").await;
    assert_eq!(t["containers"][0]["exit_code"], 0, "{t}");
    h.finish().await;
}

/// A container group as ACI users know it: containers sharing a task
/// volume, a host directory mounted read-only, an added capability, and
/// the group's restart policy restarting an essential container until it
/// runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_container_group_shares_volumes_and_restarts_by_the_groups_policy() {
    let h = ClusterWithAgent::start().await;
    let (env, c) = (&h.env, &h.tenant);
    let host_dir = tempfile::tempdir().expect("host dir");
    std::fs::write(host_dir.path().join("marker"), "from-the-host\n").expect("marker");
    register(
        c,
        env,
        "group",
        json!({
            "restart_policy": {"condition": "ON_FAILURE", "max_restarts": 2},
            "volumes": [{"name": "shared"}, {"name": "hostdir", "host": {"source_path": host_dir.path()}}],
            "container_definitions": [
                {"name": "writer", "memory": 64, "command": ["sh", "-c",
                    "echo from-writer > /data/note; cat /host/marker; sleep 2; exit 3"],
                 "mount_points": [{"source_volume": "shared", "container_path": "/data"},
                                  {"source_volume": "hostdir", "container_path": "/host", "read_only": true}]},
                {"name": "reader", "memory": 64, "essential": false, "command": ["sh", "-c",
                    "grep CapEff /proc/self/status; sleep 1; cat /data/note; \
                     touch /data/readonly 2>/dev/null && echo WROTE || echo READ-ONLY; sleep 3600"],
                 "linux_parameters": {"capabilities": {"add": ["NET_ADMIN"]}},
                 "mount_points": [{"source_volume": "shared", "container_path": "/data", "read_only": true}]}
            ]
        }),
    )
    .await;
    let task = run_one(c, "prod", "group").await;
    wait_task(c, "prod", &task, 60, "RUNNING", |t| status(t) == "RUNNING").await;
    // The essential writer exits 3 three times: two restarts, then the task stops.
    let stopped = wait_task(c, "prod", &task, 90, "STOPPED", |t| status(t) == "STOPPED").await;
    assert_eq!(stopped["stop_code"], "EssentialContainerExited", "{stopped}");
    let writer = &stopped["containers"][0];
    assert_eq!((writer["exit_code"].as_i64(), writer["restart_count"].as_u64()), (Some(3), Some(2)), "{stopped}");
    let text = logs(c, "prod", &task, "").await;
    assert_eq!(text.matches("from-the-host").count(), 3, "the host directory, on every run: {text:?}");
    assert!(text.contains("[reader] from-writer"), "the task volume is shared: {text:?}");
    assert!(text.contains("READ-ONLY"), "a read-only mount stays read-only: {text:?}");
    // Docker's default capabilities (0xa80425fb) plus NET_ADMIN (bit 12).
    assert!(text.contains("00000000a80435fb"), "NET_ADMIN was added: {text:?}");
    h.finish().await;
}
