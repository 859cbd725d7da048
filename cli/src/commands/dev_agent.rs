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

/// A containerd `berth dev` started itself; stopped with it (its containers'
/// shims live on, and are re-adopted next time).
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
pub async fn start(
    app: &App,
    endpoint: &str,
    data_dir: &Path,
    socket: PathBuf,
) -> anyhow::Result<(String, String, tokio::sync::watch::Sender<bool>)> {
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
    tokio::spawn(async move {
        if let Err(e) = berth_host_agent::run(identity, runtime, Some(logs), stop_rx).await {
            tracing::error!(error = %e, "the dev host agent stopped");
        }
    });
    Ok((host, version, stop))
}
