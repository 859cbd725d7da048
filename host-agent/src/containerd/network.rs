//! Task networks: one named network namespace per task (so every container
//! of the task shares it, and removal works after an agent restart), set
//! up by calling the standard CNI plugins directly (bridge, host-local,
//! portmap, loopback), the way a container runtime does.
//!
//! MANAGED tasks (a shared host's tenants) get a bridge per account instead
//! of the host's one, without host ports, and the isolation chains drop
//! whatever crosses from one of Berth's bridges to another: Docker's
//! DOCKER-ISOLATION scheme. Tasks of one account reach each other; other
//! accounts' tasks, and the host's EXTERNAL tasks, are unreachable.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_api::agent::{AgentTask, HostPortBinding};
use berth_api::capacity::LaunchType;
use berth_api::task_definitions::{NetworkMode, Protocol};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use super::RuntimeError;

/// How the host's task networks are built.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Where the CNI plugins are (Debian: /usr/lib/cni).
    pub cni_bin_dirs: Vec<PathBuf>,
    pub bridge: String,
    pub subnet: String,
    /// host-local's allocation records.
    pub ipam_dir: PathBuf,
    /// MANAGED tasks' bridges are `{prefix}{n}`, one per account.
    pub managed_bridge_prefix: String,
    /// A /16 whose /24s are the accounts' subnets (so 256 accounts per host).
    pub managed_range: String,
}

impl NetworkConfig {
    pub fn with_defaults() -> Self {
        NetworkConfig {
            cni_bin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            bridge: "berth0".into(),
            subnet: "10.213.0.0/16".into(),
            // host-local keeps one allocation record per network: machine-wide, like the bridge.
            ipam_dir: PathBuf::from("/var/lib/cni/networks"),
            managed_bridge_prefix: "berthm".into(),
            managed_range: "10.215.0.0/16".into(),
        }
    }

    /// The bridge and subnet of an account's MANAGED tasks on this host,
    /// allocated once and remembered beside host-local's records (machine-wide, like the bridges).
    fn account_network(&self, account: &berth_api::AccountId) -> Result<(String, String), RuntimeError> {
        use std::io::{Read as _, Seek as _, Write as _};
        let fail = |e: std::io::Error| RuntimeError::Network(format!("account networks: {e}"));
        let prefix = self.managed_range.strip_suffix(".0.0/16").ok_or_else(|| {
            RuntimeError::Network(format!("the managed range {} is not an a.b.0.0/16", self.managed_range))
        })?;
        std::fs::create_dir_all(&self.ipam_dir).map_err(fail)?;
        let path = self.ipam_dir.join(format!("{}-accounts.json", self.managed_bridge_prefix));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(fail)?;
        // Agents on one machine share the bridges, so they share the table: one at a time.
        file.lock().map_err(fail)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(fail)?;
        let mut table: std::collections::BTreeMap<String, u8> = serde_json::from_str(&text).unwrap_or_default();
        let key = account.to_string();
        let index = match table.get(&key) {
            Some(i) => *i,
            None => {
                let used: std::collections::BTreeSet<u8> = table.values().copied().collect();
                let free = (0..=u8::MAX)
                    .find(|i| !used.contains(i))
                    .ok_or_else(|| RuntimeError::Network("this host has given all 256 account networks out".into()))?;
                table.insert(key, free);
                let bytes = serde_json::to_vec(&table).map_err(|e| RuntimeError::Network(e.to_string()))?;
                file.set_len(0).map_err(fail)?;
                file.rewind().map_err(fail)?;
                file.write_all(&bytes).map_err(fail)?;
                file.sync_all().map_err(fail)?;
                free
            }
        };
        Ok((format!("{}{index}", self.managed_bridge_prefix), format!("{prefix}.{index}.0/24")))
    }
}

fn network_name(bridge: &str) -> String {
    format!("berth-{bridge}")
}

/// The plugin chain: the bridge (masquerading per container only for records
/// made before the subnet-wide rule), then portmap when the task maps ports.
fn plugins(
    config: &NetworkConfig,
    bridge: &str,
    subnet: &str,
    per_task_masquerade: bool,
    port_mappings: bool,
) -> Vec<Value> {
    let mut plugins = vec![json!({
        "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": per_task_masquerade, "hairpinMode": true,
        "ipam": {
            "type": "host-local", "dataDir": config.ipam_dir,
            "ranges": [[{"subnet": subnet}]], "routes": [{"dst": "0.0.0.0/0"}]
        }
    })];
    if port_mappings {
        plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}));
    }
    plugins
}

/// A task's network as set up, kept in its record so it can be torn down.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TaskNetwork {
    /// The named namespace (`/run/netns/<name>`); none in host mode.
    pub netns: Option<String>,
    /// Each plugin's ADD result, in order, for DEL.
    pub cni_results: Vec<Value>,
    pub ip: Option<String>,
    /// A MANAGED task's account bridge and subnet (absent: the host's bridge, with port mappings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_bridge: Option<(String, String)>,
    /// Outbound traffic is masqueraded by one rule for the bridge's subnet,
    /// not by the bridge plugin per task (false in records of older agents,
    /// whose teardown must remove their per-task rules).
    #[serde(default)]
    pub subnet_masquerade: bool,
}

impl TaskNetwork {
    pub fn netns_path(&self) -> Option<PathBuf> {
        self.netns.as_ref().map(|n| PathBuf::from("/run/netns").join(n))
    }
}

fn port_mappings(ports: &[HostPortBinding]) -> Vec<Value> {
    ports
        .iter()
        .map(|p| {
            json!({
                "hostPort": p.host_port, "containerPort": p.container_port,
                "protocol": match p.protocol { Protocol::Tcp => "tcp", Protocol::Udp => "udp" }
            })
        })
        .collect()
}

async fn run(cmd: &mut Command, what: &str) -> Result<String, RuntimeError> {
    let out = cmd.output().await.map_err(|e| RuntimeError::Network(format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(RuntimeError::Network(format!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn netns_name(task_id: &berth_api::TaskId) -> String {
    format!("berth-{}", task_id.as_uuid().simple())
}

/// Sets up the task's network: nothing for host mode, a namespace with
/// loopback for none, and the bridge with port mappings for bridge (for a
/// MANAGED task: its account's bridge, isolated, without port mappings).
pub async fn set_up(config: &NetworkConfig, task: &AgentTask) -> Result<TaskNetwork, RuntimeError> {
    let (task_id, mode, ports) = (&task.task_id, task.network_mode, &task.port_bindings);
    let managed = task.launch_type == LaunchType::Managed;
    if mode == NetworkMode::Host {
        if managed {
            return Err(RuntimeError::Network("a MANAGED task may not use the host's network".into()));
        }
        return Ok(TaskNetwork::default());
    }
    let name = netns_name(task_id);
    if !Path::new("/run/netns").join(&name).exists() {
        run(Command::new("ip").args(["netns", "add", &name]), "ip netns add").await?;
    }
    let account_bridge = if managed && mode == NetworkMode::Bridge {
        let (bridge, subnet) = config.account_network(&task.account_id)?;
        Some((bridge, subnet))
    } else {
        None
    };
    let mut network =
        TaskNetwork { netns: Some(name.clone()), account_bridge, subnet_masquerade: true, ..Default::default() };
    run(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]), "bringing up loopback").await?;
    if mode == NetworkMode::None {
        return Ok(network);
    }
    let netns_path = network.netns_path().unwrap_or_default();
    let mappings = port_mappings(ports);
    let mut previous: Option<Value> = None;
    let (bridge, subnet) = bridge_of(config, &network);
    if network.account_bridge.is_some() {
        isolate(config, &bridge).await?;
    }
    masquerade(&bridge, &subnet).await?;
    let port_mapped = network.account_bridge.is_none() && !ports.is_empty();
    for plugin in plugins(config, &bridge, &subnet, false, port_mapped) {
        let result = invoke(config, &bridge, &plugin, "ADD", task_id, &netns_path, previous.as_ref(), &mappings).await;
        match result {
            Ok(r) => {
                network.cni_results.push(r.clone());
                previous = Some(r);
            }
            Err(e) => {
                // Undo what was done, so a retry starts clean.
                let _ = tear_down(config, task_id, &network, ports).await;
                return Err(e);
            }
        }
    }
    network.ip = previous
        .as_ref()
        .and_then(|r| r.get("ips"))
        .and_then(|ips| ips.get(0))
        .and_then(|ip| ip.get("address"))
        .and_then(|a| a.as_str())
        .map(|a| a.split('/').next().unwrap_or(a).to_owned());
    Ok(network)
}

/// Undoes [`set_up`]; what is already gone is fine.
pub async fn tear_down(
    config: &NetworkConfig,
    task_id: &berth_api::TaskId,
    network: &TaskNetwork,
    ports: &[HostPortBinding],
) -> Result<(), RuntimeError> {
    let Some(name) = &network.netns else { return Ok(()) };
    let netns_path = network.netns_path().unwrap_or_default();
    let (bridge, subnet) = bridge_of(config, network);
    // What ADD ran: portmap only when it left a result of its own.
    let plugins = plugins(config, &bridge, &subnet, !network.subnet_masquerade, network.cni_results.len() > 1);
    // portmap finds the rules to remove from the mappings, so DEL gets them too.
    let mappings = port_mappings(ports);
    let mut first_error = None;
    if !network.cni_results.is_empty() {
        for (i, plugin) in plugins.iter().enumerate().rev() {
            let previous = network.cni_results.get(i).or(network.cni_results.last());
            if let Err(e) = invoke(config, &bridge, plugin, "DEL", task_id, &netns_path, previous, &mappings).await {
                first_error.get_or_insert(e);
            }
        }
    }
    if Path::new("/run/netns").join(name).exists() {
        run(Command::new("ip").args(["netns", "delete", name]), "ip netns delete").await?;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One MASQUERADE rule for a bridge's subnet, as Docker has for docker0,
/// instead of the bridge plugin's chain per task: that took two of the
/// plugin's iptables runs per start and per stop, the largest part of a
/// task's network set-up. Checked once per bridge per agent process.
async fn masquerade(bridge: &str, subnet: &str) -> Result<(), RuntimeError> {
    let key = format!("masquerade {bridge}");
    if already_set_up(&key) {
        return Ok(());
    }
    let rule = ["POSTROUTING", "-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"];
    let present = Command::new("iptables")
        .args(["-w", "-t", "nat", "-C"])
        .args(rule)
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if !present {
        run(Command::new("iptables").args(["-w", "-t", "nat", "-A"]).args(rule), "iptables masquerade").await?;
    }
    set_up_done(key);
    Ok(())
}

/// The host-wide rules this agent process has already checked or added
/// (iptables runs are the slow part of a task's start; the rules outlive tasks).
fn set_up_rules() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
    static DONE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> = std::sync::OnceLock::new();
    DONE.get_or_init(Default::default)
}

fn already_set_up(key: &str) -> bool {
    set_up_rules().lock().map(|d| d.contains(key)).unwrap_or(false)
}

fn set_up_done(key: String) {
    if let Ok(mut d) = set_up_rules().lock() {
        d.insert(key);
    }
}

/// The bridge and subnet a task's network is on.
fn bridge_of(config: &NetworkConfig, network: &TaskNetwork) -> (String, String) {
    network.account_bridge.clone().unwrap_or_else(|| (config.bridge.clone(), config.subnet.clone()))
}

/// The chains that keep Berth's bridges apart, as Docker's isolation
/// chains do: a packet from a MANAGED account bridge to any other of
/// Berth's bridges (another account's, or the host's EXTERNAL one), and
/// from the host's bridge to an account bridge, is dropped. Idempotent.
async fn isolate(config: &NetworkConfig, bridge: &str) -> Result<(), RuntimeError> {
    const STAGE1: &str = "BERTH-ISOLATION-1";
    const STAGE2: &str = "BERTH-ISOLATION-2";
    let key = format!("isolation {bridge}");
    if already_set_up(&key) {
        return Ok(());
    }
    for chain in [STAGE1, STAGE2] {
        // Fails when the chain exists, which is fine.
        let _ = Command::new("iptables").args(["-w", "-N", chain]).stderr(Stdio::null()).status().await;
    }
    let ensure = |rule: Vec<String>, insert: bool| async move {
        let mut check = vec!["-w".to_owned(), "-C".to_owned()];
        check.extend(rule.iter().cloned());
        let present =
            Command::new("iptables").args(&check).stderr(Stdio::null()).status().await.is_ok_and(|s| s.success());
        if !present {
            let mut add = vec!["-w".to_owned(), if insert { "-I" } else { "-A" }.to_owned()];
            add.extend(rule);
            run(Command::new("iptables").args(&add), "iptables").await?;
        }
        Ok::<(), RuntimeError>(())
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
    ensure(s(&["FORWARD", "-j", STAGE1]), true).await?;
    for b in [bridge, config.bridge.as_str()] {
        ensure(s(&[STAGE1, "-i", b, "!", "-o", b, "-j", STAGE2]), false).await?;
        ensure(s(&[STAGE2, "-o", b, "-j", "DROP"]), false).await?;
    }
    set_up_done(key);
    Ok(())
}

/// Runs one CNI plugin as the CNI spec says: configuration on stdin, the
/// command and container in the environment, the result on stdout.
#[allow(clippy::too_many_arguments)]
async fn invoke(
    config: &NetworkConfig,
    bridge: &str,
    plugin: &Value,
    command: &str,
    task_id: &berth_api::TaskId,
    netns: &Path,
    previous: Option<&Value>,
    mappings: &[Value],
) -> Result<Value, RuntimeError> {
    let kind = plugin.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
    let binary = config.cni_bin_dirs.iter().map(|d| d.join(&kind)).find(|p| p.exists()).ok_or_else(|| {
        RuntimeError::Network(format!(
            "the CNI plugin {kind} is not installed (apt-get install containernetworking-plugins)"
        ))
    })?;
    let mut conf = plugin.clone();
    conf["cniVersion"] = json!("1.0.0");
    conf["name"] = json!(network_name(bridge));
    if let Some(p) = previous {
        conf["prevResult"] = p.clone();
    }
    if kind == "portmap" {
        conf["runtimeConfig"] = json!({ "portMappings": mappings });
    }
    let path = std::env::join_paths(&config.cni_bin_dirs).unwrap_or_default();
    let mut child = Command::new(&binary)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", task_id.as_uuid().simple().to_string())
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RuntimeError::Network(format!("running {}: {e}", binary.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        let bytes = serde_json::to_vec(&conf).unwrap_or_default();
        stdin.write_all(&bytes).await.map_err(|e| RuntimeError::Network(format!("CNI {kind}: {e}")))?;
    }
    let out = child.wait_with_output().await.map_err(|e| RuntimeError::Network(format!("CNI {kind}: {e}")))?;
    if !out.status.success() {
        let msg = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_owned());
        return Err(RuntimeError::Network(format!("CNI {kind} {command}: {msg}")));
    }
    if command == "DEL" || out.stdout.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&out.stdout).map_err(|e| RuntimeError::Network(format!("CNI {kind} result: {e}")))
}

/// `hosts` and `resolv.conf` for the task: its own name, and the host's resolvers.
pub fn write_etc_files(dir: &Path, hostname: &str, network: &TaskNetwork) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let ip_line = network.ip.as_ref().map(|ip| format!("{ip}\t{hostname}\n")).unwrap_or_default();
    std::fs::write(
        dir.join("hosts"),
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip_line}"),
    )?;
    std::fs::write(dir.join("hostname"), format!("{hostname}\n"))?;
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    // A loopback resolver of the host is unreachable from a namespace of the task's own.
    let own_namespace = network.netns.is_some();
    let usable: String = resolv
        .lines()
        .filter(|l| !(own_namespace && l.starts_with("nameserver") && (l.contains(" 127.") || l.contains(" ::1"))))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("resolv.conf"), usable)
}
