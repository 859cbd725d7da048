//! End-to-end benchmarks of the control plane on PostgreSQL, with the real
//! `berth server` and `berth agent --simulate N` (a test double for hosts that
//! speaks the real protocol) as separate processes, so the server's CPU and
//! memory are its own.
//!
//! Run with `cargo xtask bench e2e` (which starts a private PostgreSQL and
//! builds the release binary). Figures print as `BENCH <name> <metric>=<value>`.
//!
//! - `e2e.run_task.1k_hosts`: RunTask (count 10) through the HTTP API with
//!   SigV4 from concurrent clients, onto 1,000 simulated hosts; tasks per second
//!   from the first request until every task is acknowledged RUNNING, and the
//!   API's latency.
//! - `e2e.heartbeats.10k_hosts`: 10,000 simulated hosts heartbeating every
//!   10 s and long-polling their assignments; the server's and PostgreSQL's
//!   CPU and memory, and how long it takes to notice a host that stopped.
//! - `e2e.services.100_hosts`: one service converging from 0 to 1,000 tasks
//!   on 100 simulated hosts, a rolling deployment of all 1,000 (health
//!   immediate: `min_healthy_time_seconds` 0), and the scale-down to 0; the
//!   scheduler's tasks per second and the time of each step.
//! - `e2e.console.1k_tasks`: the web console's pages with a service of 1,000
//!   RUNNING tasks on 10 simulated hosts: each page's time from request to
//!   the last byte, p50 and p99 over 20 loads (the goal is under 200 ms).
//! - `e2e.noisy_neighbor`: with the default rate limits, one tenant floods
//!   reads from 64 connections while another reads steadily; the quiet
//!   tenant's latency alone and during the flood, side by side.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_tests::{Auth, Client, TestDb};
use serde_json::json;
use tokio::process::{Child, Command};

fn berth_bin() -> PathBuf {
    std::env::var_os("BERTH_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        root.join("target/release/berth")
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A `berth server` process on a fresh database, with the operator's client.
struct Server {
    child: Child,
    pid: u32,
    url: String,
    operator: Client,
    db: TestDb,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(heartbeat_interval_s: u64) -> Server {
        Self::start_with(heartbeat_interval_s, false).await
    }

    /// With `rate_limited`, the server keeps its default rate limits.
    async fn start_with(heartbeat_interval_s: u64, rate_limited: bool) -> Server {
        let db = TestDb::postgres().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let creds = dir.path().join("credentials");
        let mut command = Command::new(berth_bin());
        if !rate_limited {
            // The benchmark measures capacity, not the per-account rate limit.
            command
                .env("BERTH_RATE_LIMIT_PER_SECOND", "1000000")
                .env("BERTH_RATE_LIMIT_BURST", "1000000")
                .env("BERTH_RATE_LIMITS", "mutate=1000000/1000000,run_task=1000000/1000000,agent=1000000/1000000");
        }
        let child = command
            .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--database-url", &db.url])
            .arg("--bootstrap-credentials-file")
            .arg(&creds)
            .env("BERTH_MASTER_KEYS", berth_control_plane::auth::keyring::Keyring::generate_entry("bench"))
            .env("BERTH_HEARTBEAT_INTERVAL_SECONDS", heartbeat_interval_s.to_string())
            .env("BERTH_HOST_LOST_TIMEOUT_SECONDS", (heartbeat_interval_s * 6).to_string())
            .env("BERTH_EXPENSIVE_CALLS_PER_ACCOUNT", "1000")
            // Quotas are not what these benchmarks measure: room for 10,000 hosts and their tasks.
            .env(
                "BERTH_QUOTAS",
                "hosts=100000,running_tasks=10000000,running_cpu=1000000000000,running_memory=1000000000000,\
                 tasks_launched_per_minute=10000000,pending_tasks=10000000",
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start berth server (build it with `cargo build --release -p berth`)");
        let pid = child.id().expect("pid");
        let deadline = Instant::now() + Duration::from_secs(60);
        let text = loop {
            if let Ok(t) = std::fs::read_to_string(&creds)
                && t.contains("region")
            {
                break t;
            }
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.trim().strip_prefix('=')).map(|v| v.trim().to_owned()))
                .expect("credential field")
        };
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("http client");
        let operator = Client::new(
            &url,
            &http,
            Auth::SigV4 {
                access_key_id: field("access_key_id"),
                secret: field("secret_access_key"),
                region: field("region"),
            },
        );
        Server { child, pid, url, operator, db, _dir: dir }
    }

    /// A server whose cluster `bench` has `hosts` simulated hosts ACTIVE
    /// (heartbeating every 5 s): the server, the agent process and its state dir.
    async fn with_hosts(hosts: u32) -> (Server, Child, tempfile::TempDir) {
        let server = Server::start(5).await;
        let token = server.prepare().await;
        let state = tempfile::tempdir().expect("tempdir");
        let agent = server.agent(&token, hosts, state.path());
        server
            .wait_for("SELECT COUNT(*) FROM hosts WHERE status = 'ACTIVE'", i64::from(hosts), Duration::from_secs(300))
            .await;
        (server, agent, state)
    }

    /// A cluster with a registration token and a one-container definition.
    async fn prepare(&self) -> String {
        self.operator.create_cluster("bench").await;
        self.operator
            .post(
                "/v1/task-definitions",
                json!({"family": "app", "container_definitions": [{"name": "app", "image": "busybox", "memory": 64,
                       "command": ["sleep", "3600"]}]}),
            )
            .await
            .expect(201);
        self.token().await
    }

    async fn token(&self) -> String {
        let token =
            self.operator.post("/v1/clusters/bench/registration-tokens", json!({"max_uses": 10_000})).await.expect(201);
        token["token"].as_str().expect("token").to_owned()
    }

    fn agent(&self, token: &str, hosts: u32, state: &Path) -> Child {
        Command::new(berth_bin())
            .args(["agent", "--server", &self.url, "--cluster", "bench", "--registration-token", token])
            .arg("--state-dir")
            .arg(state)
            .args(["--simulate", &hosts.to_string(), "--cpu", "16384", "--memory", "65536"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start berth agent --simulate")
    }

    /// A new tenant account and a client signing with its first key.
    async fn tenant(&self, name: &str) -> Client {
        self.operator.post("/v1/accounts", json!({"name": name})).await.expect(201);
        let key = self.operator.post(&format!("/v1/accounts/{name}/access-keys"), json!({})).await.expect(201);
        let Auth::SigV4 { region, .. } = &self.operator.auth else { panic!("a signing operator") };
        self.operator.with_auth(Auth::SigV4 {
            access_key_id: key["access_key"]["access_key_id"].as_str().expect("akid").to_owned(),
            secret: key["secret_access_key"].as_str().expect("secret").to_owned(),
            region: region.clone(),
        })
    }

    /// Heartbeats the server has answered, from its own metrics.
    async fn heartbeats_served(&self) -> f64 {
        let text = self.operator.with_auth(Auth::None).get("/metrics").await;
        let text = text.body.as_str().unwrap_or_default().to_owned();
        text.lines()
            .filter(|l| {
                l.starts_with("berth_http_requests_total{")
                    && l.contains("route=\"/v1/agent/hosts/{host}/heartbeat\"")
                    && l.contains("status=\"200\"")
            })
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// The sum of a counter over its labels, from the server's own metrics.
    async fn counter(&self, name: &str) -> f64 {
        let text = self.operator.with_auth(Auth::None).get("/metrics").await;
        let text = text.body.as_str().unwrap_or_default().to_owned();
        text.lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    async fn scalar(&self, sql: &str) -> i64 {
        let pool = sqlx::PgPool::connect(&self.db.url).await.expect("connect");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&pool).await.expect("query");
        pool.close().await;
        n
    }

    async fn wait_for(&self, sql: &str, want: i64, within: Duration) -> Duration {
        let started = Instant::now();
        let pool = sqlx::PgPool::connect(&self.db.url).await.expect("connect");
        loop {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&pool).await.expect("query");
            if n >= want {
                pool.close().await;
                return started.elapsed();
            }
            assert!(started.elapsed() < within, "{sql}: {n} of {want} after {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// (user + system CPU seconds, resident MiB) of a process.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    (ticks / 100.0, rss_kib / 1024.0)
}

/// All PostgreSQL processes together (the database's share of the work).
fn postgres_usage() -> (f64, f64) {
    let mut total = (0.0, 0.0);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            let (cpu, rss) = usage(pid);
            total.0 += cpu;
            total.1 += rss;
        }
    }
    total
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn services_100_hosts() {
    const HOSTS: u32 = 100;
    const TASKS: i64 = 1000;
    let (server, mut agent, _state) = Server::with_hosts(HOSTS).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu0, _) = usage(server.pid);
    let started = Instant::now();
    server
        .operator
        .post(
            "/v1/clusters/bench/services",
            json!({"name": "web", "task_definition": "app", "desired_count": TASKS,
                   "deployment_configuration": {"min_healthy_time_seconds": 0}}),
        )
        .await
        .expect(201);
    let running = "SELECT COUNT(*) FROM tasks WHERE last_status = 'RUNNING' AND desired_status = 'RUNNING'";
    let converged = server.wait_for(running, TASKS, Duration::from_secs(600)).await;
    let completed = "SELECT COUNT(*) FROM deployments WHERE state = 'COMPLETED'";
    let steady = server.wait_for(completed, 1, Duration::from_secs(600)).await.max(converged);

    server.operator.patch("/v1/clusters/bench/services/web", json!({"force_new_deployment": true})).await.expect(200);
    let rolled = server.wait_for(completed, 2, Duration::from_secs(900)).await;
    let replaced = server.scalar("SELECT COUNT(*) FROM tasks WHERE last_status = 'STOPPED'").await;

    let down_started = Instant::now();
    server.operator.patch("/v1/clusters/bench/services/web", json!({"desired_count": 0})).await.expect(200);
    server
        .wait_for(
            "SELECT COUNT(*) FROM tasks WHERE last_status = 'STOPPED'",
            replaced + TASKS,
            Duration::from_secs(600),
        )
        .await;
    let down = down_started.elapsed();
    let total = started.elapsed();
    let (cpu1, rss) = usage(server.pid);
    let name = "e2e.services.100_hosts";
    println!("BENCH {name} converge_s={:.2}", converged.as_secs_f64());
    println!("BENCH {name} converge_tasks_per_s={:.0}", TASKS as f64 / converged.as_secs_f64());
    println!("BENCH {name} deployment_completed_s={:.2}", steady.as_secs_f64());
    println!("BENCH {name} rollout_s={:.2}", rolled.as_secs_f64());
    println!("BENCH {name} rollout_tasks_per_s={:.0}", TASKS as f64 / rolled.as_secs_f64());
    println!("BENCH {name} scale_to_zero_s={:.2}", down.as_secs_f64());
    println!("BENCH {name} server_cpu_s_per_task={:.4}", (cpu1 - cpu0) / (3 * TASKS) as f64);
    println!("BENCH {name} server_rss_mib={rss:.0}");
    eprintln!("all steps took {:.1} s", total.as_secs_f64());
    let _ = agent.kill().await;
    server.stop().await;
}

async fn run_task_1k_hosts() {
    const HOSTS: u32 = 1000;
    const REQUESTS: usize = 1000;
    const COUNT: usize = 10;
    const CONCURRENCY: usize = 32;
    let server = Server::start(5).await;
    let token = server.prepare().await;
    let state = tempfile::tempdir().expect("tempdir");
    let mut agent = server.agent(&token, HOSTS, state.path());
    let joined = server
        .wait_for("SELECT COUNT(*) FROM hosts WHERE status = 'ACTIVE'", i64::from(HOSTS), Duration::from_secs(300))
        .await;
    eprintln!("{HOSTS} simulated hosts joined in {:.1} s", joined.as_secs_f64());
    // Let every agent settle into its long-poll.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let (cpu0, _) = usage(server.pid);
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, next) = (server.operator.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0usize;
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < REQUESTS {
                    let t = Instant::now();
                    let r = client
                        .post("/v1/clusters/bench/tasks", json!({"task_definition": "app", "count": COUNT}))
                        .await;
                    latencies.push(t.elapsed());
                    if r.status.as_u16() != 201 {
                        failures += 1;
                        eprintln!("RunTask answered {}: {}", r.status, r.body);
                    } else if let Some(f) = r.body["failures"].as_array() {
                        failures += f.len();
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for w in workers {
        let (l, f) = w.await.expect("worker");
        latencies.extend(l);
        failures += f;
    }
    let accepted = started.elapsed();
    let total = (REQUESTS * COUNT) as i64;
    server.wait_for("SELECT COUNT(*) FROM tasks WHERE last_status = 'RUNNING'", total, Duration::from_secs(600)).await;
    let running = started.elapsed();
    let (cpu1, rss) = usage(server.pid);
    latencies.sort();
    let name = "e2e.run_task.1k_hosts";
    println!("BENCH {name} tasks_running_per_s={:.0}", total as f64 / running.as_secs_f64());
    println!("BENCH {name} tasks_placed_per_s={:.0}", total as f64 / accepted.as_secs_f64());
    println!("BENCH {name} api_p50_ms={:.1}", percentile(&latencies, 0.50));
    println!("BENCH {name} api_p99_ms={:.1}", percentile(&latencies, 0.99));
    println!("BENCH {name} placement_failures={failures}");
    println!("BENCH {name} server_cpu_cores={:.2}", (cpu1 - cpu0) / running.as_secs_f64());
    println!("BENCH {name} server_rss_mib={rss:.0}");
    // How many calls shared each RunTask transaction (see app/run_task_batches.rs).
    let batches = server.counter("berth_run_task_batches_total").await;
    let batched = server.counter("berth_run_task_batched_calls_total").await;
    println!("BENCH {name} calls_per_batch={:.1}", batched / batches.max(1.0));
    let over = server
        .scalar("SELECT COUNT(*) FROM hosts WHERE cpu_used > cpu_total - cpu_reserved OR memory_used > memory_total - memory_reserved")
        .await;
    assert_eq!(over, 0, "no host may be over-committed");
    let _ = agent.kill().await;
    server.stop().await;
}

async fn heartbeats_10k_hosts() {
    const HOSTS: u32 = 10_000;
    const INTERVAL_S: u64 = 10;
    const SAMPLE: Duration = Duration::from_secs(60);
    let server = Server::start(INTERVAL_S).await;
    let token = server.prepare().await;
    let state = tempfile::tempdir().expect("tempdir");
    let mut agent = server.agent(&token, HOSTS, state.path());
    let joined = server
        .wait_for("SELECT COUNT(*) FROM hosts WHERE status = 'ACTIVE'", i64::from(HOSTS), Duration::from_secs(900))
        .await;
    eprintln!("{HOSTS} simulated hosts joined in {:.1} s", joined.as_secs_f64());
    // One full interval so every host is in its steady heartbeat rhythm.
    tokio::time::sleep(Duration::from_secs(INTERVAL_S)).await;
    let beats0 = server.scalar("SELECT COUNT(*) FROM hosts WHERE status = 'ACTIVE'").await;
    let served0 = server.heartbeats_served().await;
    let (cpu0, _) = usage(server.pid);
    let (pg0, _) = postgres_usage();
    tokio::time::sleep(SAMPLE).await;
    let (cpu1, rss) = usage(server.pid);
    let (pg1, pg_rss) = postgres_usage();
    let served1 = server.heartbeats_served().await;
    let active = server.scalar("SELECT COUNT(*) FROM hosts WHERE status = 'ACTIVE'").await;
    assert_eq!(active, beats0, "every host stayed ACTIVE while heartbeating");

    // One more host in its own process, killed: how long until the control plane notices.
    let lone_state = tempfile::tempdir().expect("tempdir");
    let mut lone = server.agent(&server.token().await, 1, lone_state.path());
    server
        .wait_for("SELECT COUNT(*) FROM hosts WHERE status = 'ACTIVE'", i64::from(HOSTS) + 1, Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = lone.kill().await;
    let detected =
        server.wait_for("SELECT COUNT(*) FROM hosts WHERE status = 'DISCONNECTED'", 1, Duration::from_secs(120)).await;
    let still_active = server.scalar("SELECT COUNT(*) FROM hosts WHERE status = 'ACTIVE'").await;

    let name = "e2e.heartbeats.10k_hosts";
    let secs = SAMPLE.as_secs_f64();
    println!("BENCH {name} heartbeats_per_s={:.0}", (served1 - served0) / secs);
    println!("BENCH {name} server_cpu_cores={:.3}", (cpu1 - cpu0) / secs);
    println!("BENCH {name} server_rss_mib={rss:.0}");
    println!("BENCH {name} postgres_cpu_cores={:.3}", (pg1 - pg0) / secs);
    println!("BENCH {name} postgres_rss_mib={pg_rss:.0}");
    println!("BENCH {name} detect_disconnected_s={:.1}", detected.as_secs_f64());
    println!("BENCH {name} hosts_wrongly_disconnected={}", i64::from(HOSTS) - still_active);
    let _ = agent.kill().await;
    server.stop().await;
}

/// Sequential reads by one tenant for `run_for`; their latencies.
async fn quiet_reads(c: &Client, run_for: Duration) -> Vec<Duration> {
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < run_for {
        let t = Instant::now();
        c.get("/v1/clusters").await.expect(200);
        latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    latencies
}

async fn noisy_neighbor() {
    const FLOOD: Duration = Duration::from_secs(20);
    const WORKERS: usize = 64;
    // The server's default rate limits, as a tenant would meet them.
    let server = Server::start_with(5, true).await;
    let quiet = server.tenant("quiet").await;
    let noisy = server.tenant("noisy").await;
    let alone = quiet_reads(&quiet, Duration::from_secs(10)).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (c, stop) = (noisy.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut throttled) = (0u64, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match c.get("/v1/clusters").await.status.as_u16() {
                        200 => ok += 1,
                        429 => throttled += 1,
                        other => panic!("the noisy tenant got {other}"),
                    }
                }
                (ok, throttled)
            })
        })
        .collect();
    let flooded = quiet_reads(&quiet, FLOOD).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut throttled) = (0u64, 0u64);
    for f in flood {
        let (o, t) = f.await.expect("flood worker");
        ok += o;
        throttled += t;
    }
    let name = "e2e.noisy_neighbor";
    let secs = FLOOD.as_secs_f64();
    println!("BENCH {name} quiet_p50_ms_alone={:.2}", percentile(&alone, 0.50));
    println!("BENCH {name} quiet_p99_ms_alone={:.2}", percentile(&alone, 0.99));
    println!("BENCH {name} quiet_p50_ms_flooded={:.2}", percentile(&flooded, 0.50));
    println!("BENCH {name} quiet_p99_ms_flooded={:.2}", percentile(&flooded, 0.99));
    println!("BENCH {name} noisy_requests_per_s={:.0}", (ok + throttled) as f64 / secs);
    println!("BENCH {name} noisy_admitted_per_s={:.0}", ok as f64 / secs);
    println!("BENCH {name} noisy_throttled_share={:.3}", throttled as f64 / (ok + throttled).max(1) as f64);
    server.stop().await;
}

async fn console_1k_tasks() {
    const HOSTS: u32 = 10;
    const TASKS: i64 = 1000;
    const LOADS: usize = 20;
    let (server, mut agent, _state) = Server::with_hosts(HOSTS).await;
    server
        .operator
        .post("/v1/clusters/bench/services", json!({"name": "web", "task_definition": "app", "desired_count": TASKS}))
        .await
        .expect(201);
    server.wait_for("SELECT COUNT(*) FROM tasks WHERE last_status = 'RUNNING'", TASKS, Duration::from_secs(600)).await;
    let mut console = berth_tests::console::ConsoleClient::at(&server.url);
    let (key, secret) = berth_tests::console::key_of(&server.operator);
    assert_eq!(console.sign_in(&key, &secret).await.status.as_u16(), 303, "signed in");
    let tasks = server.operator.get("/v1/clusters/bench/tasks?limit=1").await.expect(200);
    let task = tasks["tasks"][0]["id"].as_str().expect("a task").to_owned();
    let host = tasks["tasks"][0]["host_id"].as_str().expect("its host").to_owned();
    let pages = [
        ("overview", "/console".to_owned()),
        ("cluster", "/console/clusters/bench".to_owned()),
        ("tasks", "/console/clusters/bench/tasks?status=RUNNING".to_owned()),
        ("task", format!("/console/clusters/bench/tasks/{task}")),
        ("host", format!("/console/clusters/bench/hosts/{host}")),
        ("service", "/console/clusters/bench/services/web".to_owned()),
        ("events", "/console/events".to_owned()),
    ];
    let name = "e2e.console.1k_tasks";
    for (page, path) in &pages {
        let mut times = Vec::new();
        for _ in 0..LOADS {
            let t = Instant::now();
            let loaded = console.get(path).await;
            times.push(t.elapsed());
            assert_eq!(loaded.status.as_u16(), 200, "{path}: {}", loaded.html);
        }
        times.sort();
        println!("BENCH {name} {page}_p50_ms={:.1}", percentile(&times, 0.50));
        println!("BENCH {name} {page}_p99_ms={:.1}", percentile(&times, 0.99));
    }
    let _ = agent.kill().await;
    server.stop().await;
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| name.contains(w.as_str()));
    if run("run_task") {
        run_task_1k_hosts().await;
    }
    if run("heartbeats") {
        heartbeats_10k_hosts().await;
    }
    if run("services") {
        services_100_hosts().await;
    }
    if run("console") {
        console_1k_tasks().await;
    }
    if run("noisy_neighbor") {
        noisy_neighbor().await;
    }
}
