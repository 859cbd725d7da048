//! Data sources: `berth_cluster`, `berth_task_definition` (a family's
//! latest ACTIVE revision) and `berth_hosts` (a cluster's hosts).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Block, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{DataSource, Diagnostics, map};

use crate::util::*;

pub struct ClusterData(pub Api);

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct ClusterDataState {
    pub name: Value<String>,
    pub id: Value<String>,
    pub tags: Value<BTreeMap<String, String>>,
    pub active_tasks_count: Value<i64>,
}

#[async_trait]
impl DataSource for ClusterData {
    type State<'a> = ClusterDataState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _d: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                attributes: map! {
                    "name" => attr(AttributeType::String, Required, "The cluster's name or id"),
                    "id" => attr(AttributeType::String, Computed, "Its id"),
                    "tags" => attr(AttributeType::Map(Box::new(AttributeType::String)), Computed, "Its tags"),
                    "active_tasks_count" => attr(AttributeType::Number, Computed, "Tasks not STOPPED")
                },
                ..Default::default()
            },
        })
    }

    async fn read<'a>(
        &self,
        d: &mut Diagnostics,
        config: ClusterDataState,
        _m: ValueEmpty,
    ) -> Option<ClusterDataState> {
        let c = client(&self.0, d).await?;
        match c.get_cluster(string(&config.name)?).await {
            Ok(cl) => Some(ClusterDataState {
                name: config.name,
                id: known(cl.id.to_string()),
                tags: known(cl.tags),
                active_tasks_count: known(cl.active_tasks_count),
            }),
            Err(e) => {
                report(d, "Reading the cluster", &e, &[]);
                None
            }
        }
    }
}

pub struct TaskDefinitionData(pub Api);

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct TaskDefinitionDataState {
    pub family: Value<String>,
    pub id: Value<String>,
    pub revision: Value<i64>,
    pub container_definitions: Value<String>,
}

#[async_trait]
impl DataSource for TaskDefinitionData {
    type State<'a> = TaskDefinitionDataState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _d: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                attributes: map! {
                    "family" => attr(AttributeType::String, Required, "The family"),
                    "id" => attr(AttributeType::String, Computed, "family:revision of its latest ACTIVE revision"),
                    "revision" => attr(AttributeType::Number, Computed, "That revision's number"),
                    "container_definitions" => attr(AttributeType::String, Computed, "Its containers, as JSON")
                },
                ..Default::default()
            },
        })
    }

    async fn read<'a>(
        &self,
        d: &mut Diagnostics,
        config: TaskDefinitionDataState,
        _m: ValueEmpty,
    ) -> Option<TaskDefinitionDataState> {
        let c = client(&self.0, d).await?;
        match c.get_task_definition(string(&config.family)?).await {
            Ok(td) => Some(TaskDefinitionDataState {
                family: config.family,
                id: known(format!("{}:{}", td.family, td.revision)),
                revision: known(td.revision),
                container_definitions: known(serde_json::to_string(&td.container_definitions).unwrap_or_default()),
            }),
            Err(e) => {
                report(d, "Reading the task definition", &e, &[]);
                None
            }
        }
    }
}

pub struct HostsData(pub Api);

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct HostEntry {
    pub id: Value<String>,
    pub hostname: Value<String>,
    pub status: Value<String>,
    pub attributes: Value<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct HostsDataState {
    pub cluster: Value<String>,
    pub hosts: Value<Vec<HostEntry>>,
}

#[async_trait]
impl DataSource for HostsData {
    type State<'a> = HostsDataState;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _d: &mut Diagnostics) -> Option<Schema> {
        // A list of objects (tf-provider's nested-attribute types send both
        // Type and NestedType, which Terraform refuses).
        let entry: std::collections::HashMap<String, AttributeType> = map! {
            "id" => AttributeType::String,
            "hostname" => AttributeType::String,
            "status" => AttributeType::String,
            "attributes" => AttributeType::Map(Box::new(AttributeType::String))
        };
        Some(Schema {
            version: 1,
            block: Block {
                attributes: map! {
                    "cluster" => attr(AttributeType::String, Required, "The cluster (name or id)"),
                    "hosts" => attr(AttributeType::List(Box::new(AttributeType::Object(entry))), Computed, "The cluster's hosts: id, hostname, status (ACTIVE, DRAINING, ...) and attributes")
                },
                ..Default::default()
            },
        })
    }

    async fn read<'a>(&self, d: &mut Diagnostics, config: HostsDataState, _m: ValueEmpty) -> Option<HostsDataState> {
        let c = client(&self.0, d).await?;
        let cluster = string(&config.cluster)?.to_owned();
        let all = match berth_sdk::Client::collect(c.hosts(&cluster)).await {
            Ok(h) => h,
            Err(e) => {
                report(d, "Listing the hosts", &e, &[]);
                return None;
            }
        };
        let hosts = all
            .into_iter()
            .map(|h| HostEntry {
                id: known(h.id.to_string()),
                hostname: known(h.hostname),
                status: known(
                    serde_json::to_value(h.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                ),
                attributes: known(h.attributes),
            })
            .collect();
        Some(HostsDataState { cluster: config.cluster, hosts: known(hosts) })
    }
}
