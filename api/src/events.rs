//! The account's append-only event log.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// Every event type the control plane writes.
pub const EVENT_TYPES: &[&str] = &[
    "access_key.created",
    "access_key.deactivated",
    "access_key.deleted",
    "access_key.reactivated",
    "account.reactivated",
    "account.suspended",
    "capacity_pool.created",
    "cluster.created",
    "cluster.deleted",
    "cluster.updated",
    "deployment.state_changed",
    "host.attributes_changed",
    "host.deregistered",
    "host.disconnected",
    "host.draining",
    "host.lost",
    "host.registered",
    "registration_token.created",
    "registration_token.revoked",
    "service.created",
    "service.deleted",
    "service.draining",
    "service.event",
    "service.updated",
    "task.state_changed",
    "task_definition.deleted",
    "task_definition.deregistered",
    "task_definition.registered",
];

/// One entry of an account's event log. `sequence` is strictly increasing
/// within the account and is the cursor to resume from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub sequence: i64,
    /// For example `cluster.created`, `task.state_changed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The id of the resource the event is about.
    pub resource_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub detail: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListEventsResponse {
    pub events: Vec<Event>,
    /// Pass as `after` to get the events that follow.
    pub cursor: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEventsQuery {
    /// Return events after this sequence number (default 0: from the oldest kept).
    pub after: Option<i64>,
    /// Comma-separated event types to keep.
    pub types: Option<String>,
    pub limit: Option<u32>,
    /// Seconds to wait for an event when there is none yet (0-30, default 0).
    pub wait: Option<u32>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamEventsQuery {
    /// Start after this sequence number (or send `Last-Event-ID`; default: only new events).
    pub after: Option<i64>,
    /// Comma-separated event types to keep.
    pub types: Option<String>,
}
