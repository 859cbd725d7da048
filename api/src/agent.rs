//! The host agent protocol (see docs/agent-protocol.md).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::TaskId;
use crate::hosts::HostStatus;
use crate::task_definitions::{ContainerDefinition, NetworkMode};
use crate::tasks::{ContainerState, DesiredStatus, HealthStatus, StopCode, TaskStatus};

/// The protocol version this build speaks; sent by agents in `x-berth-agent-protocol`.
pub const AGENT_PROTOCOL_VERSION: u32 = 1;

/// A task as the agent last saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservedTask {
    pub task_id: TaskId,
    pub last_status: TaskStatus,
    /// Its containers' resource use, for running tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::tasks::ResourceUsage>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// Every task the agent runs or holds, so the control plane can tell it what it gave up on.
    #[serde(default)]
    pub observed: Vec<ObservedTask>,
    /// Where the control plane reads the host's container logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_endpoint: Option<LogsEndpoint>,
}

/// The agent's log endpoint: `GET {url}/v1/tasks/{task}/logs`, with the
/// token as a bearer credential. The agent makes a new token when it starts.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsEndpoint {
    /// `http://host:port`, reachable from the control plane.
    pub url: String,
    pub token: String,
}

impl std::fmt::Debug for LogsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogsEndpoint").field("url", &self.url).finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    pub host_status: HostStatus,
    /// How often to heartbeat.
    pub heartbeat_interval_seconds: u32,
    /// Observed tasks the control plane considers stopped (for example after
    /// the host was lost): stop and remove them.
    pub stop_tasks: Vec<TaskId>,
}

/// One port the task holds on the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostPortBinding {
    pub container_name: String,
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: crate::task_definitions::Protocol,
}

/// Everything the agent needs to run a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentTask {
    pub task_id: TaskId,
    /// `family:revision`.
    pub task_definition: String,
    pub cpu: u32,
    pub memory: u32,
    pub network_mode: NetworkMode,
    /// MANAGED tasks run isolated from other accounts' on a shared host:
    /// their own network per account, no host ports, no privileges.
    #[serde(default)]
    pub launch_type: crate::capacity::LaunchType,
    /// The task's account: on a shared host, tasks of one account share a
    /// network, and other accounts' networks are unreachable.
    pub account_id: crate::AccountId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<crate::task_definitions::Volume>,
    /// The containers with the run's overrides applied (and the task's
    /// restart policy on each container without one).
    pub containers: Vec<ContainerDefinition>,
    pub port_bindings: Vec<HostPortBinding>,
    /// Credentials for the containers whose definitions name one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registry_credentials: Vec<crate::registry_credentials::ContainerRegistryCredentials>,
}

/// One desired-state change for the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    /// Increases by one per change on this host: the cursor.
    pub seq: i64,
    pub task_id: TaskId,
    pub desired_status: DesiredStatus,
    pub task: AgentTask,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssignmentsResponse {
    pub assignments: Vec<Assignment>,
    /// Pass as `after` next time, and acknowledge it once applied (with
    /// `POST .../assignments/ack`, or as `ack` on the next poll).
    pub cursor: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssignmentsQuery {
    /// Return changes after this sequence number (default: after the last acknowledged one).
    pub after: Option<i64>,
    /// Seconds to wait for a change before answering empty (0-30, default 20).
    pub wait: Option<u32>,
    /// First acknowledge every change up to and including this one, exactly as
    /// `POST .../assignments/ack` would, then answer. An agent that passes the
    /// cursor it has just applied saves a request per batch of changes.
    pub ack: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Every change up to and including this one has been applied.
    pub cursor: i64,
}

/// A task's state as the agent observed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskStatusReport {
    /// Increases with every report about this task; older or repeated reports are ignored.
    pub seq: i64,
    pub last_status: TaskStatus,
    #[serde(default)]
    pub containers: Vec<ContainerState>,
    /// With STOPPED: why (`EssentialContainerExited`, `TaskFailedToStart`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<StopCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The task's health from its essential containers' checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<HealthStatus>,
    /// When the agent saw the transition (the start and stop times of usage
    /// records); absent: when the report arrives.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<time::OffsetDateTime>,
}

/// Several reports in one request (`POST /v1/agent/hosts/{host}/tasks/status`),
/// applied in one transaction; each is judged on its own, as if sent alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskStatusReportBatch {
    /// At most 1000 reports.
    pub reports: Vec<TaskStatusReportItem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskStatusReportItem {
    pub task_id: TaskId,
    pub report: TaskStatusReport,
}

/// One result per report, in the request's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskStatusReportBatchResponse {
    pub results: Vec<TaskStatusReportResult>,
}

/// The outcome of one report of a batch: `applied` and the task's state, or
/// the error it would have had alone (`ResourceNotFound`, `InvalidStateTransition`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskStatusReportResult {
    pub task_id: TaskId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<TaskStatusReportResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskStatusReportResponse {
    /// False when the report was older than one already applied (nothing changed).
    pub applied: bool,
    pub desired_status: DesiredStatus,
    pub last_status: TaskStatus,
}
