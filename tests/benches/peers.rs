//! Berth next to Docker Swarm and the machine's floor, in one run.
//!
//! Run with `cargo xtask bench peers` (never in CI: it installs Debian's
//! docker.io and takes minutes). It starts a private PostgreSQL, containerd
//! and registry as the tests do, then on this machine:
//!
//! 1. Calibrates the floor: `ctr run --rm` of the test image (p50 of 20) and
//!    PostgreSQL's single-row commit rate.
//! 2. Starts `berth dev` (SQLite, the private containerd, its own agent) and a
//!    private `dockerd` in swarm mode (its own data-root, exec-root and socket,
//!    `--iptables=false`, `DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1`, services
//!    created with `--no-resolve-image` on the same image from the local
//!    registry, pinned by digest): nothing reaches off this machine.
//! 3. Runs the same workloads on each, alternating Berth, Swarm, Berth,
//!    Swarm, three rounds: converge a service to N = 10, 50, 100 replicas
//!    RUNNING; scale it to 0 until no container runs; one task from the API
//!    call to RUNNING (20 times); a rolling update of 50 replicas; resident
//!    memory at 100 running tasks and CPU-seconds per task started.
//!
//! The workload is the same on both sides: busybox `sh` that exits on
//! SIGTERM (`sleep` as PID 1 would ignore it), a 10 s stop timeout, a 32 MiB
//! memory limit. Every figure prints as `BENCH peers.<workload>.<system>
//! <metric>=<value>` (the median of the three rounds), with the Berth/Swarm
//! ratio as `BENCH peers.<workload>.ratio berth_over_swarm=<x>`. Everything
//! started is stopped by pid, the swarm left and its bridges removed, also
//! on Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::bench::{cpu_seconds, ctr_run_floor, percentile, pids_of, report_ms, rss_mib};
use berth_tests::{Auth, Client};
use serde_json::json;

const ROUNDS: usize = 3;
const CONVERGE: [u32; 3] = [10, 50, 100];
const SINGLES: usize = 20;
const ROLLING: u32 = 50;
const WORKLOAD: &str = berth_tests::bench::STOPPABLE_WORKLOAD;
const STOP_TIMEOUT_SECONDS: u32 = 10;
const MEMORY_MIB: u32 = 32;
const DEADLINE: Duration = Duration::from_secs(300);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run with `cargo xtask bench peers`"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Polls `done` every 50 ms until it holds; the seconds it took.
async fn until(what: &str, started: Instant, mut done: impl AsyncFnMut() -> bool) -> f64 {
    loop {
        if done().await {
            return started.elapsed().as_secs_f64();
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Memory and CPU of a system's processes: the orchestrator's own (control
/// plane and agent, or dockerd), its containerd, and the containers' shims.
#[derive(Clone, Copy, Debug, Default)]
struct Footprint {
    orchestrator_mib: f64,
    containerd_mib: f64,
    shims_mib: f64,
    cpu_seconds: f64,
}

/// Berth: `berth dev` on SQLite with the private containerd.
struct Berth {
    dev: Child,
    _data: tempfile::TempDir,
    client: Client,
    socket: PathBuf,
}

impl Berth {
    async fn start(berth_bin: &Path, socket: &Path, image: &str) -> Berth {
        let data = tempfile::tempdir().expect("data dir");
        let port = free_port();
        let dev = Command::new(berth_bin)
            .args(["dev", "--no-profile", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data.path())
            .arg("--containerd-socket")
            .arg(socket)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start berth dev");
        let creds = data.path().join("admin-credentials");
        let started = Instant::now();
        let profile = loop {
            if let Ok(Some(p)) = berth_sdk::profile::read_profile(&creds, "default") {
                break p;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "berth dev wrote no credentials");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let http = reqwest::Client::new();
        let client = Client::new(
            &format!("http://127.0.0.1:{port}"),
            &http,
            Auth::SigV4 {
                access_key_id: profile.access_key_id,
                secret: profile.secret_access_key,
                region: "local".into(),
            },
        );
        let berth = Berth { dev, _data: data, client, socket: socket.to_owned() };
        let c = &berth.client;
        until("berth dev's agent", Instant::now(), async || {
            let hosts = c.get("/v1/clusters/default/hosts").await;
            hosts.status.is_success() && hosts.body["hosts"][0]["status"] == "ACTIVE"
        })
        .await;
        c.post(
            "/v1/task-definitions",
            // No CPU units: a task's units are also its CFS ceiling, and Swarm's
            // tasks get none either (10 units would be 1% of a core, throttling even `sh`).
            json!({"family": "bench", "container_definitions": [{"name": "app", "image": image,
                "memory": MEMORY_MIB, "stop_timeout": STOP_TIMEOUT_SECONDS, "command": ["sh", "-c", WORKLOAD]}]}),
        )
        .await
        .expect(201);
        // One task pulls the image; everything measured runs from the host's copy.
        let warm = berth.single().await;
        eprintln!("berth: ready (the first task took {warm:.0} ms with the pull)");
        berth
    }

    fn containers(&self) -> usize {
        run(Command::new("ctr").arg("-a").arg(&self.socket).args(["-n", "berth", "tasks", "ls", "-q"]))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    }

    async fn create_service(&self, name: &str, n: u32) {
        self.client
            .post(
                "/v1/clusters/default/services",
                json!({"name": name, "task_definition": "bench", "desired_count": n,
                       "deployment_configuration": {"min_healthy_time_seconds": 1}}),
            )
            .await
            .expect(201);
    }

    async fn running(&self, name: &str) -> u64 {
        let s = self.client.get(&format!("/v1/clusters/default/services/{name}")).await;
        s.body["running_count"].as_u64().unwrap_or(0)
    }

    async fn converge(&self, name: &str, n: u32) -> f64 {
        let started = Instant::now();
        self.create_service(name, n).await;
        until("berth to converge", started, async || self.running(name).await == u64::from(n)).await
    }

    /// Where a converge's time went, from the control plane's own stamps,
    /// in seconds after the service was created: every task placed and
    /// committed (the scheduler), the first and the last task RUNNING (the agent).
    async fn stages(&self, name: &str) -> [f64; 3] {
        let service = self.client.get(&format!("/v1/clusters/default/services/{name}")).await.expect(200);
        let id = service["id"].as_str().expect("service id");
        let tasks = self.client.get(&format!("/v1/clusters/default/tasks?service_id={id}&limit=100")).await.expect(200);
        let at = |v: &serde_json::Value| {
            time::OffsetDateTime::parse(v.as_str().unwrap_or_default(), &time::format_description::well_known::Rfc3339)
                .ok()
        };
        let Some(created) = at(&service["created_at"]) else { return [f64::NAN; 3] };
        let since = |field: &str| -> Vec<f64> {
            tasks["tasks"]
                .as_array()
                .map(|ts| ts.iter().filter_map(|t| at(&t[field])).map(|t| (t - created).as_seconds_f64()).collect())
                .unwrap_or_default()
        };
        let max = |v: Vec<f64>| v.into_iter().fold(f64::NAN, f64::max);
        let min = |v: Vec<f64>| v.into_iter().fold(f64::NAN, f64::min);
        [max(since("created_at")), min(since("running_at")), max(since("running_at"))]
    }

    async fn scale_to_zero(&self, name: &str) -> f64 {
        let started = Instant::now();
        self.client
            .patch(&format!("/v1/clusters/default/services/{name}"), json!({"desired_count": 0}))
            .await
            .expect(200);
        let secs = until("berth's containers to go", started, async || self.containers() == 0).await;
        self.client.delete(&format!("/v1/clusters/default/services/{name}?force=true")).await.expect(200);
        secs
    }

    /// RunTask until the task is RUNNING, in milliseconds; the task is then stopped (not timed).
    async fn single(&self) -> f64 {
        let started = Instant::now();
        let run = self.client.post("/v1/clusters/default/tasks", json!({"task_definition": "bench"})).await.expect(201);
        let id = run["tasks"][0]["id"].as_str().expect("a task started").to_owned();
        let path = format!("/v1/clusters/default/tasks/{id}");
        until("a berth task to run", started, async || {
            let t = self.client.get(&path).await.body;
            assert_ne!(t["last_status"], "STOPPED", "the benchmark's task failed: {t}");
            t["last_status"] == "RUNNING"
        })
        .await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.client.post(&format!("{path}/stop"), json!({})).await.expect(200);
        until("the berth task to stop", Instant::now(), async || {
            self.client.get(&path).await.body["last_status"] == "STOPPED"
        })
        .await;
        ms
    }

    async fn rolling(&self, name: &str, n: u32) -> f64 {
        self.converge(name, n).await;
        let started = Instant::now();
        self.client
            .patch(
                &format!("/v1/clusters/default/services/{name}"),
                json!({"container_changes": [{"name": "app", "environment": {"REVISION": "2"}}]}),
            )
            .await
            .expect(200);
        let path = format!("/v1/clusters/default/services/{name}");
        let secs = until("berth's rollout", started, async || {
            let s = self.client.get(&path).await.body;
            let deployments = s["deployments"].as_array().cloned().unwrap_or_default();
            s["running_count"] == n
                && deployments.len() == 1
                && deployments[0]["state"] == "COMPLETED"
                && deployments[0]["task_definition"] != "bench:1"
        })
        .await;
        self.scale_to_zero(name).await;
        secs
    }

    fn footprint(&self) -> Footprint {
        let socket = self.socket.to_string_lossy().into_owned();
        let dir = self.socket.parent().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
        let containerd = pids_of("containerd", &dir);
        let shims = pids_of("containerd-shim-runc-v2", &socket);
        let dev = self.dev.id();
        Footprint {
            orchestrator_mib: rss_mib(dev),
            containerd_mib: containerd.iter().map(|p| rss_mib(*p)).sum(),
            shims_mib: shims.iter().map(|p| rss_mib(*p)).sum(),
            cpu_seconds: cpu_seconds(dev) + containerd.iter().map(|p| cpu_seconds(*p)).sum::<f64>(),
        }
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        // berth dev stops its containers on SIGINT, as on Ctrl-C.
        let _ = Command::new("kill").args(["-INT", &self.dev.id().to_string()]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = self.dev.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.dev.kill();
        let _ = self.dev.wait();
    }
}

/// Docker Swarm: a private dockerd in swarm mode, with its own containerd.
struct Swarm {
    dockerd: Child,
    dir: tempfile::TempDir,
    image: String,
}

impl Swarm {
    fn docker(&self) -> Command {
        let bin = if Path::new("/usr/bin/docker").exists() { "/usr/bin/docker" } else { "docker" };
        let mut cmd = Command::new(bin);
        cmd.arg("-H").arg(format!("unix://{}", self.dir.path().join("docker.sock").display()));
        cmd
    }

    fn exec_root(dir: &Path) -> PathBuf {
        dir.join("exec")
    }

    async fn start(image: &str) -> Swarm {
        let dir = tempfile::tempdir().expect("docker dir");
        let dockerd = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.path().join("root"))
            .arg("--exec-root")
            .arg(Self::exec_root(dir.path()))
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.path().join("docker.sock").display()))
            .args(["--iptables=false", "--ip-masq=false"])
            // Without it, every task makes dockerd ask a registry for the image.
            .env("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("dockerd.log")).map(Stdio::from).unwrap_or(Stdio::null()))
            .spawn()
            .expect("start dockerd (apt-get install docker.io)");
        let mut swarm = Swarm { dockerd, dir, image: String::new() };
        until("dockerd", Instant::now(), async || {
            swarm
                .docker()
                .args(["version", "--format", "{{.Server.Version}}"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .await;
        run(swarm.docker().args(["swarm", "init", "--advertise-addr", "127.0.0.1"]));
        // The same image, from the same local registry, pinned by digest.
        run(swarm.docker().args(["pull", "-q", image]));
        let pinned = run(swarm.docker().args(["image", "inspect", "--format", "{{index .RepoDigests 0}}", image]));
        swarm.image = pinned.trim().to_owned();
        let warm = swarm.single().await;
        eprintln!("swarm: ready with {} (the first task took {warm:.0} ms)", swarm.image);
        swarm
    }

    fn create_args(&self, name: &str, n: u32) -> Vec<String> {
        [
            "service",
            "create",
            "--detach",
            "--quiet",
            "--no-resolve-image",
            "--name",
            name,
            "--replicas",
            &n.to_string(),
            "--stop-grace-period",
            &format!("{STOP_TIMEOUT_SECONDS}s"),
            "--limit-memory",
            &format!("{MEMORY_MIB}M"),
            "--update-monitor",
            "1s",
            &self.image,
            "sh",
            "-c",
            WORKLOAD,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    fn running(&self, name: &str) -> u32 {
        let out = self
            .docker()
            .args(["service", "ps", name, "--filter", "desired-state=running", "--format", "{{.CurrentState}}"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        u32::try_from(out.lines().filter(|l| l.starts_with("Running")).count()).unwrap_or(0)
    }

    fn containers(&self) -> usize {
        run(self.docker().args(["ps", "-q"])).lines().filter(|l| !l.trim().is_empty()).count()
    }

    async fn converge(&self, name: &str, n: u32) -> f64 {
        let started = Instant::now();
        run(self.docker().args(self.create_args(name, n)));
        until("swarm to converge", started, async || self.running(name) == n).await
    }

    async fn scale_to_zero(&self, name: &str) -> f64 {
        let started = Instant::now();
        run(self.docker().args(["service", "scale", "--detach", &format!("{name}=0")]));
        let secs = until("swarm's containers to go", started, async || self.containers() == 0).await;
        run(self.docker().args(["service", "rm", name]));
        secs
    }

    async fn single(&self) -> f64 {
        let name = format!("single-{}", uuid::Uuid::now_v7().simple());
        let ms = self.converge(&name, 1).await * 1000.0;
        run(self.docker().args(["service", "rm", &name]));
        until("the swarm task to stop", Instant::now(), async || self.containers() == 0).await;
        ms
    }

    async fn rolling(&self, name: &str, n: u32) -> f64 {
        self.converge(name, n).await;
        let started = Instant::now();
        // All at once, new before old: what Berth's default (200% / 100%) does.
        run(self.docker().args([
            "service",
            "update",
            "--detach",
            "--quiet",
            "--env-add",
            "REVISION=2",
            "--update-parallelism",
            &n.to_string(),
            "--update-order",
            "start-first",
            name,
        ]));
        let secs = until("swarm's rollout", started, async || {
            let state = self
                .docker()
                .args(["service", "inspect", name, "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            state == "completed" && self.running(name) == n
        })
        .await;
        self.scale_to_zero(name).await;
        secs
    }

    fn footprint(&self) -> Footprint {
        let exec = Self::exec_root(self.dir.path()).to_string_lossy().into_owned();
        let containerd = pids_of("containerd", &exec);
        let shims = pids_of("containerd-shim-runc-v2", &exec);
        let dockerd = self.dockerd.id();
        Footprint {
            orchestrator_mib: rss_mib(dockerd),
            containerd_mib: containerd.iter().map(|p| rss_mib(*p)).sum(),
            shims_mib: shims.iter().map(|p| rss_mib(*p)).sum(),
            cpu_seconds: cpu_seconds(dockerd) + containerd.iter().map(|p| cpu_seconds(*p)).sum::<f64>(),
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let services = self.docker().args(["service", "ls", "-q"]).output().map(|o| o.stdout).unwrap_or_default();
        for id in String::from_utf8_lossy(&services).split_whitespace() {
            let _ = self.docker().args(["service", "rm", id]).output();
        }
        let _ = self.docker().args(["swarm", "leave", "--force"]).output();
        let exec = Self::exec_root(self.dir.path()).to_string_lossy().into_owned();
        let leftovers: Vec<u32> =
            pids_of("containerd-shim-runc-v2", &exec).into_iter().chain(pids_of("containerd", &exec)).collect();
        let _ = Command::new("kill").args(["-TERM", &self.dockerd.id().to_string()]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) && !matches!(self.dockerd.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.dockerd.kill();
        let _ = self.dockerd.wait();
        for pid in leftovers {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
        }
        for bridge in ["docker0", "docker_gwbridge"] {
            let _ = Command::new("ip").args(["link", "delete", bridge]).stderr(Stdio::null()).status();
        }
        let root = self.dir.path().join("root");
        let _ = Command::new("umount").arg("-R").arg(&root).stderr(Stdio::null()).status();
        let _ = Command::new("umount").arg("-R").arg(Self::exec_root(self.dir.path())).stderr(Stdio::null()).status();
    }
}

/// PostgreSQL single-row commits per second: one INSERT per transaction, 1,000 of them.
async fn postgres_commit_rate(url: &str) -> f64 {
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await.expect("connect");
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_commits (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL)")
        .execute(&pool)
        .await
        .expect("create");
    let n = 1000;
    let started = Instant::now();
    for _ in 0..n {
        sqlx::query("INSERT INTO bench_commits (at) VALUES (now())").execute(&pool).await.expect("insert");
    }
    let rate = f64::from(n) / started.elapsed().as_secs_f64();
    sqlx::query("DROP TABLE bench_commits").execute(&pool).await.expect("drop");
    rate
}

/// One system's figures for one round.
#[derive(Default, Debug)]
struct Round {
    converge_secs: Vec<(u32, f64)>,
    scale_down_secs: Vec<(u32, f64)>,
    single_ms: Vec<f64>,
    rolling_secs: f64,
    at_100: Footprint,
    cpu_per_task: f64,
    /// Berth only: see [`Berth::stages`].
    stages_100: [f64; 3],
}

enum Peer {
    Berth(Berth),
    Swarm(Swarm),
}

impl Peer {
    fn name(&self) -> &'static str {
        match self {
            Peer::Berth(_) => "berth",
            Peer::Swarm(_) => "swarm",
        }
    }
    async fn converge(&self, name: &str, n: u32) -> f64 {
        match self {
            Peer::Berth(b) => b.converge(name, n).await,
            Peer::Swarm(s) => s.converge(name, n).await,
        }
    }
    async fn scale_to_zero(&self, name: &str) -> f64 {
        match self {
            Peer::Berth(b) => b.scale_to_zero(name).await,
            Peer::Swarm(s) => s.scale_to_zero(name).await,
        }
    }
    async fn single(&self) -> f64 {
        match self {
            Peer::Berth(b) => b.single().await,
            Peer::Swarm(s) => s.single().await,
        }
    }
    async fn rolling(&self, name: &str, n: u32) -> f64 {
        match self {
            Peer::Berth(b) => b.rolling(name, n).await,
            Peer::Swarm(s) => s.rolling(name, n).await,
        }
    }
    fn footprint(&self) -> Footprint {
        match self {
            Peer::Berth(b) => b.footprint(),
            Peer::Swarm(s) => s.footprint(),
        }
    }

    async fn round(&self, r: usize) -> Round {
        let mut out = Round::default();
        for n in CONVERGE {
            let name = format!("converge-{n}-{r}");
            let cpu_before = self.footprint().cpu_seconds;
            let secs = self.converge(&name, n).await;
            if n == 100 {
                if let Peer::Berth(b) = self {
                    out.stages_100 = b.stages(&name).await;
                }
                // Settled: what 100 running tasks cost.
                tokio::time::sleep(Duration::from_secs(3)).await;
                out.at_100 = self.footprint();
                out.cpu_per_task = (out.at_100.cpu_seconds - cpu_before) / f64::from(n);
            }
            out.converge_secs.push((n, secs));
            out.scale_down_secs.push((n, self.scale_to_zero(&name).await));
            eprintln!("  {} round {r}: {n} replicas up in {secs:.2} s", self.name());
        }
        for _ in 0..SINGLES {
            out.single_ms.push(self.single().await);
        }
        out.rolling_secs = self.rolling(&format!("rolling-{r}"), ROLLING).await;
        eprintln!("  {} round {r}: rolling update of {ROLLING} in {:.2} s", self.name(), out.rolling_secs);
        out
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// Prints each system's median over the rounds, and Berth's ratio to Swarm.
fn report(rounds: &[(&'static str, Round)]) {
    let of = |system: &str, pick: &dyn Fn(&Round) -> f64| {
        median(rounds.iter().filter(|(s, _)| *s == system).map(|(_, r)| pick(r)).collect())
    };
    let both = |workload: &str, metric: &str, pick: &dyn Fn(&Round) -> f64, ratio_of: &str| {
        let (b, s) = (of("berth", pick), of("swarm", pick));
        println!("BENCH peers.{workload}.berth {metric}={b:.3}");
        println!("BENCH peers.{workload}.swarm {metric}={s:.3}");
        let ratio = if ratio_of == "higher_is_better" { b / s } else { s / b };
        println!("BENCH peers.{workload}.ratio berth_vs_swarm={ratio:.2}");
    };
    for (i, n) in CONVERGE.iter().enumerate() {
        let secs = move |r: &Round| r.converge_secs[i].1;
        both(&format!("converge_{n}"), "seconds", &secs, "lower_is_better");
        let rate = move |r: &Round| f64::from(*n) / r.converge_secs[i].1;
        both(&format!("converge_{n}"), "tasks_per_s", &rate, "higher_is_better");
        let down = move |r: &Round| r.scale_down_secs[i].1;
        both(&format!("scale_down_{n}"), "seconds", &down, "lower_is_better");
    }
    let p = |q: f64| {
        move |r: &Round| {
            let mut v = r.single_ms.clone();
            v.sort_by(f64::total_cmp);
            percentile(&v, q)
        }
    };
    both("single_task", "p50_ms", &p(0.5), "lower_is_better");
    both("single_task", "p99_ms", &p(0.99), "lower_is_better");
    both(&format!("rolling_update_{ROLLING}"), "seconds", &|r: &Round| r.rolling_secs, "lower_is_better");
    both("memory_at_100", "orchestrator_mib", &|r: &Round| r.at_100.orchestrator_mib, "lower_is_better");
    both("memory_at_100", "containerd_mib", &|r: &Round| r.at_100.containerd_mib, "lower_is_better");
    both(
        "memory_at_100",
        "orchestrator_and_containerd_mib",
        &|r: &Round| r.at_100.orchestrator_mib + r.at_100.containerd_mib,
        "lower_is_better",
    );
    both("memory_at_100", "shims_mib", &|r: &Round| r.at_100.shims_mib, "lower_is_better");
    both("cpu", "cpu_seconds_per_task_started", &|r: &Round| r.cpu_per_task, "lower_is_better");
    for (i, stage) in ["all_placed_s", "first_running_s", "last_running_s"].iter().enumerate() {
        println!("BENCH peers.converge_100.berth stage_{stage}={:.3}", of("berth", &|r: &Round| r.stages_100[i]));
    }
}

async fn bench() {
    let socket = PathBuf::from(env("BERTH_TEST_CONTAINERD_SOCKET"));
    let image = env("BERTH_TEST_IMAGE");
    let berth_bin = PathBuf::from(env("BERTH_TEST_BERTH_BIN"));

    let floor = ctr_run_floor(&socket, &image);
    let mut sorted = floor.clone();
    sorted.sort_by(f64::total_cmp);
    let floor_p50 = percentile(&sorted, 0.5);
    report_ms("peers.floor.ctr_run_rm", floor);
    let commits = postgres_commit_rate(&env("BERTH_TEST_POSTGRES_URL")).await;
    println!("BENCH peers.floor.postgres single_row_commits_per_s={commits:.0}");

    let peers = [Peer::Berth(Berth::start(&berth_bin, &socket, &image).await), Peer::Swarm(Swarm::start(&image).await)];
    let mut rounds = Vec::new();
    for r in 0..ROUNDS {
        for peer in &peers {
            rounds.push((peer.name(), peer.round(r).await));
        }
    }
    report(&rounds);
    let berth_p50 = median(
        rounds
            .iter()
            .filter(|(s, _)| *s == "berth")
            .map(|(_, r)| {
                let mut v = r.single_ms.clone();
                v.sort_by(f64::total_cmp);
                percentile(&v, 0.5)
            })
            .collect(),
    );
    println!("BENCH peers.single_task.berth over_ctr_run_floor={:.2}", berth_p50 / floor_p50);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let started = Instant::now();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    // Interrupted or not, the systems are dropped here, which stops them.
    let interrupted = tokio::select! {
        () = bench() => false,
        _ = tokio::signal::ctrl_c() => true,
        _ = term.recv() => true,
    };
    eprintln!("peers benchmark took {:.0} s", started.elapsed().as_secs_f64());
    if interrupted {
        eprintln!("interrupted: everything it started is stopped");
        std::process::exit(130);
    }
}
