//! RunTask to RUNNING with real containers, next to the machine's floor.
//!
//! Run with `cargo xtask bench containers` (which starts a private
//! PostgreSQL, containerd and registry, as the tests do). Figures print as
//! `BENCH <name> <metric>=<value>`:
//!
//! - `containers.floor.ctr_run_rm`: `ctr run --rm` of the test image running
//!   `/bin/true` on the same containerd (create, start, exit, delete), p50 and
//!   p99 of 20: what containerd itself takes.
//! - `containers.run_task.cached_image`: RunTask through the API (an
//!   in-process control plane on PostgreSQL, one real agent) until the task is
//!   RUNNING, one task at a time, 50 tasks, the image already on the host;
//!   measured from the task's `created_at` to its `running_at` (both stamped
//!   by the control plane).
//! - `containers.floor.ctr_parallel_100`: 100 `ctr run -d` started at once on
//!   the same containerd, until every one has returned (its container
//!   started): what containerd, its shims and runc need for 100 containers on
//!   this machine, with no orchestrator and no network.
//! - `containers.converge.100`: a service of 100 tasks on the one real agent,
//!   from the service's creation to its last task's `running_at`, and the
//!   scale back to 0.
//! - `containers.converge.100.no_network`: the same with `network_mode`
//!   `none` (a namespace with loopback only): the difference is what the
//!   task networks (bridge, veth, address) cost.
//! - `containers.floor.ctr_client_parallel_100`: 100 `ctr version` at once,
//!   the part of `ctr_parallel_100` that is the `ctr` clients themselves.

use std::time::{Duration, Instant};

use berth_tests::bench::{STOPPABLE_WORKLOAD, ctr_run_floor, report_ms as report};
use berth_tests::containers::{ClusterWithAgent, register, run_one, wait_task};
use serde_json::json;

fn millis_between(task: &serde_json::Value, from: &str, to: &str) -> f64 {
    let at = |f: &str| {
        time::OffsetDateTime::parse(
            task[f].as_str().expect("timestamp"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("rfc3339")
    };
    (at(to) - at(from)).as_seconds_f64() * 1000.0
}

/// The benchmarks' task definition: one 16 MiB container of the stoppable
/// workload, on the given network mode.
fn definition(network_mode: &str) -> serde_json::Value {
    json!({"network_mode": network_mode, "container_definitions": [{"name": "app", "memory": 16,
        "command": ["sh", "-c", STOPPABLE_WORKLOAD]}]})
}

async fn run_task_cached(h: &ClusterWithAgent) -> Vec<f64> {
    let c = &h.tenant;
    register(c, &h.env, "bench", definition("bridge")).await;
    // One task to pull the image: what follows runs from the host's copy.
    let warm = run_one(c, "prod", "bench").await;
    wait_task(c, "prod", &warm, 120, "RUNNING", |t| t["last_status"] == "RUNNING").await;
    let mut tasks = vec![warm];
    let mut ms = Vec::new();
    for _ in 0..50 {
        let task = run_one(c, "prod", "bench").await;
        let t = wait_task(c, "prod", &task, 60, "RUNNING", |t| t["last_status"] == "RUNNING").await;
        ms.push(millis_between(&t, "created_at", "running_at"));
        tasks.push(task);
    }
    for task in &tasks {
        c.post(&format!("/v1/clusters/prod/tasks/{task}/stop"), json!({})).await.expect(200);
    }
    for task in &tasks {
        wait_task(c, "prod", task, 60, "STOPPED", |t| t["last_status"] == "STOPPED").await;
    }
    ms
}

/// Starts one `ctr` per argument list, all at once, and returns the seconds
/// until every one has exited successfully.
fn ctr_all_at_once(socket: &std::path::Path, runs: &[Vec<&str>]) -> f64 {
    let started = Instant::now();
    let children: Vec<_> = runs
        .iter()
        .map(|args| {
            berth_tests::bench::ctr_command(socket)
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start ctr")
        })
        .collect();
    for (child, args) in children.into_iter().zip(runs) {
        let out = child.wait_with_output().expect("ctr");
        assert!(out.status.success(), "ctr {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    started.elapsed().as_secs_f64()
}

/// Seconds for 100 `ctr version` started together to return: the share of
/// the parallel floor that is the 100 `ctr` clients themselves (process
/// start and a call to containerd), not containerd, its shims or runc.
fn ctr_client_floor(socket: &std::path::Path) -> f64 {
    ctr_all_at_once(socket, &vec![vec!["version"]; 100])
}

/// Seconds for 100 `ctr run -d` started together to return.
fn ctr_parallel_floor(socket: &std::path::Path, image: &str) -> f64 {
    let ids: Vec<String> = (0..100).map(|i| format!("floorp-{}-{i}", std::process::id())).collect();
    let runs: Vec<Vec<&str>> =
        ids.iter().map(|id| vec!["run", "-d", image, id.as_str(), "sh", "-c", STOPPABLE_WORKLOAD]).collect();
    let secs = ctr_all_at_once(socket, &runs);
    for id in &ids {
        let ctr = |args: &[&str]| {
            let _ = berth_tests::bench::ctr_command(socket).args(args).output();
        };
        ctr(&["tasks", "kill", "-s", "KILL", id]);
        ctr(&["tasks", "rm", "-f", id]);
        ctr(&["containers", "rm", id]);
    }
    secs
}

/// Seconds from a 100-task service's creation to its last task RUNNING, and
/// from the scale to 0 until every task has stopped.
async fn converge_100(h: &ClusterWithAgent, service: &str, definition: &str) -> (f64, f64) {
    let c = &h.tenant;
    let created = c
        .post(
            "/v1/clusters/prod/services",
            json!({"name": service, "task_definition": definition, "desired_count": 100}),
        )
        .await
        .expect(201);
    let path = format!("/v1/clusters/prod/services/{service}");
    c.wait_for(&path, "100 RUNNING", 300, |s| s["running_count"] == 100).await;
    let tasks = c.get("/v1/clusters/prod/tasks?desired_status=RUNNING&limit=100").await.expect(200);
    let last = tasks["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| millis_between(&json!({"a": created["created_at"], "b": t["running_at"]}), "a", "b"))
        .fold(0.0, f64::max);
    let down = Instant::now();
    c.patch(&path, json!({"desired_count": 0})).await.expect(200);
    c.wait_for(&path, "0 tasks", 300, |s| s["running_count"] == 0 && s["pending_count"] == 0).await;
    for status in ["PENDING", "RUNNING", "STOPPING"] {
        let path = format!("/v1/clusters/prod/tasks?last_status={status}&limit=1");
        c.wait_for(&path, "every task STOPPED", 300, |t| t["tasks"] == json!([])).await;
    }
    (last / 1000.0, down.elapsed().as_secs_f64())
}

fn print_converge(name: &str, up: f64, down: f64, floor: f64) {
    println!("BENCH {name} seconds={up:.2}");
    println!("BENCH {name} tasks_per_s={:.1}", 100.0 / up);
    println!("BENCH {name} scale_to_zero_seconds={down:.2}");
    println!("BENCH {name} vs_parallel_floor={:.2}", up / floor);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let h = ClusterWithAgent::start().await;
    let started = Instant::now();
    report("containers.floor.ctr_run_rm", ctr_run_floor(&h.env.socket, &h.env.image));
    report("containers.run_task.cached_image", run_task_cached(&h).await);
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    // `cargo xtask bench containers.converge` passes `converge`.
    if wanted.is_empty() || wanted.iter().any(|w| w == "converge") {
        let floor = ctr_parallel_floor(&h.env.socket, &h.env.image);
        println!("BENCH containers.floor.ctr_parallel_100 seconds={floor:.2}");
        let clients = ctr_client_floor(&h.env.socket);
        println!("BENCH containers.floor.ctr_client_parallel_100 seconds={clients:.2}");
        let (up, down) = converge_100(&h, "converge", "bench").await;
        print_converge("containers.converge.100", up, down, floor);
        // The same without a network of its own (loopback only): what the
        // bridge, its veth and the address cost the converge.
        register(&h.tenant, &h.env, "bench-no-network", definition("none")).await;
        let (up, down) = converge_100(&h, "converge-no-network", "bench-no-network").await;
        print_converge("containers.converge.100.no_network", up, down, floor);
        // The same on SQLite, the store `berth dev` uses.
        let lite = ClusterWithAgent::start_on(berth_tests::Backend::Sqlite).await;
        register(&lite.tenant, &lite.env, "bench", definition("bridge")).await;
        let (up, down) = converge_100(&lite, "converge", "bench").await;
        print_converge("containers.converge.100.sqlite", up, down, floor);
        lite.finish().await;
    }
    eprintln!("containers benchmark took {:.0} s", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.finish().await;
}
