//! Managed capacity (the ACI / Fargate model): the operator's capacity
//! pools, the launch types a tenant chooses between, the allowed task sizes,
//! and the usage record a bill is built on.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::{AccountId, ClusterId, TaskId};

/// Where a task runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LaunchType {
    /// On the cluster's own hosts (the ECS-on-EC2 / ECS Anywhere model).
    #[default]
    External,
    /// On the operator's shared capacity (the Fargate / ACI model): the task
    /// states CPU and memory, is rounded up to an allowed size, and its host
    /// is not shown.
    Managed,
}

impl LaunchType {
    pub fn as_str(&self) -> &'static str {
        match self {
            LaunchType::External => "EXTERNAL",
            LaunchType::Managed => "MANAGED",
        }
    }

    pub fn parse(s: &str) -> Option<LaunchType> {
        [LaunchType::External, LaunchType::Managed].into_iter().find(|l| l.as_str() == s)
    }
}

/// A task size MANAGED tasks may have: CPU units (1024 per vCPU) and memory in MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct TaskSize {
    pub cpu: u32,
    pub memory: u32,
}

/// `GET /v1/capacity/sizes`: the sizes a MANAGED task is rounded up to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListTaskSizesResponse {
    /// Smallest first; a request gets the first size at least as large in both CPU and memory.
    pub sizes: Vec<TaskSize>,
}

/// A capacity pool: hosts the operator runs for every account's MANAGED tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CapacityPool {
    pub id: ClusterId,
    /// 1-255 letters, digits, hyphens and underscores; agents join with `--pool NAME`.
    pub name: String,
    /// Pools are tried lowest first; the first that fits a task gets it.
    pub priority: i64,
    /// Hosts registered and not deregistered.
    pub hosts: u32,
    /// Of those, ACTIVE (taking new tasks).
    pub active_hosts: u32,
    pub cpu_total: i64,
    pub cpu_used: i64,
    pub memory_total: i64,
    pub memory_used: i64,
    /// MANAGED tasks on the pool's hosts, not yet STOPPED.
    pub running_tasks: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The body of `POST /v1/capacity-pools`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCapacityPoolRequest {
    pub name: String,
    /// Lower is tried first (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListCapacityPoolsResponse {
    pub capacity_pools: Vec<CapacityPool>,
}

/// `GET /v1/usage`: a time window, RFC 3339, `from` inclusive and `to` exclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start of the window (default: 24 hours before `to`).
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<OffsetDateTime>,
    /// End of the window (default: now). At most 93 days after `from`.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<OffsetDateTime>,
    /// Operator only: every account's usage instead of the caller's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_accounts: bool,
}

/// One MANAGED task's use of the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageRecord {
    pub account_id: AccountId,
    pub task_id: TaskId,
    pub cluster: String,
    /// `family:revision`.
    pub task_definition: String,
    /// The size it ran at (after rounding up).
    pub cpu: u32,
    pub memory: u32,
    /// When the agent saw it start running, and stop.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<OffsetDateTime>,
    /// Whole seconds of the run that fall inside the window (a run still going counts up to the window's end or now).
    pub seconds: i64,
    /// `cpu / 1024 * seconds`.
    pub vcpu_seconds: f64,
    /// `memory / 1024 * seconds`.
    pub gib_seconds: f64,
}

/// One account's totals over the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccountUsage {
    pub account_id: AccountId,
    pub tasks: u32,
    pub vcpu_seconds: f64,
    pub gib_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageResponse {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// Per account (one entry unless `all_accounts`).
    pub accounts: Vec<AccountUsage>,
    /// Every task that ran in the window, by start time.
    pub records: Vec<UsageRecord>,
}
