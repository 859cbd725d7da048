//! `berth agent`: run a host agent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use berth_api::auth::RuntimeDetails;
use berth_api::hosts::Resources;
use berth_host_agent::containerd::ContainerdConfig;
use berth_host_agent::{AgentConfig, SimulatedRuntime};
use clap::Args;
use futures::StreamExt as _;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The control plane's URL.
    #[arg(long, env = "BERTH_SERVER")]
    pub server: String,
    /// The cluster to join, or with `--pool` the operator's capacity pool (the
    /// registration token decides; this names it in logs).
    #[arg(long, visible_alias = "pool", env = "BERTH_CLUSTER")]
    pub cluster: String,
    /// A registration token from `POST /v1/clusters/{cluster}/registration-tokens`
    /// (or `/v1/capacity-pools/{pool}/registration-tokens`).
    #[arg(long, env = "BERTH_REGISTRATION_TOKEN", hide_env_values = true)]
    pub registration_token: String,
    /// Where the agent keeps its identity, so a restart keeps the same host.
    #[arg(long, env = "BERTH_STATE_DIR")]
    pub state_dir: PathBuf,
    /// An attribute for placement constraints, `key=value`; repeat for more.
    #[arg(long = "attribute", value_parser = parse_attribute)]
    pub attributes: Vec<(String, String)>,
    /// CPU units to offer (1024 per core) [default: all of the machine's].
    #[arg(long)]
    pub cpu: Option<u32>,
    /// Memory to offer in MiB [default: all of the machine's].
    #[arg(long)]
    pub memory: Option<u32>,
    /// CPU units kept back for the system.
    #[arg(long, default_value_t = 0)]
    pub reserved_cpu: u32,
    /// MiB kept back for the system.
    #[arg(long, default_value_t = 256)]
    pub reserved_memory: u32,
    /// The host ports dynamic port mappings come from.
    #[arg(long, default_value = "32768-60999", value_parser = parse_range)]
    pub port_range: (u16, u16),
    /// containerd's socket.
    #[arg(long, env = "BERTH_CONTAINERD_SOCKET", default_value = "/run/containerd/containerd.sock")]
    pub containerd_socket: PathBuf,
    /// The containerd namespace the agent's containers and images live in.
    #[arg(long, default_value = "berth")]
    pub containerd_namespace: String,
    /// containerd snapshotter for container filesystems [default: overlayfs where containerd has it, else native].
    #[arg(long, default_value = "auto")]
    pub snapshotter: String,
    /// A registry (`host:port`) to reach over plain HTTP; loopback registries always are. Repeat for more.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Where the agent serves container logs to the control plane.
    #[arg(long, env = "BERTH_LOGS_LISTEN", default_value = "0.0.0.0:7412")]
    pub logs_listen: std::net::SocketAddr,
    /// The URL the control plane reaches the logs endpoint at [default: http://<hostname>:<port>].
    #[arg(long, env = "BERTH_LOGS_ADVERTISE")]
    pub logs_advertise: Option<String>,
    /// Where the CNI plugins are.
    #[arg(long = "cni-bin-dir", default_values = ["/usr/lib/cni", "/opt/cni/bin"])]
    pub cni_bin_dirs: Vec<PathBuf>,
    /// The bridge tasks in bridge network mode are attached to.
    #[arg(long, default_value = "berth0")]
    pub bridge: String,
    /// The subnet task addresses on the bridge come from.
    #[arg(long, default_value = "10.213.0.0/16")]
    pub bridge_subnet: String,
    /// Hours a stopped task's logs are kept.
    #[arg(long, default_value_t = 24)]
    pub log_retention_hours: u64,
    /// Run N simulated hosts in this process: a test double that reports tasks RUNNING without
    /// running anything, for tests and benchmarks of the control plane.
    #[arg(long, value_name = "N")]
    pub simulate: Option<u32>,
}

fn parse_attribute(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?} is not key=value"))
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or_else(|| format!("{s:?} is not LOW-HIGH"))?;
    let (a, b) = (a.parse::<u16>().map_err(|e| e.to_string())?, b.parse::<u16>().map_err(|e| e.to_string())?);
    if a == 0 || b < a {
        return Err("the range must be LOW-HIGH with 1 <= LOW <= HIGH".into());
    }
    Ok((a, b))
}

/// The machine's CPU units and memory in MiB.
pub fn machine() -> (u32, u32) {
    let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().trim_end_matches(" kB").trim().to_owned()))
        })
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1 << 20);
    (cores * 1024, u32::try_from(mem_kib / 1024).unwrap_or(u32::MAX))
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let _telemetry = berth_control_plane::telemetry::init(Default::default());
    match args.simulate {
        Some(n) => run_simulated(args, n).await,
        None => run_containerd(args).await,
    }
}

/// The containerd settings `berth agent` and `berth dev` share.
pub fn containerd_config(args: &AgentArgs) -> anyhow::Result<ContainerdConfig> {
    let logger = std::env::current_exe().context("finding the berth binary, which is the containers' logger")?;
    let mut config = ContainerdConfig::with_defaults(args.containerd_socket.clone(), args.state_dir.clone(), logger);
    config.namespace = args.containerd_namespace.clone();
    config.snapshotter = args.snapshotter.clone();
    config.insecure_registries = args.insecure_registries.clone();
    config.network.cni_bin_dirs = args.cni_bin_dirs.clone();
    config.network.bridge = args.bridge.clone();
    config.network.subnet = args.bridge_subnet.clone();
    config.log_retention = std::time::Duration::from_secs(args.log_retention_hours * 3600);
    Ok(config)
}

/// The host's registration, as `berth agent` describes it.
pub fn agent_config(args: &AgentArgs, runtime: RuntimeDetails) -> AgentConfig {
    let (cpu, memory) = machine();
    AgentConfig {
        server: args.server.clone(),
        registration_token: args.registration_token.clone(),
        state_dir: args.state_dir.clone(),
        hostname: hostname(),
        total: Resources { cpu: args.cpu.unwrap_or(cpu), memory: args.memory.unwrap_or(memory) },
        reserved: Resources { cpu: args.reserved_cpu, memory: args.reserved_memory },
        dynamic_port_range: [args.port_range.0, args.port_range.1],
        attributes: args.attributes.iter().cloned().collect(),
        runtime,
    }
}

async fn run_containerd(args: AgentArgs) -> anyhow::Result<()> {
    let config = containerd_config(&args)?;
    let advertise = args.logs_advertise.clone().or_else(|| {
        args.logs_listen.ip().is_unspecified().then(|| format!("http://{}:{}", hostname(), args.logs_listen.port()))
    });
    let agent = berth_host_agent::start_containerd(config, args.logs_listen, advertise)
        .await
        .with_context(|| format!("starting the containerd runtime on {}", args.containerd_socket.display()))?;
    let version = agent.runtime.containerd_version().await?;
    let identity = berth_host_agent::identify(&agent_config(
        &args,
        RuntimeDetails { name: "containerd".into(), version: version.clone() },
    ))
    .await
    .context("registering the host")?;
    println!(
        "host {} joined cluster {} at {} (containerd {version}, logs at {})",
        identity.host_id, args.cluster, args.server, agent.logs_endpoint.url
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(berth_host_agent::run(identity, agent.runtime, Some(agent.logs_endpoint), stop_rx));
    super::shutdown_signal().await;
    // Containers keep running: a restarted agent re-adopts them.
    let _ = stop_tx.send(true);
    let _ = running.await;
    Ok(())
}

async fn run_simulated(args: AgentArgs, n: u32) -> anyhow::Result<()> {
    let (cpu, memory) = machine();
    let attributes: BTreeMap<String, String> = args.attributes.iter().cloned().collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // One HTTP client for all: the hosts share its connections (an idle
    // long-poll each, plus what heartbeats and reports borrow).
    let http = berth_host_agent::client::shared_http()?;
    let configs = (0..n).map(|i| {
        let config = AgentConfig {
            server: args.server.clone(),
            registration_token: args.registration_token.clone(),
            state_dir: args.state_dir.join(format!("sim-{i}")),
            hostname: format!("{}-sim-{i}", hostname()),
            total: Resources { cpu: args.cpu.unwrap_or(cpu), memory: args.memory.unwrap_or(memory) },
            reserved: Resources { cpu: args.reserved_cpu, memory: args.reserved_memory },
            dynamic_port_range: [args.port_range.0, args.port_range.1],
            attributes: attributes.clone(),
            runtime: berth_api::auth::RuntimeDetails {
                name: "simulated".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
        };
        (i, config)
    });
    // Registering is a transaction each: a few at a time, not thousands at once.
    let mut registrations = futures::stream::iter(configs)
        .map(|(i, config)| {
            let http = http.clone();
            async move {
                berth_host_agent::identify_with(&config, &http)
                    .await
                    .with_context(|| format!("registering simulated host {i}"))
            }
        })
        .buffer_unordered(16);
    let mut agents = Vec::new();
    while let Some(identity) = registrations.next().await {
        let client = berth_host_agent::AgentClient::with_http(&identity?, http.clone());
        let runtime = Arc::new(SimulatedRuntime::default());
        agents.push(tokio::spawn(berth_host_agent::run_with(client, runtime, None, stop_rx.clone())));
    }
    println!("{n} simulated host(s) joined cluster {} at {}", args.cluster, args.server);
    super::shutdown_signal().await;
    let _ = stop_tx.send(true);
    for a in agents {
        let _ = a.await;
    }
    Ok(())
}
