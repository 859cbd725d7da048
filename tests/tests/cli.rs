//! The `berth` CLI as a user runs it: the real binary against the real
//! server, its output formats, exit codes and profiles; and the README's
//! tour, run from the README itself on `berth dev` with real containers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use berth_api::hosts::Resources;
use berth_tests::simulated::SimAgent;
use berth_tests::{Auth, Backend, TestDb, TestServer, test_config};
use serde_json::Value;

fn berth_bin() -> PathBuf {
    PathBuf::from(std::env::var("BERTH_TEST_BERTH_BIN").expect("BERTH_TEST_BERTH_BIN: run with cargo xtask test"))
}

/// Runs `berth` with a private config dir (so no real profile is touched).
struct Cli {
    config: tempfile::TempDir,
    env: Vec<(String, String)>,
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self.stdout
    }
    fn json(self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

impl Cli {
    fn new() -> Cli {
        Cli { config: tempfile::tempdir().expect("dir"), env: Vec::new() }
    }

    fn run_with(&self, args: &[&str], stdin: Option<&str>, extra_env: &[(&str, &str)]) -> Ran {
        let mut cmd = Command::new(berth_bin());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.config.path())
            .env("XDG_CONFIG_HOME", self.config.path())
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run berth");
        if let Some(input) = stdin {
            use std::io::Write as _;
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        }
        let Output { status, stdout, stderr } = child.wait_with_output().expect("berth ran");
        Ran {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Ran {
        self.run_with(args, None, &[])
    }
}

async fn run_blocking(cli: &std::sync::Arc<Cli>, args: &[&str]) -> Ran {
    let (cli, args): (_, Vec<String>) = (cli.clone(), args.iter().map(|s| (*s).to_owned()).collect());
    tokio::task::spawn_blocking(move || cli.run(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_configures_prints_and_exits_as_documented() {
    let t = TestDb::new(Backend::Postgres).await;
    let mut config = test_config(&t.url);
    config.agent.heartbeat_interval = Duration::from_secs(1);
    let s = TestServer::start_with(t, config).await;
    let tenant = s.tenant("acme").await;
    let Auth::SigV4 { access_key_id, secret, .. } = tenant.auth.clone() else { panic!() };
    let endpoint = format!("http://{}", s.addr);
    let cli = std::sync::Arc::new(Cli::new());

    // No profile yet: a usage error that says what to do.
    let none = cli.run(&["clusters", "list"]);
    assert_eq!(none.code, 2, "{}", none.stderr);
    assert!(none.stderr.contains("hint: run `berth configure`"), "{}", none.stderr);

    // `berth configure` writes the profile and checks it with one call.
    let configured = cli.run_with(
        &[
            "configure",
            "--endpoint",
            &endpoint,
            "--access-key-id",
            &access_key_id,
            "--region",
            "local",
            "--secret-from-stdin",
        ],
        Some(&format!("{secret}\n")),
        &[],
    );
    assert_eq!(configured.code, 0, "{}", configured.stderr);
    assert!(configured.stderr.contains("Checked: the key works"), "{}", configured.stderr);
    let file = std::fs::read_to_string(cli.config.path().join("berth/credentials")).expect("credentials file");
    assert!(file.contains("[default]") && file.contains(&access_key_id));

    // Output formats.
    let made = cli.run(&["clusters", "create", "prod", "--tag", "team=core", "-o", "json"]).json();
    assert_eq!((made["name"].as_str(), made["tags"]["team"].as_str()), (Some("prod"), Some("core")));
    let table = cli.run(&["clusters", "list"]).ok();
    assert!(table.lines().next().is_some_and(|h| h.contains("NAME") && h.contains("ACTIVE TASKS")), "{table}");
    assert!(table.contains("prod") && table.contains("team=core"), "{table}");
    let yaml = cli.run(&["clusters", "get", "prod", "-o", "yaml"]).ok();
    assert!(yaml.contains("name: prod"), "{yaml}");
    assert_eq!(cli.run(&["clusters", "get", "prod", "--query", "name"]).ok().trim(), "prod");

    // Exit codes and one-line errors with hints.
    let missing = cli.run(&["clusters", "get", "nope"]);
    assert_eq!(missing.code, 3);
    assert!(missing.stderr.starts_with("berth: ResourceNotFound: "), "{}", missing.stderr);
    assert!(missing.stderr.contains("[request "), "{}", missing.stderr);
    let invalid = cli.run(&["clusters", "create", "has space"]);
    assert_eq!(invalid.code, 6, "{}", invalid.stderr);
    assert!(invalid.stderr.contains("hint: fix `name`"), "{}", invalid.stderr);
    assert_eq!(cli.run(&["clusters", "create", "prod"]).code, 4);
    let wrong = cli.run_with(&["clusters", "list"], None, &[("BERTH_SECRET_ACCESS_KEY", "not-the-secret")]);
    assert_eq!(wrong.code, 5, "{}", wrong.stderr);
    let down = cli.run_with(&["clusters", "list"], None, &[("BERTH_ENDPOINT", "http://127.0.0.1:9")]);
    assert_eq!(down.code, 8, "{}", down.stderr);
    assert!(down.stderr.contains("hint: is the control plane running?"), "{}", down.stderr);
    assert_eq!(cli.run(&["tasks", "run", "web", "--wait", "--count"]).code, 2, "clap usage errors are 2");

    // An ECS task definition registers, with warnings for what Berth lacks.
    let ecs = cli.config.path().join("ecs.json");
    std::fs::write(
        &ecs,
        r#"{"family": "web", "networkMode": "bridge", "executionRoleArn": "arn:aws:iam::1:role/x",
            "containerDefinitions": [{"name": "app", "image": "127.0.0.1:5000/busybox:1", "memory": 64,
              "command": ["sleep", "3600"], "environment": [{"name": "MODE", "value": "prod"}],
              "logConfiguration": {"logDriver": "awslogs"}}]}"#,
    )
    .expect("write");
    let registered = cli.run(&["task-definitions", "register", ecs.to_str().expect("path"), "-o", "json"]);
    assert!(registered.stderr.contains("warning: executionRoleArn"), "{}", registered.stderr);
    assert!(registered.stderr.contains("logConfiguration"), "{}", registered.stderr);
    let td = registered.json();
    assert_eq!(td["container_definitions"][0]["environment"]["MODE"], "prod");

    // Tasks and services on a simulated host (a test double that runs no containers).
    let dir = tempfile::tempdir().expect("dir");
    let agent =
        SimAgent::start(&tenant, &endpoint, "prod", dir.path(), "sim", Resources { cpu: 4096, memory: 4096 }, &[])
            .await;
    let id = run_blocking(&cli, &["tasks", "run", "web", "-c", "prod", "--wait", "--query", "id"]).await.ok();
    let task = cli.run(&["tasks", "get", id.trim(), "-c", "prod", "-o", "json"]).json();
    assert_eq!(task["last_status"], "RUNNING");
    let stopped =
        run_blocking(&cli, &["tasks", "stop", id.trim(), "-c", "prod", "--wait", "--query", "last_status"]).await.ok();
    assert_eq!(stopped.trim(), "STOPPED");

    let svc = run_blocking(
        &cli,
        &[
            "services",
            "create",
            "api",
            "-c",
            "prod",
            "--task-definition",
            "web",
            "--desired-count",
            "2",
            "--min-healthy-time",
            "1",
            "--wait",
            "-o",
            "json",
        ],
    )
    .await
    .json();
    assert_eq!((svc["running_count"].as_u64(), svc["healthy_count"].as_u64()), (Some(2), Some(2)));
    run_blocking(&cli, &["services", "scale", "api", "3", "-c", "prod", "--wait"]).await.ok();
    let deployed = run_blocking(
        &cli,
        &["services", "deploy", "api", "-c", "prod", "--env", "app:MODE=canary", "--wait", "-o", "json"],
    )
    .await
    .json();
    assert_eq!(deployed["task_definition"], "web:2");
    assert_eq!(deployed["healthy_count"], 3);
    let history = cli.run(&["services", "deployments", "api", "-c", "prod", "--query", "deployments.*.state"]).ok();
    assert_eq!(history.lines().collect::<Vec<_>>(), ["COMPLETED", "COMPLETED"]);
    let nothing = cli.run(&["services", "deploy", "api", "-c", "prod"]);
    assert_eq!(nothing.code, 2);
    assert!(nothing.stderr.contains("nothing to deploy"), "{}", nothing.stderr);
    let events = cli.run(&["events", "--type", "service.event", "-o", "json"]).json();
    assert!(events["events"].as_array().is_some_and(|e| !e.is_empty()), "{events}");

    // `berth events -f` follows: a cluster made after it started shows up as a JSON line.
    let mut follow = Command::new(berth_bin());
    follow
        .args(["events", "-f", "--type", "cluster.created", "-o", "json"])
        .env_clear()
        .env("HOME", cli.config.path())
        .env("XDG_CONFIG_HOME", cli.config.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut follower = follow.spawn().expect("berth events -f");
    let stdout = follower.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        std::io::BufReader::new(stdout).lines().next().and_then(Result::ok)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    cli.run(&["clusters", "create", "followed"]).ok();
    let line = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::task::spawn_blocking(move || reader.join().expect("reader")),
    )
    .await;
    // Killing it also ends a reader still waiting, should the event never come.
    let _ = follower.kill();
    let _ = follower.wait();
    let line = line.expect("the followed event within 15 s").expect("join");
    let event: Value = serde_json::from_str(&line.expect("a followed event")).expect("one JSON event per line");
    assert_eq!(event["type"], "cluster.created");
    assert_eq!(event["detail"]["name"], "followed", "only events after it started: {event}");

    let completions = cli.run(&["completions", "bash"]).ok();
    assert!(completions.contains("_berth()") && completions.contains("task-definitions"), "bash completions");
    agent.kill().await;
    s.stop().await;
}

/// The README's tour block, run as written on `berth dev` with real
/// containers. Two things differ from a user's machine: the image is the
/// test registry's (no Docker Hub here), and `sudo ctr` reaches the test's
/// private containerd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_runs_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).expect("README");
    let tour = readme.split("## A five-minute tour").nth(1).expect("the tour section");
    let block = tour.split("```sh\n").nth(1).and_then(|b| b.split("\n```").next()).expect("the tour's code block");
    let image = std::env::var("BERTH_TEST_IMAGE").expect("BERTH_TEST_IMAGE");
    let socket = std::env::var("BERTH_TEST_CONTAINERD_SOCKET").expect("BERTH_TEST_CONTAINERD_SOCKET");
    assert!(block.contains("busybox:1.36"), "the tour names its image");
    let script = block.replace("busybox:1.36", &image);

    let home = tempfile::tempdir().expect("home");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let bin = berth_bin();
    let env = |cmd: &mut Command| {
        cmd.env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("BERTH_LISTEN", format!("127.0.0.1:{port}"))
            .env("BERTH_CONTAINERD_SOCKET", &socket)
            .env_remove("BERTH_PROFILE")
            .env_remove("BERTH_ENDPOINT");
    };
    let log = std::fs::File::create(home.path().join("dev.log")).expect("log");
    let mut dev = Command::new(&bin);
    dev.arg("dev").stdout(log.try_clone().expect("log")).stderr(log);
    env(&mut dev);
    let mut dev = dev.spawn().expect("berth dev");
    let log_text = || std::fs::read_to_string(home.path().join("dev.log")).unwrap_or_default();
    for _ in 0..300 {
        if log_text().contains("Berth dev is running") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(log_text().contains("host agent:  host "), "berth dev started its agent: {}", log_text());

    let prelude = format!(
        "set -euo pipefail\nexport PATH={}:$PATH\nsudo() {{ \"$@\"; }}\nctr() {{ command ctr --address {socket} \"$@\"; }}\ncd {}\n",
        bin.parent().expect("bin dir").display(),
        home.path().display()
    );
    let mut bash = Command::new("bash");
    bash.arg("-c").arg(format!("{prelude}{script}")).stdout(Stdio::piped()).stderr(Stdio::piped());
    env(&mut bash);
    let out = tokio::task::spawn_blocking(move || bash.output().expect("bash")).await.expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();

    // Ctrl-C stops the containers berth dev started: one more task to see that.
    let mut run = Command::new(&bin);
    run.args(["tasks", "run", "hello", "--wait", "--query", "id"]).current_dir(home.path());
    env(&mut run);
    let last = tokio::task::spawn_blocking(move || run.output().expect("berth tasks run")).await.expect("join");
    let last_task = String::from_utf8_lossy(&last.stdout).trim().to_owned();
    let _ = Command::new("kill").args(["-INT", &dev.id().to_string()]).status();
    let stopped = tokio::task::spawn_blocking(move || dev.wait()).await.expect("join").expect("berth dev exited");
    assert!(out.status.success(), "the tour failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nberth dev:\n{}", log_text());
    assert!(stopped.success(), "berth dev exits cleanly: {}", log_text());

    // `berth tasks get`: the first `ID  <id>` line of two words.
    let task_line =
        stdout.lines().find(|l| l.starts_with("ID ") && l.split_whitespace().count() == 2).expect("the task's details");
    let task = task_line.split_whitespace().nth(1).expect("its id");
    assert!(stdout.contains(&format!("{task}-0")) && stdout.contains("RUNNING"), "ctr shows it running:\n{stdout}");
    assert!(stdout.contains("hello\n"), "its logs:\n{stdout}");
    assert!(stdout.contains("app STOPPED exit 0"), "stopped cleanly:\n{stdout}");
    assert!(stdout.contains("bye\n"), "the logs outlive the task:\n{stdout}");
    assert!(stdout.contains("hello:2 COMPLETED primary"), "the deployment completed:\n{stdout}");
    assert!(stdout.contains("deleted service web"), "{stdout}");
    assert!(stdout.contains("task.state_changed") && stdout.contains("run_task"), "events and audit:\n{stdout}");
    assert!(!last_task.is_empty(), "a last task ran: {}", String::from_utf8_lossy(&last.stderr));
    assert!(log_text().contains("task(s) on berth dev's host..."), "berth dev stopped its tasks: {}", log_text());
    let left = Command::new("ctr").args(["--address", &socket, "-n", "berth", "tasks", "ls"]).output().expect("ctr");
    let left = String::from_utf8_lossy(&left.stdout).into_owned();
    assert!(!left.contains(&last_task), "Ctrl-C stopped the container berth dev started:\n{left}");
}

/// The operator makes a pool and a token from the CLI, a simulated host
/// joins with it, and a tenant runs a MANAGED task and reads its usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_capacity_from_the_cli() {
    let s = TestServer::start(Backend::Postgres).await;
    let endpoint = format!("http://{}", s.addr);
    let as_cli = |c: &berth_tests::Client| {
        let Auth::SigV4 { access_key_id, secret, .. } = c.auth.clone() else { panic!("signing client") };
        let mut cli = Cli::new();
        cli.env = vec![
            ("BERTH_ENDPOINT".into(), endpoint.clone()),
            ("BERTH_ACCESS_KEY_ID".into(), access_key_id),
            ("BERTH_SECRET_ACCESS_KEY".into(), secret),
        ];
        std::sync::Arc::new(cli)
    };
    let op = as_cli(&s.operator);
    let made =
        run_blocking(&op, &["capacity-pools", "create", "shared", "--priority", "10", "-o", "json"]).await.json();
    assert_eq!((made["name"].as_str(), made["priority"].as_i64()), (Some("shared"), Some(10)));
    let token = run_blocking(&op, &["pools", "token", "shared", "-o", "json"]).await.json();
    let dir = tempfile::tempdir().expect("dir");
    let _host = berth_tests::simulated::SimAgent::join(
        &endpoint,
        token["token"].as_str().expect("token"),
        dir.path(),
        "pool-0",
        Resources { cpu: 4096, memory: 8192 },
        &[],
    )
    .await;
    let table = run_blocking(&op, &["capacity-pools", "list"]).await.ok();
    assert!(table.contains("shared") && table.contains("1/1") && table.contains("0/4096"), "{table}");

    let tenant = s.tenant("acme").await;
    tenant.create_cluster("prod").await;
    tenant
        .post(
            "/v1/task-definitions",
            serde_json::json!({"family": "web", "cpu": 512, "memory": 1024, "container_definitions": [
                {"name": "app", "image": "127.0.0.1:5000/busybox:latest"}]}),
        )
        .await
        .expect(201);
    let cli = as_cli(&tenant);
    let ran = run_blocking(&cli, &["tasks", "run", "web", "--cluster", "prod", "--managed", "--wait", "-o", "json"])
        .await
        .json();
    // One waited-for task prints as the task itself.
    let task = &ran;
    assert_eq!((task["launch_type"].as_str(), task["last_status"].as_str()), (Some("MANAGED"), Some("RUNNING")));
    let usage = run_blocking(&cli, &["usage", "-o", "json"]).await.json();
    assert_eq!(usage["records"][0]["task_id"], task["id"]);
    let denied = run_blocking(&cli, &["usage", "--all-accounts"]).await;
    assert_ne!(denied.code, 0, "a tenant may not read every account's usage");
    let bad = run_blocking(&cli, &["usage", "--from", "yesterday"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--from"), "{}", bad.stderr);
}
