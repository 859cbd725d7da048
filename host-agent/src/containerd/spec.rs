//! The OCI runtime spec of one container: the definition laid over the
//! image's config, with Docker's defaults for what a definition leaves out
//! (capabilities, masked and read-only paths, no new privileges, a seccomp
//! filter).

use std::path::{Path, PathBuf};

use berth_api::agent::AgentTask;
use berth_api::capacity::LaunchType;
use berth_api::task_definitions::{ContainerDefinition, LINUX_CAPABILITIES, NetworkMode};
use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxNamespace, LinuxNamespaceType,
    LinuxPids, LinuxResources, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder, Mount, PosixRlimit, PosixRlimitBuilder, PosixRlimitType,
    Process, Root, Spec, User,
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

/// System calls a container may not make: those Docker's default profile
/// allows only with capabilities a container does not get (kernel modules,
/// mounts, namespaces, keyrings, clocks, tracing the kernel, reading other
/// processes' memory, swapping, rebooting). Docker's profile is an allow
/// list; this is the same line drawn as a deny list, so new harmless system
/// calls keep working. Other architectures' calls are killed by the filter.
const DENIED_SYSCALLS: [&str; 54] = [
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "fanotify_init",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "syslog",
    "_sysctl",
    "sysfs",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "vhangup",
];

/// clone(2) flags that make a new namespace: refused, as `unshare` is.
const CLONE_NAMESPACE_FLAGS: [u64; 7] =
    [0x0002_0000, 0x0200_0000, 0x0400_0000, 0x0800_0000, 0x1000_0000, 0x2000_0000, 0x4000_0000];

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// The seccomp filter every unprivileged container runs under.
pub fn default_seccomp() -> Result<LinuxSeccomp, RuntimeError> {
    let err = |e: oci_spec::OciSpecError| RuntimeError::Spec(format!("seccomp profile: {e}"));
    let deny = |names: Vec<String>, errno: u32| -> Result<LinuxSyscall, RuntimeError> {
        LinuxSyscallBuilder::default()
            .names(names)
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(errno)
            .build()
            .map_err(err)
    };
    let mut syscalls = vec![deny(DENIED_SYSCALLS.iter().map(|s| (*s).to_owned()).collect(), EPERM)?];
    // clone3 passes its flags in memory the filter cannot read: ENOSYS makes libc fall back to clone.
    syscalls.push(deny(vec!["clone3".into()], ENOSYS)?);
    for flag in CLONE_NAMESPACE_FLAGS {
        let arg = LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(flag)
            .value_two(flag)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .build()
            .map_err(err)?;
        let mut rule = deny(vec!["clone".into()], EPERM)?;
        rule.set_args(Some(vec![arg]));
        syscalls.push(rule);
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(syscalls)
        .build()
        .map_err(err)
}

/// A capability by the name task definitions use (`NET_ADMIN`, without `CAP_`).
fn capability(name: &str) -> Option<Capability> {
    name.parse().ok()
}

/// The container's capabilities: Docker's default set with the
/// definition's changes, or every capability when privileged.
fn capabilities_of(c: &ContainerDefinition) -> oci_spec::runtime::Capabilities {
    if c.privileged {
        return LINUX_CAPABILITIES.iter().filter_map(|n| capability(n)).collect();
    }
    let mut caps: oci_spec::runtime::Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
    if let Some(changes) = c.linux_parameters.as_ref().and_then(|l| l.capabilities.as_ref()) {
        caps.extend(changes.add.iter().filter_map(|n| capability(n)));
        for n in &changes.drop {
            if let Some(cap) = capability(n) {
                caps.remove(&cap);
            }
        }
    }
    caps
}

/// The kernel refuses a CFS quota under 1 ms (runc fails to create the container).
const MIN_CPU_QUOTA_MICROS: i64 = 1000;

/// The CFS quota for `units` CPU units (1024 per core) in each period.
fn cpu_quota_micros(units: u32) -> i64 {
    i64::try_from(u64::from(units) * CPU_PERIOD_MICROS / 1024).unwrap_or(i64::MAX).max(MIN_CPU_QUOTA_MICROS)
}

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
    /// Where the task's own volumes (those without a host path) live.
    pub volumes_dir: &'a Path,
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
    process.set_no_new_privileges(Some(!c.privileged));
    let caps = capabilities_of(c);
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
    for m in &c.mount_points {
        let volume = task.volumes.iter().find(|v| v.name == m.source_volume).ok_or_else(|| {
            RuntimeError::Spec(format!("container {:?} mounts the unknown volume {:?}", c.name, m.source_volume))
        })?;
        let source = match &volume.host {
            Some(_) if task.launch_type == LaunchType::Managed => {
                return Err(RuntimeError::Spec("a MANAGED task may not mount the host's directories".into()));
            }
            Some(host) => PathBuf::from(&host.source_path),
            None => ctx.volumes_dir.join(&volume.name),
        };
        mounts.push(bind(&m.container_path, source, m.read_only));
    }
    spec.set_mounts(Some(mounts));

    let managed = task.launch_type == LaunchType::Managed;
    // A container's share of the task: its own CPU units, else an even split
    // of what the task's other containers leave.
    let unclaimed = |total: u32, own: fn(&ContainerDefinition) -> Option<u32>| {
        let claimed: u32 = task.containers.iter().filter_map(own).sum();
        let sharing = u32::try_from(task.containers.iter().filter(|x| own(x).is_none()).count()).unwrap_or(1).max(1);
        total.saturating_sub(claimed) / sharing
    };
    let cpu_share = c.cpu.unwrap_or_else(|| unclaimed(task.cpu, |x| x.cpu));
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(Some(u64::from(cpu_share).max(2)));
    // The task's CPU is a ceiling as well as a share, as on Fargate; on a
    // shared host each container's ceiling is its part, so the task's sum holds.
    let ceiling = if managed { cpu_share.max(1) } else { task.cpu };
    if ceiling > 0 {
        cpu.set_quota(Some(cpu_quota_micros(ceiling)));
        cpu.set_period(Some(CPU_PERIOD_MICROS));
    }
    let mut memory = LinuxMemory::default();
    let hard = match c.memory {
        Some(m) => Some(m),
        None if task.containers.len() == 1 && task.memory > 0 => Some(task.memory),
        // Always a limit on a shared host: an even split of the task's memory.
        None if managed => Some(unclaimed(task.memory, |x| x.memory).max(6)),
        None => None,
    };
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
    deny_all.set_allow(c.privileged);
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
    if !c.privileged {
        linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|s| (*s).to_owned()).collect()));
        linux.set_readonly_paths(Some(READONLY_PATHS.iter().map(|s| (*s).to_owned()).collect()));
        linux.set_seccomp(Some(default_seccomp()?));
    }
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
    fn a_small_cpu_share_still_gets_a_quota_the_kernel_takes() {
        assert_eq!(cpu_quota_micros(1024), 100_000);
        assert_eq!(cpu_quota_micros(512), 50_000);
        // 10 units would be 976 µs, which the kernel refuses.
        assert_eq!(cpu_quota_micros(10), 1000);
    }

    #[test]
    fn capabilities_follow_the_definition() {
        let c = container(serde_json::json!({"name": "a", "image": "x",
            "linux_parameters": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["NET_RAW"]}}}));
        let caps = capabilities_of(&c);
        assert!(caps.contains(&Capability::NetAdmin) && !caps.contains(&Capability::NetRaw));
        assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len());
        let privileged = container(serde_json::json!({"name": "a", "image": "x", "privileged": true}));
        assert_eq!(capabilities_of(&privileged).len(), LINUX_CAPABILITIES.len(), "every capability is known");
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
