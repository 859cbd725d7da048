//! Tasks: runs of a task definition in a cluster.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::{ClusterId, HostId, Tags, TaskDefinitionId, TaskId};

/// Where a task is in its life. Tasks only move forward through this list
/// (a task may skip states, for example PROVISIONING -> STOPPED when it is
/// stopped before it was placed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// Accepted, not yet placed on a host.
    Provisioning,
    /// Placed; the host's agent is preparing it (pulling images, creating containers).
    Pending,
    Running,
    /// Asked to stop; containers are being stopped.
    Stopping,
    Stopped,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] =
        [TaskStatus::Provisioning, TaskStatus::Pending, TaskStatus::Running, TaskStatus::Stopping, TaskStatus::Stopped];

    pub fn as_str(&self) -> &'static str {
        match self {
            TaskStatus::Provisioning => "PROVISIONING",
            TaskStatus::Pending => "PENDING",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Stopping => "STOPPING",
            TaskStatus::Stopped => "STOPPED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What the control plane wants a task to be. Only RUNNING and STOPPED are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DesiredStatus {
    Running,
    Stopped,
}

impl DesiredStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            DesiredStatus::Running => "RUNNING",
            DesiredStatus::Stopped => "STOPPED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RUNNING" => Some(DesiredStatus::Running),
            "STOPPED" => Some(DesiredStatus::Stopped),
            _ => None,
        }
    }
}

/// Why a task stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum StopCode {
    TaskFailedToStart,
    EssentialContainerExited,
    UserInitiated,
    ServiceSchedulerInitiated,
    HostLost,
    HostDrained,
    QuotaExceeded,
}

impl StopCode {
    pub const ALL: [StopCode; 7] = [
        StopCode::TaskFailedToStart,
        StopCode::EssentialContainerExited,
        StopCode::UserInitiated,
        StopCode::ServiceSchedulerInitiated,
        StopCode::HostLost,
        StopCode::HostDrained,
        StopCode::QuotaExceeded,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            StopCode::TaskFailedToStart => "TaskFailedToStart",
            StopCode::EssentialContainerExited => "EssentialContainerExited",
            StopCode::UserInitiated => "UserInitiated",
            StopCode::ServiceSchedulerInitiated => "ServiceSchedulerInitiated",
            StopCode::HostLost => "HostLost",
            StopCode::HostDrained => "HostDrained",
            StopCode::QuotaExceeded => "QuotaExceeded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The observed state of one container of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContainerState {
    pub name: String,
    pub image: String,
    pub last_status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it stopped or failed (`OutOfMemory`, `CannotPullImage: ...`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it exits, the task stops.
    #[serde(default = "essential_default")]
    pub essential: bool,
    /// From the container's health check; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<HealthStatus>,
    /// The host ports its port mappings got.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_bindings: Vec<crate::agent::HostPortBinding>,
    /// How often its restart policy restarted it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restart_count: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn essential_default() -> bool {
    true
}

/// A task's resource use as its agent measures it (its containers' cgroups).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceUsage {
    /// CPU units in use (1024 = one core busy), averaged over the last heartbeat interval.
    pub cpu: u32,
    /// Memory in use, MiB.
    pub memory: u32,
}

/// A task's resource use with when the control plane heard of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskUsage {
    pub cpu: u32,
    pub memory: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub measured_at: OffsetDateTime,
}

/// What a health check says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
    /// Not yet known (in the start period, or no check has finished).
    Unknown,
}

impl HealthStatus {
    /// A task's health from its containers', as ECS judges it: unhealthy if
    /// any essential container is, healthy when every checked essential
    /// container is, else unknown; none when no essential container has a check.
    pub fn of_task<'a>(containers: impl Iterator<Item = (&'a ContainerState, bool)>) -> Option<HealthStatus> {
        let mut any = false;
        let mut all_healthy = true;
        for (c, essential) in containers {
            if !essential {
                continue;
            }
            match c.health_status {
                None => {}
                Some(HealthStatus::Unhealthy) => return Some(HealthStatus::Unhealthy),
                Some(h) => {
                    any = true;
                    all_healthy &= h == HealthStatus::Healthy;
                }
            }
        }
        any.then_some(if all_healthy { HealthStatus::Healthy } else { HealthStatus::Unknown })
    }
}

/// Per-container changes applied to one run of a task definition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerOverride {
    /// The container definition's name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Merged over the definition's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskOverrides {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_overrides: Vec<ContainerOverride>,
}

impl TaskOverrides {
    pub fn is_empty(&self) -> bool {
        self.container_overrides.is_empty()
    }
}

/// The body of `POST /v1/clusters/{cluster}/tasks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunTaskRequest {
    /// `family` (latest ACTIVE revision) or `family:revision`.
    pub task_definition: String,
    /// How many tasks to start, 1 to 10 (default 1).
    #[serde(default = "default_count")]
    pub count: u32,
    #[serde(default, skip_serializing_if = "TaskOverrides::is_empty")]
    pub overrides: TaskOverrides,
    /// Free text (up to 128 characters) to find the tasks again, for example a job name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Ordered tie-breakers; default spread over `host.id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_strategy: Vec<crate::hosts::PlacementStrategy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_constraints: Vec<crate::hosts::PlacementConstraint>,
    /// Keep tasks that cannot be placed now in PROVISIONING and place them when
    /// capacity appears, instead of reporting them in `failures[]`.
    #[serde(default)]
    pub queue: bool,
    /// `EXTERNAL` (default): the cluster's own hosts. `MANAGED`: the
    /// operator's shared capacity; the task definition must set task-level
    /// `cpu` and `memory`, which are rounded up to an allowed size.
    #[serde(default)]
    pub launch_type: crate::capacity::LaunchType,
}

fn default_count() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: TaskId,
    pub cluster_id: ClusterId,
    pub cluster: String,
    pub task_definition_id: TaskDefinitionId,
    /// `family:revision`.
    pub task_definition: String,
    pub desired_status: DesiredStatus,
    pub last_status: TaskStatus,
    /// Absent for MANAGED tasks: their hosts are the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<HostId>,
    #[serde(default)]
    pub launch_type: crate::capacity::LaunchType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    /// The service that started it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<crate::ServiceId>,
    /// The service deployment it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<crate::DeploymentId>,
    pub containers: Vec<ContainerState>,
    /// From the essential containers' health checks; absent when none has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<HealthStatus>,
    /// What it used when its host last looked; absent before its first heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TaskUsage>,
    #[serde(default, skip_serializing_if = "TaskOverrides::is_empty")]
    pub overrides: TaskOverrides,
    /// CPU units the task reserves.
    pub cpu: u32,
    /// Memory in MiB the task reserves.
    pub memory: u32,
    /// MANAGED tasks: the size asked for, before rounding up to `cpu`/`memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_size: Option<crate::capacity::TaskSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<StopCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// The decision that put the task on its host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<crate::hosts::PlacementDecision>,
    pub tags: Tags,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub pending_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub running_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub stopping_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<OffsetDateTime>,
    pub version: i64,
}

/// A task that could not be started, as in ECS's `failures[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Failure {
    /// For example `RESOURCE:MEMORY` or `QUOTA:running_tasks`.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunTaskResponse {
    pub tasks: Vec<Task>,
    pub failures: Vec<Failure>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopTaskRequest {
    /// Shown as the task's `stopped_reason` (up to 255 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListTasksResponse {
    pub tasks: Vec<Task>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Filters of `GET /v1/clusters/{cluster}/tasks`, on top of paging.
#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTasksQuery {
    pub desired_status: Option<DesiredStatus>,
    pub last_status: Option<TaskStatus>,
    /// Only tasks of this task-definition family.
    pub family: Option<String>,
    pub host_id: Option<HostId>,
    pub started_by: Option<String>,
    /// Only tasks of this service.
    pub service_id: Option<crate::ServiceId>,
    pub limit: Option<u32>,
    pub next_token: Option<String>,
}

/// `GET /v1/clusters/{cluster}/tasks/{task}/logs`: the task's container
/// output as text, one line per line written, read from its host.
#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskLogsQuery {
    /// One container of the task (default: all of them, each line prefixed with `[name] `).
    pub container: Option<String>,
    /// Only the last N lines (1-100000).
    pub tail: Option<u32>,
    /// Only lines written at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Keep the response open and send lines as they are written, until the task stops.
    pub follow: Option<bool>,
    /// Start each line with the time it was written (RFC 3339).
    pub timestamps: Option<bool>,
}
