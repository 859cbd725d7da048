//! The container tests' harness: the private containerd and registry that
//! `cargo xtask test` starts (with a test image built from busybox-static),
//! and real host agents, in this process or as `berth agent` processes.

use std::path::PathBuf;
use std::sync::Arc;

use berth_api::hosts::Resources;
use berth_host_agent::containerd::ContainerdConfig;
use berth_host_agent::containerd::client::Containerd;
use containerd_client::services::v1::GetRequest;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{Client, TestServer};

/// What `cargo xtask test` started for the container tests.
#[derive(Clone, Debug)]
pub struct ContainerEnv {
    pub socket: PathBuf,
    /// `127.0.0.1:PORT/berth/busybox:1`
    pub image: String,
    pub registry: String,
    /// A registry that wants a username and password, with the same image.
    pub private_registry: String,
    pub private_user: String,
    pub private_password: String,
    /// The `berth` binary: the containers' logger, and `berth agent` for restart tests.
    pub berth_bin: PathBuf,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `cargo xtask test`, which starts containerd and a registry")
    })
}

impl ContainerEnv {
    pub fn from_env() -> ContainerEnv {
        ContainerEnv {
            socket: PathBuf::from(var("BERTH_TEST_CONTAINERD_SOCKET")),
            image: var("BERTH_TEST_IMAGE"),
            registry: var("BERTH_TEST_REGISTRY"),
            private_registry: var("BERTH_TEST_PRIVATE_REGISTRY"),
            private_user: var("BERTH_TEST_PRIVATE_USER"),
            private_password: var("BERTH_TEST_PRIVATE_PASSWORD"),
            berth_bin: PathBuf::from(var("BERTH_TEST_BERTH_BIN")),
        }
    }

    /// A client of the agent's containerd namespace, to look at what really runs.
    pub async fn containerd(&self) -> Containerd {
        Containerd::connect(&self.socket, "berth", "overlayfs").await.expect("connect to the test containerd")
    }

    /// containerd's view of a task's container: (status, pid), or None when there is none.
    pub async fn container_status(&self, task_id: &str, index: usize) -> Option<(String, u32)> {
        let ctr = self.containerd().await;
        let got = ctr
            .tasks()
            .get(ctr.req(GetRequest { container_id: format!("{task_id}-{index}"), exec_id: String::new() }))
            .await
            .ok()?;
        let p = got.into_inner().process?;
        let status = containerd_client::types::v1::Status::try_from(p.status)
            .map(|s| s.as_str_name().to_owned())
            .unwrap_or_default();
        Some((status, p.pid))
    }
}

/// The tests' network: its own bridge, apart from a `berth dev` on this machine
/// (`cargo xtask test` clears what killed tests leave in it).
pub const TEST_BRIDGE: &str = "berthtest0";
pub const TEST_SUBNET: &str = "10.214.0.0/16";
/// MANAGED tasks' per-account bridges in the tests, and their addresses.
pub const TEST_MANAGED_BRIDGE_PREFIX: &str = "berthtm";
pub const TEST_MANAGED_RANGE: &str = "10.216.0.0/16";

pub fn test_containerd_config(env: &ContainerEnv, state_dir: &std::path::Path) -> ContainerdConfig {
    let mut config = ContainerdConfig::with_defaults(env.socket.clone(), state_dir.to_owned(), env.berth_bin.clone());
    config.network.bridge = TEST_BRIDGE.into();
    config.network.subnet = TEST_SUBNET.into();
    config.network.managed_bridge_prefix = TEST_MANAGED_BRIDGE_PREFIX.into();
    config.network.managed_range = TEST_MANAGED_RANGE.into();
    config
}

/// A real agent (containerd runtime, logs endpoint) running in this process.
pub struct InProcessAgent {
    pub host_id: String,
    pub state_dir: tempfile::TempDir,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl InProcessAgent {
    pub async fn start(server: &TestServer, tenant: &Client, cluster: &str, env: &ContainerEnv) -> InProcessAgent {
        let token = tenant
            .post(&format!("/v1/clusters/{cluster}/registration-tokens"), json!({"max_uses": 1}))
            .await
            .expect(201)["token"]
            .as_str()
            .expect("token")
            .to_owned();
        Self::join(server, token, env).await
    }

    /// Registers with a token made elsewhere (a capacity pool's, say) and runs.
    pub async fn join(server: &TestServer, token: String, env: &ContainerEnv) -> InProcessAgent {
        let state_dir = tempfile::tempdir().expect("state dir");
        let config = test_containerd_config(env, state_dir.path());
        let agent = berth_host_agent::start_containerd(config, "127.0.0.1:0".parse().expect("addr"), None)
            .await
            .expect("start the containerd runtime");
        let identity = berth_host_agent::identify(&berth_host_agent::AgentConfig {
            server: format!("http://{}", server.addr),
            registration_token: token,
            state_dir: state_dir.path().to_owned(),
            hostname: format!("ctr-{}", uuid::Uuid::now_v7().simple()),
            total: Resources { cpu: 2048, memory: 4096 },
            reserved: Resources::default(),
            dynamic_port_range: [40000, 40999],
            attributes: Default::default(),
            runtime: berth_api::auth::RuntimeDetails { name: "containerd".into(), version: "test".into() },
        })
        .await
        .expect("register the host");
        let host_id = identity.host_id.to_string();
        let (stop, stop_rx) = watch::channel(false);
        let runtime: Arc<dyn berth_host_agent::Runtime> = agent.runtime;
        let task = tokio::spawn(async move {
            let _ = berth_host_agent::run(identity, runtime, Some(agent.logs_endpoint), stop_rx).await;
        });
        InProcessAgent { host_id, state_dir, stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// What most container tests start from: a control plane, the tenant
/// `acme` with a cluster `prod`, and one real agent in it.
pub struct ClusterWithAgent {
    pub env: ContainerEnv,
    pub server: TestServer,
    pub tenant: Client,
    pub agent: InProcessAgent,
}

impl ClusterWithAgent {
    pub async fn start() -> ClusterWithAgent {
        Self::start_on(crate::Backend::Postgres).await
    }

    pub async fn start_on(backend: crate::Backend) -> ClusterWithAgent {
        let env = ContainerEnv::from_env();
        let server = TestServer::start(backend).await;
        let tenant = server.tenant("acme").await;
        tenant.create_cluster("prod").await;
        let agent = InProcessAgent::start(&server, &tenant, "prod", &env).await;
        ClusterWithAgent { env, server, tenant, agent }
    }

    pub async fn finish(self) {
        self.agent.stop().await;
    }
}

/// Asks the task to stop and waits until it has.
pub async fn stop_task(c: &Client, cluster: &str, task: &str) -> Value {
    c.post(&format!("/v1/clusters/{cluster}/tasks/{task}/stop"), json!({})).await.expect(200);
    wait_task(c, cluster, task, 60, "STOPPED", |t| t["last_status"] == "STOPPED").await
}

/// Registers `family` with these containers (the test image filled in where `image` is missing).
pub async fn register(c: &Client, env: &ContainerEnv, family: &str, mut body: Value) -> Value {
    body["family"] = json!(family);
    if let Some(list) = body["container_definitions"].as_array_mut() {
        for def in list {
            if def.get("image").is_none() {
                def["image"] = json!(env.image);
            }
        }
    }
    c.post("/v1/task-definitions", body).await.expect(201)
}

/// Runs one task and returns its id.
pub async fn run_one(c: &Client, cluster: &str, family: &str) -> String {
    let run = c.post(&format!("/v1/clusters/{cluster}/tasks"), json!({"task_definition": family})).await.expect(201);
    assert_eq!(run["failures"], json!([]), "the task was not placed: {run}");
    run["tasks"][0]["id"].as_str().expect("task id").to_owned()
}

/// Polls the task until `check` holds (up to `secs` seconds) and returns it.
pub async fn wait_task(
    c: &Client,
    cluster: &str,
    task: &str,
    secs: u64,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    c.wait_for(&format!("/v1/clusters/{cluster}/tasks/{task}"), &format!("task {task} to be {what}"), secs, check).await
}

/// The task's logs as text.
pub async fn logs(c: &Client, cluster: &str, task: &str, query: &str) -> String {
    let resp = c.get(&format!("/v1/clusters/{cluster}/tasks/{task}/logs{query}")).await;
    assert_eq!(resp.status.as_u16(), 200, "logs: {}", resp.body);
    match resp.body {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
