//! `berth dev`'s host agent: a real agent in the same process, on the
//! machine's containerd (or a private one `berth dev` starts when only the
//! binary is installed), joined to the operator account's `default` cluster.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_api::auth::{CreateRegistrationTokenRequest, Role, RuntimeDetails};
use berth_api::clusters::CreateClusterRequest;
use berth_api::hosts::Resources;
use berth_control_plane::app::{App, AppError};
use berth_control_plane::auth::Principal;
use berth_host_agent::containerd::ContainerdConfig;

pub const DEV_CLUSTER: &str = "default";
const SYSTEM_SOCKET: &str = "/run/containerd/containerd.sock";

/// A containerd `berth dev` started itself; stopped with it, after the
/// agent stopped its containers.
pub struct PrivateContainerd {
    child: Child,
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The socket to use: the given one, the machine's containerd, or a private
/// one under the data dir when only the binary is installed.
pub fn containerd(data_dir: &Path, socket: Option<PathBuf>) -> anyhow::Result<(PathBuf, Option<PrivateContainerd>)> {
    if let Some(s) = socket {
        return Ok((s, None));
    }
    if Path::new(SYSTEM_SOCKET).exists() {
        return Ok((PathBuf::from(SYSTEM_SOCKET), None));
    }
    let dir = data_dir.join("containerd");
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("containerd.sock");
    let config = format!(
        "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
         [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n",
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        sock = socket.display(),
        opt = dir.join("opt").display(),
    );
    std::fs::write(dir.join("containerd.toml"), config)?;
    let log = std::fs::File::create(dir.join("containerd.log"))?;
    let child = Command::new("containerd")
        .arg("--config")
        .arg(dir.join("containerd.toml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("containerd is not installed: apt-get install containerd runc containernetworking-plugins")?;
    let private = PrivateContainerd { child };
    for _ in 0..100 {
        if socket.exists() {
            return Ok((socket, Some(private)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the private containerd did not start; see {}", dir.join("containerd.log").display())
}

fn operator(account_id: berth_api::AccountId) -> Principal {
    Principal {
        account_id,
        access_key_id: None,
        role: Role::Admin,
        clusters: None,
        is_operator: true,
        via_session: false,
    }
}

/// Starts the agent: registers the host the first time (creating the
/// `default` cluster), and reuses its identity after that.
pub async fn start(app: &App, endpoint: &str, data_dir: &Path, socket: PathBuf) -> anyhow::Result<DevAgent> {
    let state_dir = data_dir.join("agent");
    let logger = std::env::current_exe().context("finding the berth binary, the containers' logger")?;
    let config = ContainerdConfig::with_defaults(socket.clone(), state_dir.clone(), logger);
    let agent = berth_host_agent::start_containerd(config, "127.0.0.1:0".parse()?, None)
        .await
        .with_context(|| format!("connecting to containerd at {}", socket.display()))?;
    let version = agent.runtime.containerd_version().await?;
    let token = if state_dir.join("identity.json").exists() {
        String::new()
    } else {
        let account = app.operator_account_id().await?.context("the dev database has no operator account")?;
        let principal = operator(account);
        let create = CreateClusterRequest { name: DEV_CLUSTER.into(), tags: Default::default(), client_token: None };
        match app.create_cluster(&principal, create, None).await {
            Ok(_) => {}
            // A data dir whose first agent start failed after making the cluster.
            Err(AppError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let token = app
            .create_registration_token(
                &principal,
                DEV_CLUSTER,
                CreateRegistrationTokenRequest {
                    expires_in_seconds: None,
                    max_uses: Some(1),
                    description: Some("berth dev's host agent".into()),
                },
                None,
            )
            .await?;
        token.value.token
    };
    let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    let identity = berth_host_agent::identify(&berth_host_agent::AgentConfig {
        server: endpoint.to_owned(),
        registration_token: token,
        state_dir,
        hostname: "dev".into(),
        total: Resources { cpu: cores * 1024, memory: super::agent::machine().1 },
        reserved: Resources { cpu: 0, memory: 256 },
        dynamic_port_range: [32768, 60999],
        attributes: Default::default(),
        runtime: RuntimeDetails { name: "containerd".into(), version: version.clone() },
    })
    .await?;
    let host = identity.host_id.to_string();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runtime: Arc<dyn berth_host_agent::Runtime> = agent.runtime;
    let logs = agent.logs_endpoint;
    let handle = {
        let runtime = runtime.clone();
        tokio::spawn(async move {
            if let Err(e) = berth_host_agent::run(identity, runtime, Some(logs), stop_rx).await {
                tracing::error!(error = %e, "the dev host agent stopped");
            }
        })
    };
    Ok(DevAgent { host, version, stop, runtime, handle })
}

/// `berth dev`'s host agent, running in the process.
pub struct DevAgent {
    pub host: String,
    pub version: String,
    stop: tokio::sync::watch::Sender<bool>,
    runtime: Arc<dyn berth_host_agent::Runtime>,
    handle: tokio::task::JoinHandle<()>,
}

impl DevAgent {
    /// Stops the containers this agent runs (while it can still report
    /// them stopped), then the agent. A task a service starts meanwhile is
    /// caught by the second sweep, once the agent takes no more work.
    pub async fn shutdown(self) {
        stop_all(self.runtime.as_ref()).await;
        let _ = self.stop.send(true);
        let _ = self.handle.await;
        stop_all(self.runtime.as_ref()).await;
    }
}

async fn stop_all(runtime: &dyn berth_host_agent::Runtime) {
    let running: Vec<_> = runtime
        .observed()
        .await
        .into_iter()
        .filter(|(_, status)| *status != berth_api::tasks::TaskStatus::Stopped)
        .map(|(task, _)| task)
        .collect();
    if !running.is_empty() {
        println!("Stopping {} task(s) on berth dev's host...", running.len());
    }
    futures::future::join_all(running.iter().map(|t| runtime.stop(*t))).await;
    // Stopping is asynchronous (each task's supervisor signals, waits out the
    // stop timeout, then kills): wait for it, within the longest stop timeout.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(130);
    while tokio::time::Instant::now() < deadline {
        let observed = runtime.observed().await;
        let still =
            observed.iter().filter(|(t, s)| running.contains(t) && *s != berth_api::tasks::TaskStatus::Stopped).count();
        if still == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    eprintln!("berth dev: some containers did not stop in time; the next start re-adopts them");
}
