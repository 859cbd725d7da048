//! The OCI runtime spec of one container: the definition laid over the
//! image's config, with Docker's defaults for what a definition leaves out
//! (capabilities, masked and read-only paths, no new privileges).

use std::path::{Path, PathBuf};

use berth_api::agent::AgentTask;
use berth_api::task_definitions::{ContainerDefinition, NetworkMode};
use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxNamespace, LinuxNamespaceType,
    LinuxPids, LinuxResources, Mount, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};

use super::RuntimeError;
use crate::registry::ImageConfig;

/// Docker's default capability set.
const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The CFS period the CPU quota is expressed in.
const CPU_PERIOD_MICROS: u64 = 100_000;

/// Everything about the task's surroundings a container's spec needs.
pub struct SpecContext<'a> {
    pub task: &'a AgentTask,
    pub container: &'a ContainerDefinition,
    pub image: &'a ImageConfig,
    /// The uid and gid to run as, names already resolved.
    pub user: (u32, u32),
    /// The task's network namespace (none in host mode).
    pub netns: Option<&'a Path>,
    pub hostname: &'a str,
    pub cgroups_path: String,
    /// The task's `hosts`, `hostname` and `resolv.conf`.
    pub etc_dir: &'a Path,
    pub default_pids_limit: i64,
}

/// The process the container runs: the definition's entry point and
/// command over the image's, as Docker combines them.
pub fn process_args(container: &ContainerDefinition, image: &ImageConfig) -> Vec<String> {
    let entry = container.entry_point.clone().or_else(|| image.config.entrypoint.clone()).unwrap_or_default();
    // A new entry point drops the image's command, as `docker run --entrypoint` does.
    let cmd = match (&container.command, &container.entry_point) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => image.config.cmd.clone().unwrap_or_default(),
    };
    entry.into_iter().chain(cmd).collect()
}

/// The image's environment with the definition's on top.
pub fn environment(container: &ContainerDefinition, image: &ImageConfig) -> Vec<String> {
    let mut env: Vec<String> = image
        .config
        .env
        .clone()
        .unwrap_or_else(|| vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()]);
    for (k, v) in &container.environment {
        env.retain(|e| e.split_once('=').map_or(e != k, |(ek, _)| ek != k));
        env.push(format!("{k}={v}"));
    }
    env
}

/// The definition's working directory, else the image's, else `/`.
pub fn working_dir(container: &ContainerDefinition, image: &ImageConfig) -> String {
    container
        .working_directory
        .clone()
        .or_else(|| image.config.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_owned())
}

fn rlimit_type(name: &str) -> Option<PosixRlimitType> {
    Some(match name {
        "core" => PosixRlimitType::RlimitCore,
        "cpu" => PosixRlimitType::RlimitCpu,
        "data" => PosixRlimitType::RlimitData,
        "fsize" => PosixRlimitType::RlimitFsize,
        "locks" => PosixRlimitType::RlimitLocks,
        "memlock" => PosixRlimitType::RlimitMemlock,
        "msgqueue" => PosixRlimitType::RlimitMsgqueue,
        "nice" => PosixRlimitType::RlimitNice,
        "nofile" => PosixRlimitType::RlimitNofile,
        "nproc" => PosixRlimitType::RlimitNproc,
        "rss" => PosixRlimitType::RlimitRss,
        "rtprio" => PosixRlimitType::RlimitRtprio,
        "rttime" => PosixRlimitType::RlimitRttime,
        "sigpending" => PosixRlimitType::RlimitSigpending,
        "stack" => PosixRlimitType::RlimitStack,
        _ => return None,
    })
}

fn mib(m: u32) -> i64 {
    i64::from(m) * 1024 * 1024
}

fn bind(destination: &str, source: PathBuf, readonly: bool) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(source));
    let mut options = vec!["rbind".to_owned(), "rprivate".to_owned()];
    if readonly {
        options.push("ro".to_owned());
    }
    m.set_options(Some(options));
    m
}

pub fn build(ctx: &SpecContext<'_>) -> Result<Spec, RuntimeError> {
    let c = ctx.container;
    let task = ctx.task;
    let args = process_args(c, ctx.image);
    if args.is_empty() {
        return Err(RuntimeError::Spec(format!(
            "container {:?}: neither the definition nor the image says what to run",
            c.name
        )));
    }
    let (uid, gid) = ctx.user;

    let mut process = Process::default();
    process.set_args(Some(args));
    process.set_env(Some(environment(c, ctx.image)));
    process.set_cwd(PathBuf::from(working_dir(c, ctx.image)));
    let mut user = User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    process.set_user(user);
    process.set_no_new_privileges(Some(true));
    let caps: oci_spec::runtime::Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
    let mut capabilities = LinuxCapabilities::default();
    capabilities.set_bounding(Some(caps.clone()));
    capabilities.set_effective(Some(caps.clone()));
    capabilities.set_permitted(Some(caps));
    capabilities.set_inheritable(Some(Default::default()));
    capabilities.set_ambient(Some(Default::default()));
    process.set_capabilities(Some(capabilities));
    let rlimit = |typ: PosixRlimitType, soft: u64, hard: u64| -> Result<PosixRlimit, RuntimeError> {
        PosixRlimitBuilder::default()
            .typ(typ)
            .soft(soft)
            .hard(hard)
            .build()
            .map_err(|e| RuntimeError::Spec(e.to_string()))
    };
    // Without ulimits, the container inherits the shim's limits, as with Docker.
    let mut rlimits: Vec<PosixRlimit> = Vec::new();
    for u in &c.ulimits {
        let typ = rlimit_type(&u.name).ok_or_else(|| RuntimeError::Spec(format!("unknown ulimit {:?}", u.name)))?;
        rlimits.retain(|r| r.typ() != typ);
        rlimits.push(rlimit(
            typ,
            u64::try_from(u.soft_limit).unwrap_or(u64::MAX),
            u64::try_from(u.hard_limit).unwrap_or(u64::MAX),
        )?);
    }
    process.set_rlimits(Some(rlimits));

    let mut spec = Spec::default();
    spec.set_process(Some(process));
    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(c.readonly_root_filesystem));
    spec.set_root(Some(root));
    spec.set_hostname(Some(ctx.hostname.to_owned()));

    let mut mounts = oci_spec::runtime::get_default_mounts();
    for (file, name) in [("/etc/hosts", "hosts"), ("/etc/hostname", "hostname"), ("/etc/resolv.conf", "resolv.conf")] {
        mounts.push(bind(file, ctx.etc_dir.join(name), false));
    }
    spec.set_mounts(Some(mounts));

    // A container's share of the task: its own CPU units, else an even split.
    let count = u32::try_from(task.containers.len()).unwrap_or(1).max(1);
    let shares = u64::from(c.cpu.unwrap_or(task.cpu / count)).max(2);
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(Some(shares));
    if task.cpu > 0 {
        // The task's CPU is a ceiling as well as a share, as on Fargate.
        cpu.set_quota(Some(i64::try_from(u64::from(task.cpu) * CPU_PERIOD_MICROS / 1024).unwrap_or(i64::MAX)));
        cpu.set_period(Some(CPU_PERIOD_MICROS));
    }
    let mut memory = LinuxMemory::default();
    let hard = c.memory.or((task.containers.len() == 1 && task.memory > 0).then_some(task.memory));
    if let Some(m) = hard {
        memory.set_limit(Some(mib(m)));
        // No swap beyond the limit, so the limit means what it says.
        memory.set_swap(Some(mib(m)));
    }
    if let Some(r) = c.memory_reservation {
        memory.set_reservation(Some(mib(r)));
    }
    let mut pids = LinuxPids::default();
    pids.set_limit(c.pids_limit.map_or(ctx.default_pids_limit, i64::from));
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_allow(false);
    deny_all.set_access(Some("rwm".into()));
    let mut resources = LinuxResources::default();
    resources.set_cpu(Some(cpu));
    resources.set_memory(Some(memory));
    resources.set_pids(Some(pids));
    resources.set_devices(Some(vec![deny_all]));

    let mut namespaces = Vec::new();
    for typ in [LinuxNamespaceType::Pid, LinuxNamespaceType::Ipc, LinuxNamespaceType::Uts, LinuxNamespaceType::Mount] {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(typ);
        namespaces.push(ns);
    }
    if task.network_mode != NetworkMode::Host {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::Network);
        ns.set_path(ctx.netns.map(Path::to_path_buf));
        namespaces.push(ns);
    }
    let mut linux = oci_spec::runtime::Linux::default();
    linux.set_resources(Some(resources));
    linux.set_cgroups_path(Some(PathBuf::from(&ctx.cgroups_path)));
    linux.set_namespaces(Some(namespaces));
    linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|s| (*s).to_owned()).collect()));
    linux.set_readonly_paths(Some(READONLY_PATHS.iter().map(|s| (*s).to_owned()).collect()));
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// The signal that asks a container to stop: the image's `StopSignal`, else SIGTERM.
pub fn stop_signal(image: &ImageConfig) -> u32 {
    const TERM: u32 = 15;
    let Some(s) = image.config.stop_signal.as_deref() else { return TERM };
    if let Ok(n) = s.parse::<u32>() {
        return n;
    }
    let name = s.trim_start_matches("SIG");
    match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "WINCH" => 28,
        _ => TERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ImageRunConfig;

    fn container(json: serde_json::Value) -> ContainerDefinition {
        serde_json::from_value(json).expect("a valid definition")
    }

    #[test]
    fn entry_point_and_command_combine_as_docker_does() {
        let image = ImageConfig {
            config: ImageRunConfig {
                entrypoint: Some(vec!["/entry".into()]),
                cmd: Some(vec!["default".into()]),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = container(serde_json::json!({"name": "a", "image": "x"}));
        assert_eq!(process_args(&c, &image), ["/entry", "default"]);
        let c = container(serde_json::json!({"name": "a", "image": "x", "command": ["run"]}));
        assert_eq!(process_args(&c, &image), ["/entry", "run"]);
        let c = container(serde_json::json!({"name": "a", "image": "x", "entry_point": ["/bin/sh"]}));
        assert_eq!(process_args(&c, &image), ["/bin/sh"]);
    }

    #[test]
    fn environment_overrides_the_images() {
        let image = ImageConfig {
            config: ImageRunConfig { env: Some(vec!["PATH=/bin".into(), "A=1".into()]), ..Default::default() },
            ..Default::default()
        };
        let c = container(serde_json::json!({"name": "a", "image": "x", "environment": {"A": "2", "B": "3"}}));
        assert_eq!(environment(&c, &image), ["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn stop_signals_come_from_the_image() {
        let mut image = ImageConfig::default();
        assert_eq!(stop_signal(&image), 15);
        image.config.stop_signal = Some("SIGQUIT".into());
        assert_eq!(stop_signal(&image), 3);
        image.config.stop_signal = Some("9".into());
        assert_eq!(stop_signal(&image), 9);
    }
}
