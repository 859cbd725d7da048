//! Task definitions: families of immutable, numbered revisions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{Tags, TaskDefinitionId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskDefinitionStatus {
    Active,
    Inactive,
}

impl TaskDefinitionStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskDefinitionStatus::Active => "ACTIVE",
            TaskDefinitionStatus::Inactive => "INACTIVE",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// The task's own network namespace on the host's bridge, with port mappings.
    #[default]
    Bridge,
    /// The host's network namespace.
    Host,
    /// A network namespace with only loopback.
    None,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    pub container_port: u16,
    /// The port on the host; 0 (the default) picks one from the host's dynamic range.
    #[serde(default)]
    pub host_port: u16,
    #[serde(default)]
    pub protocol: Protocol,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// `["CMD", "arg", ...]` or `["CMD-SHELL", "command"]`.
    pub command: Vec<String>,
    /// Seconds between checks (5-300, default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u32>,
    /// Seconds before a check counts as failed (2-60, default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// Consecutive failures before UNHEALTHY (1-10, default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Seconds after start during which failures do not count (0-300, default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DependencyCondition {
    Start,
    Complete,
    Success,
    Healthy,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerDependency {
    pub container_name: String,
    pub condition: DependencyCondition,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ulimit {
    /// For example `nofile`, `nproc`, `core`.
    pub name: String,
    pub soft_limit: i64,
    pub hard_limit: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerDefinition {
    /// Unique within the task definition.
    pub name: String,
    /// An image reference: `registry/repository:tag` or `...@sha256:<digest>`.
    pub image: String,
    /// CPU units (1024 = one core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// Hard memory limit in MiB: the container is killed above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    /// Soft memory reservation in MiB, used for placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    /// When an essential container exits, the whole task stops (default true).
    #[serde(default = "default_true")]
    pub essential: bool,
    /// Seconds between the stop signal and SIGKILL (default 30, at most 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ContainerDependency>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Mount the image's root filesystem read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub readonly_root_filesystem: bool,
    /// When the host fetches the image (default: `ALWAYS` for a `latest` or
    /// missing tag, else `IF_NOT_PRESENT`; an image by digest is never fetched twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Most processes the container may have (default: the host's setting, 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<u32>,
    /// Restart the container when it exits (non-essential containers only: an
    /// essential container's exit ends the task). Restarts back off
    /// exponentially from 1 s up to 60 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// The name of one of the account's registry credentials
    /// (`/v1/registry-credentials`) to pull the image with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_credentials: Option<String>,
    /// Every capability, and no seccomp filter, masked paths or device
    /// restrictions: the host's root in all but name. Refused for MANAGED tasks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_parameters: Option<LinuxParameters>,
    /// The task's volumes this container mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<MountPoint>,
}

/// Linux's capabilities, as task definitions name them (without `CAP_`).
pub const LINUX_CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Linux-specific settings of a container, as in ECS.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinuxParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<KernelCapabilities>,
}

/// Changes to the default capability set (Docker's 14), by name without
/// `CAP_`: for example `NET_ADMIN`. Adding is refused for MANAGED tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelCapabilities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// A task volume mounted into a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MountPoint {
    /// The name of one of the task definition's `volumes`.
    pub source_volume: String,
    /// An absolute path in the container.
    pub container_path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// A volume the task's containers can mount: a directory of the host
/// (`host.source_path`, refused for MANAGED tasks), or, without `host`, an
/// empty directory that lives as long as the task and is shared by its
/// containers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostVolume>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostVolume {
    /// An absolute path on the host.
    pub source_path: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RestartCondition {
    Never,
    /// Only after a non-zero exit code.
    OnFailure,
    Always,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    pub condition: RestartCondition,
    /// At most this many restarts (0-1000; default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
}

impl RestartPolicy {
    pub const DEFAULT_MAX_RESTARTS: u32 = 10;

    /// Whether a container that exited with `exit_code` after `restarts` restarts goes again.
    pub fn restarts_after(&self, exit_code: i32, restarts: u32) -> bool {
        let wanted = match self.condition {
            RestartCondition::Never => false,
            RestartCondition::OnFailure => exit_code != 0,
            RestartCondition::Always => true,
        };
        wanted && restarts < self.max_restarts.unwrap_or(Self::DEFAULT_MAX_RESTARTS)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PullPolicy {
    /// Ask the registry on every start (a moved tag is followed).
    Always,
    /// Use the host's copy when it has one.
    IfNotPresent,
}

impl ContainerDefinition {
    /// The pull policy in force, with the default filled in.
    pub fn effective_pull_policy(&self) -> PullPolicy {
        if let Some(p) = self.pull_policy {
            return p;
        }
        let after_slash = self.image.rsplit('/').next().unwrap_or(&self.image);
        let tagged = after_slash.contains(':') && !after_slash.ends_with(":latest");
        if self.image.contains('@') || tagged { PullPolicy::IfNotPresent } else { PullPolicy::Always }
    }
}

fn default_true() -> bool {
    true
}

/// The body of `POST /v1/task-definitions`: registers the next revision of `family`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterTaskDefinitionRequest {
    /// 1-255 letters, digits, hyphens and underscores.
    pub family: String,
    pub container_definitions: Vec<ContainerDefinition>,
    /// Task-level CPU units; when given, at least the sum of the containers'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// Task-level memory in MiB; when given, at least the sum of the containers'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    #[serde(default)]
    pub network_mode: NetworkMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// The container group's restart policy (ACI's `restartPolicy`): a
    /// container without its own policy, essential ones included, is
    /// restarted by this one; the task stops when an essential container
    /// exits and is not restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskDefinition {
    pub id: TaskDefinitionId,
    pub family: String,
    pub revision: i64,
    pub status: TaskDefinitionStatus,
    pub container_definitions: Vec<ContainerDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    pub network_mode: NetworkMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    pub tags: Tags,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub deregistered_at: Option<OffsetDateTime>,
    pub version: i64,
}

/// A family and its latest revision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskDefinitionFamily {
    pub family: String,
    /// The highest revision ever registered.
    pub latest_revision: i64,
    /// The highest revision still ACTIVE, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_active_revision: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListTaskDefinitionFamiliesResponse {
    pub families: Vec<TaskDefinitionFamily>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListTaskDefinitionsResponse {
    pub task_definitions: Vec<TaskDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}
