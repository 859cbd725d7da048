//! Per-account quotas: what an account may hold or do, and how much of it it uses.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A quota's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaName {
    /// Clusters in the account.
    Clusters,
    /// Task-definition families (a family counts while it has any revision).
    TaskDefinitionFamilies,
    /// Revisions in one family; usage is the largest family's count.
    RevisionsPerFamily,
    /// Services in the account.
    Services,
    /// Hosts registered and not deregistered, in all of the account's clusters.
    Hosts,
    /// Tasks placed on a host and not yet STOPPED (PENDING, RUNNING, STOPPING).
    RunningTasks,
    /// CPU units (1024 per core) of those tasks.
    RunningCpu,
    /// Memory in MiB of those tasks.
    RunningMemory,
    /// Tasks created in the current minute (UTC, a fixed window).
    TasksLaunchedPerMinute,
    /// Tasks waiting in PROVISIONING to be placed.
    PendingTasks,
    /// CPU units of MANAGED tasks placed and not yet STOPPED (after rounding up to a size).
    ManagedCpu,
    /// Memory in MiB of those tasks.
    ManagedMemory,
}

impl QuotaName {
    pub const ALL: [QuotaName; 12] = [
        QuotaName::Clusters,
        QuotaName::TaskDefinitionFamilies,
        QuotaName::RevisionsPerFamily,
        QuotaName::Services,
        QuotaName::Hosts,
        QuotaName::RunningTasks,
        QuotaName::RunningCpu,
        QuotaName::RunningMemory,
        QuotaName::TasksLaunchedPerMinute,
        QuotaName::PendingTasks,
        QuotaName::ManagedCpu,
        QuotaName::ManagedMemory,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            QuotaName::Clusters => "clusters",
            QuotaName::TaskDefinitionFamilies => "task_definition_families",
            QuotaName::RevisionsPerFamily => "revisions_per_family",
            QuotaName::Services => "services",
            QuotaName::Hosts => "hosts",
            QuotaName::RunningTasks => "running_tasks",
            QuotaName::RunningCpu => "running_cpu",
            QuotaName::RunningMemory => "running_memory",
            QuotaName::TasksLaunchedPerMinute => "tasks_launched_per_minute",
            QuotaName::PendingTasks => "pending_tasks",
            QuotaName::ManagedCpu => "managed_cpu",
            QuotaName::ManagedMemory => "managed_memory",
        }
    }

    pub fn parse(s: &str) -> Option<QuotaName> {
        Self::ALL.into_iter().find(|q| q.as_str() == s)
    }
}

impl std::fmt::Display for QuotaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a quota's limit comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaSource {
    /// The server's configured default.
    Default,
    /// Set for this account by the operator.
    Account,
}

/// One quota of an account: its limit and what is used of it now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    pub name: QuotaName,
    pub limit: i64,
    pub usage: i64,
    pub source: QuotaSource,
}

/// `GET /v1/quotas` and `GET /v1/accounts/{account}/quotas`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListQuotasResponse {
    pub quotas: Vec<Quota>,
}

/// `PUT /v1/accounts/{account}/quotas/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutQuotaRequest {
    /// The new limit, 0 or more; 0 refuses everything the quota counts.
    pub limit: i64,
}

/// In an error body with code `LimitExceeded`: which quota refused the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuotaExceeded {
    pub quota: QuotaName,
    pub limit: i64,
    /// Usage before this request.
    pub usage: i64,
    /// What the request asked for.
    pub requested: i64,
}

/// The classes of calls each with its own token bucket per account, so a
/// burst of one kind never starves another (an API flood never delays heartbeats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitClass {
    /// GET calls.
    Read,
    /// Every other tenant call except RunTask.
    Mutate,
    /// `POST /v1/clusters/{cluster}/tasks`.
    RunTask,
    /// Host agents' calls (heartbeats, assignments, reports).
    Agent,
}

impl RateLimitClass {
    pub const ALL: [RateLimitClass; 4] =
        [RateLimitClass::Read, RateLimitClass::Mutate, RateLimitClass::RunTask, RateLimitClass::Agent];

    pub fn as_str(&self) -> &'static str {
        match self {
            RateLimitClass::Read => "read",
            RateLimitClass::Mutate => "mutate",
            RateLimitClass::RunTask => "run_task",
            RateLimitClass::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<RateLimitClass> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for RateLimitClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One class's token bucket for an account: `burst` tokens, refilled at `per_second`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RateLimit {
    pub class: RateLimitClass,
    pub per_second: f64,
    pub burst: u32,
    pub source: QuotaSource,
}

/// `GET /v1/rate-limits` and `GET /v1/accounts/{account}/rate-limits`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListRateLimitsResponse {
    pub rate_limits: Vec<RateLimit>,
}

/// `PUT /v1/accounts/{account}/rate-limits/{class}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRateLimitRequest {
    /// Tokens added per second (more than 0; fractions allowed: 0.5 is one every two seconds).
    pub per_second: f64,
    /// The bucket's size: how many calls may come at once (1 or more).
    pub burst: u32,
}
