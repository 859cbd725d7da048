//! Services: a desired count of tasks of one task definition, kept running,
//! rolled out revision by revision, and replaced when they fail or their
//! host goes away.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::hosts::{PlacementConstraint, PlacementStrategy};
use crate::{ClusterId, DeploymentId, ServiceId, Tags, TaskDefinitionId};

/// How a service decides how many tasks to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SchedulingStrategy {
    /// `desired_count` tasks, placed by the placement strategies.
    #[default]
    Replica,
    /// One task on every eligible host (ACTIVE and matching the constraints),
    /// following hosts as they join, drain and leave.
    Daemon,
}

impl SchedulingStrategy {
    pub fn as_str(&self) -> &'static str {
        match self {
            SchedulingStrategy::Replica => "REPLICA",
            SchedulingStrategy::Daemon => "DAEMON",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "REPLICA" => Some(SchedulingStrategy::Replica),
            "DAEMON" => Some(SchedulingStrategy::Daemon),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceStatus {
    Active,
    /// Deleted: scaling to zero; gone (INACTIVE) once its last task stopped.
    Draining,
    /// Deleted and without tasks. Its name may be used again.
    Inactive,
}

impl ServiceStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceStatus::Active => "ACTIVE",
            ServiceStatus::Draining => "DRAINING",
            ServiceStatus::Inactive => "INACTIVE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(ServiceStatus::Active),
            "DRAINING" => Some(ServiceStatus::Draining),
            "INACTIVE" => Some(ServiceStatus::Inactive),
            _ => None,
        }
    }
}

/// Stops a deployment whose tasks keep failing, and rolls back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Count failed task launches and fail the deployment at the threshold (default true).
    #[serde(default = "yes")]
    pub enable: bool,
    /// On failure, deploy the last COMPLETED revision again (default true).
    #[serde(default = "yes")]
    pub rollback: bool,
    /// Failed launches that fail the deployment. Default as ECS: half the
    /// desired count, at least 10 and at most 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self { enable: true, rollback: true, threshold: None }
    }
}

fn yes() -> bool {
    true
}

/// How a deployment replaces tasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfiguration {
    /// Healthy tasks kept during a deployment or a drain, as a percentage of
    /// the desired count, rounded up (default 100; 0 for daemon services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_healthy_percent: Option<u32>,
    /// Tasks allowed at once (desired RUNNING, not stopped), as a percentage
    /// of the desired count, rounded down (default 200; 100 for daemon services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_percent: Option<u32>,
    /// A task without health checks counts as healthy after RUNNING this
    /// long (seconds, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_healthy_time_seconds: Option<u32>,
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
}

impl DeploymentConfiguration {
    pub const DEFAULT_MIN_HEALTHY_TIME_SECONDS: u32 = 10;

    /// The configuration with every default filled in for a strategy.
    pub fn resolved(&self, strategy: SchedulingStrategy) -> DeploymentConfiguration {
        let (min, max) = match strategy {
            SchedulingStrategy::Replica => (100, 200),
            SchedulingStrategy::Daemon => (0, 100),
        };
        DeploymentConfiguration {
            minimum_healthy_percent: Some(self.minimum_healthy_percent.unwrap_or(min)),
            maximum_percent: Some(self.maximum_percent.unwrap_or(max)),
            min_healthy_time_seconds: Some(
                self.min_healthy_time_seconds.unwrap_or(Self::DEFAULT_MIN_HEALTHY_TIME_SECONDS),
            ),
            circuit_breaker: self.circuit_breaker,
        }
    }
}

/// Where a deployment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentState {
    /// Replacing tasks.
    InProgress,
    /// Every desired task of this revision is healthy and no older task runs.
    Completed,
    /// The circuit breaker tripped and no rollback was made.
    Failed,
    /// The circuit breaker tripped and the service went back to the last completed revision.
    RolledBack,
    /// A newer deployment replaced it before it completed.
    Stopped,
}

impl DeploymentState {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeploymentState::InProgress => "IN_PROGRESS",
            DeploymentState::Completed => "COMPLETED",
            DeploymentState::Failed => "FAILED",
            DeploymentState::RolledBack => "ROLLED_BACK",
            DeploymentState::Stopped => "STOPPED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            DeploymentState::InProgress,
            DeploymentState::Completed,
            DeploymentState::Failed,
            DeploymentState::RolledBack,
            DeploymentState::Stopped,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// One rollout of a task-definition revision to a service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    pub id: DeploymentId,
    pub service_id: ServiceId,
    pub task_definition_id: TaskDefinitionId,
    /// `family:revision`.
    pub task_definition: String,
    pub state: DeploymentState,
    /// Whether it is the service's current deployment, the one new tasks come from.
    pub primary: bool,
    /// This deployment's tasks that are not stopped and meant to run.
    pub running_count: u32,
    /// Of those, the ones that count as healthy.
    pub healthy_count: u32,
    /// Launches that failed before the task became healthy.
    pub failed_tasks: u32,
    /// Failed launches that trip the circuit breaker.
    pub failure_threshold: u32,
    /// What started it: `created`, `task_definition`, `container_changes`,
    /// `force_new_deployment` or `rollback`.
    pub trigger: String,
    /// In words: the change, or why it ended as it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a rollback: the deployment that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<DeploymentId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<OffsetDateTime>,
}

/// What the scheduler did or could not do, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Service {
    pub id: ServiceId,
    pub cluster_id: ClusterId,
    pub cluster: String,
    /// Unique among the cluster's services that are not INACTIVE.
    pub name: String,
    pub status: ServiceStatus,
    pub scheduling_strategy: SchedulingStrategy,
    #[serde(default)]
    pub launch_type: crate::capacity::LaunchType,
    pub task_definition_id: TaskDefinitionId,
    /// `family:revision` of the current (primary) deployment.
    pub task_definition: String,
    /// For a daemon service, the number of eligible hosts.
    pub desired_count: u32,
    /// Tasks meant to run that are RUNNING.
    pub running_count: u32,
    /// Tasks meant to run that are not RUNNING yet.
    pub pending_count: u32,
    /// Tasks that count as healthy (health checks passing, or RUNNING for `min_healthy_time`).
    pub healthy_count: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_strategy: Vec<PlacementStrategy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_constraints: Vec<PlacementConstraint>,
    /// With every default filled in.
    pub deployment_configuration: DeploymentConfiguration,
    /// Seconds after RUNNING during which failing health checks do not get a task replaced.
    pub health_check_grace_period_seconds: u32,
    /// The primary deployment and any older one that still has tasks.
    pub deployments: Vec<Deployment>,
    /// The scheduler's latest messages, newest first.
    pub events: Vec<ServiceEvent>,
    pub tags: Tags,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

/// The body of `POST /v1/clusters/{cluster}/services`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceRequest {
    pub name: String,
    /// `family` (latest ACTIVE revision) or `family:revision`.
    pub task_definition: String,
    /// Tasks to keep running (0-1000). Not allowed for daemon services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_count: Option<u32>,
    #[serde(default)]
    pub scheduling_strategy: SchedulingStrategy,
    /// `EXTERNAL` (default) or `MANAGED` (replica services only).
    #[serde(default)]
    pub launch_type: crate::capacity::LaunchType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_strategy: Vec<PlacementStrategy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_constraints: Vec<PlacementConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_configuration: Option<DeploymentConfiguration>,
    #[serde(default)]
    pub health_check_grace_period_seconds: u32,
    #[serde(default)]
    pub tags: Tags,
    /// Makes the call safe to retry, like the `Idempotency-Key` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// A change to one container of the service's task definition. The service
/// registers a new revision with it and deploys that.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerChange {
    /// The container definition's name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Variables to set; a `null` value removes the variable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
}

/// The body of `PATCH /v1/clusters/{cluster}/services/{service}`: only what is given changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServiceRequest {
    /// Deploy this revision (`family` or `family:revision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    /// Change images or environment: registers a new revision of the
    /// service's task definition and deploys it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_changes: Vec<ContainerChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_strategy: Option<Vec<PlacementStrategy>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_constraints: Option<Vec<PlacementConstraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_configuration: Option<DeploymentConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_grace_period_seconds: Option<u32>,
    /// Replace every task with a new one of the same revision.
    #[serde(default)]
    pub force_new_deployment: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteServiceQuery {
    /// Stop the tasks and remove the service at once, without waiting for the tasks to stop.
    pub force: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListServicesResponse {
    pub services: Vec<Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListDeploymentsResponse {
    /// Newest first.
    pub deployments: Vec<Deployment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}
