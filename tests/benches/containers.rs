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

use std::time::{Duration, Instant};

use berth_tests::bench::{ctr_run_floor, report_ms as report};
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

async fn run_task_cached(h: &ClusterWithAgent) -> Vec<f64> {
    let c = &h.tenant;
    register(
        c,
        &h.env,
        "bench",
        json!({"container_definitions": [{"name": "app", "memory": 16,
            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}]}),
    )
    .await;
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let h = ClusterWithAgent::start().await;
    let started = Instant::now();
    report("containers.floor.ctr_run_rm", ctr_run_floor(&h.env.socket, &h.env.image));
    report("containers.run_task.cached_image", run_task_cached(&h).await);
    eprintln!("containers benchmark took {:.0} s", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.finish().await;
}
