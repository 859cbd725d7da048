//! Hosts and placement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{ClusterId, HostId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HostStatus {
    Active,
    /// No new placements.
    Draining,
    /// Missed three heartbeats.
    Disconnected,
    /// Gone past the loss timeout; its tasks were stopped with `HostLost`.
    Lost,
    Deregistered,
}

impl HostStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            HostStatus::Active => "ACTIVE",
            HostStatus::Draining => "DRAINING",
            HostStatus::Disconnected => "DISCONNECTED",
            HostStatus::Lost => "LOST",
            HostStatus::Deregistered => "DEREGISTERED",
        }
    }

    pub fn parse(s: &str) -> Option<HostStatus> {
        [HostStatus::Active, HostStatus::Draining, HostStatus::Disconnected, HostStatus::Lost, HostStatus::Deregistered]
            .into_iter()
            .find(|h| h.as_str() == s)
    }
}

/// CPU units (1024 per core) and memory (MiB).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub cpu: u32,
    pub memory: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Host {
    pub id: HostId,
    pub cluster_id: ClusterId,
    pub hostname: String,
    pub status: HostStatus,
    pub agent_version: String,
    pub total: Resources,
    /// Kept back for the system.
    pub reserved: Resources,
    /// Taken by tasks placed on the host.
    pub used: Resources,
    /// Inclusive range dynamic host ports come from.
    pub dynamic_port_range: [u16; 2],
    pub attributes: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_at: Option<OffsetDateTime>,
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListHostsResponse {
    pub hosts: Vec<Host>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateHostAttributesRequest {
    /// Replaces the user attributes; the agent's own (os, arch, hostname, agent version) stay.
    pub attributes: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeregisterHostRequest {
    /// Deregister even though tasks still run there (they are stopped with `HostLost`).
    #[serde(default)]
    pub force: bool,
}

/// How tasks are spread over hosts, as an ordered list of tie-breakers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementStrategy {
    /// `binpack`, `spread` or `random`.
    #[serde(rename = "type")]
    pub strategy_type: String,
    /// binpack: `cpu` or `memory`; spread: an attribute name or `host.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementConstraint {
    /// `distinct_host`, `member_of` or `max_per`.
    #[serde(rename = "type")]
    pub constraint_type: String,
    /// member_of: an expression over host attributes, e.g. `os == linux and zone in [a, b]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// max_per: the attribute (or `host.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// max_per: at most this many tasks of the group per value of the attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// Why a task went where it went: kept on the task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlacementDecision {
    pub host_id: HostId,
    pub strategy: Vec<PlacementStrategy>,
    pub constraints: Vec<PlacementConstraint>,
    /// Hosts of the cluster when the decision was made.
    pub hosts_considered: u32,
    /// Dynamic host ports taken for the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamic_host_ports: Vec<u16>,
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
}

/// A dry run of placement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulatePlacementRequest {
    /// `family` or `family:revision`.
    pub task_definition: String,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub placement_strategy: Vec<PlacementStrategy>,
    #[serde(default)]
    pub placement_constraints: Vec<PlacementConstraint>,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HostVerdict {
    pub host_id: HostId,
    pub hostname: String,
    /// Whether the host could take one task now.
    pub eligible: bool,
    /// Why not, as in `failures[]` (`RESOURCE:MEMORY`, `DRAINING`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SimulatePlacementResponse {
    /// The host each task would go to, in order.
    pub placements: Vec<HostId>,
    pub failures: Vec<crate::tasks::Failure>,
    /// Every host of the cluster and whether it could take a task.
    pub hosts: Vec<HostVerdict>,
}
