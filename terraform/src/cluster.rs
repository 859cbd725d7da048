//! `berth_cluster`: name (forces replacement) and tags.

use std::collections::BTreeMap;

use async_trait::async_trait;
use berth_api::clusters::{Cluster, CreateClusterRequest, UpdateClusterRequest};
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Block, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource, map};

use crate::util::*;

pub struct ClusterResource(pub Api);

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct ClusterState {
    pub id: Value<String>,
    pub name: Value<String>,
    pub tags: Value<BTreeMap<String, String>>,
}

pub fn state_of(c: &Cluster, prior_tags: &Value<BTreeMap<String, String>>) -> ClusterState {
    ClusterState {
        id: known(c.id.to_string()),
        name: known(c.name.clone()),
        // An absent tags attribute stays absent when the cluster has none.
        tags: if c.tags.is_empty() && prior_tags.is_null() { Value::Null } else { known(c.tags.clone()) },
    }
}

#[async_trait]
impl Resource for ClusterResource {
    type State<'a> = ClusterState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _d: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                attributes: map! {
                    "id" => attr(AttributeType::String, Computed, "The cluster's id"),
                    "name" => attr(AttributeType::String, Required, "Unique in the account; changing it replaces the cluster"),
                    "tags" => attr(AttributeType::Map(Box::new(AttributeType::String)), Optional, "Tags")
                },
                description: "A Berth cluster: a named group of hosts, tasks and services".into(),
                ..Default::default()
            },
        })
    }

    async fn read<'a>(
        &self,
        d: &mut Diagnostics,
        state: ClusterState,
        p: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(ClusterState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let key = string(&state.id).or(string(&state.name))?.to_owned();
        match read_result(d, "Reading the cluster", c.get_cluster(&key).await) {
            Read::Found(cl) => Some((state_of(&cl, &state.tags), p)),
            Read::Gone => None,
            Read::Failed => Some((state, p)),
        }
    }

    async fn plan_create<'a>(
        &self,
        _d: &mut Diagnostics,
        _p: ClusterState,
        config: ClusterState,
        _m: ValueEmpty,
    ) -> Option<(ClusterState, ValueEmpty)> {
        Some((ClusterState { id: Value::Unknown, ..config }, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        _d: &mut Diagnostics,
        prior: ClusterState,
        _p: ClusterState,
        config: ClusterState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(ClusterState, ValueEmpty, Vec<AttributePath>)> {
        let replace = replacements(&[("name", changed(&prior.name, &config.name))]);
        Some((ClusterState { id: keep(&prior.id), ..config }, pp, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _d: &mut Diagnostics,
        _prior: ClusterState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<ValueEmpty> {
        Some(pp)
    }

    async fn create<'a>(
        &self,
        d: &mut Diagnostics,
        planned: ClusterState,
        _c: ClusterState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(ClusterState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let req = CreateClusterRequest {
            name: string(&planned.name)?.to_owned(),
            tags: planned.tags.as_ref_option().cloned().unwrap_or_default(),
            client_token: None,
        };
        match c.create_cluster(&req).await {
            Ok(cl) => Some((state_of(&cl, &planned.tags), pp)),
            Err(e) => {
                report(d, "Creating the cluster", &e, &[("name", "name"), ("tags", "tags")]);
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        d: &mut Diagnostics,
        prior: ClusterState,
        planned: ClusterState,
        _c: ClusterState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(ClusterState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let req = UpdateClusterRequest { tags: Some(planned.tags.as_ref_option().cloned().unwrap_or_default()) };
        match c.update_cluster(string(&prior.id)?, &req).await {
            Ok(cl) => Some((state_of(&cl, &planned.tags), pp)),
            Err(e) => {
                report(d, "Updating the cluster", &e, &[("tags", "tags")]);
                None
            }
        }
    }

    async fn destroy<'a>(
        &self,
        d: &mut Diagnostics,
        prior: ClusterState,
        _pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<()> {
        let c = client(&self.0, d).await?;
        deleted(d, "Deleting the cluster", c.delete_cluster(string(&prior.id)?).await)
    }

    /// `terraform import berth_cluster.x <name or id>`
    async fn import<'a>(&self, _d: &mut Diagnostics, id: String) -> Option<(ClusterState, ValueEmpty)> {
        Some((ClusterState { id: known(id), ..Default::default() }, ValueEmpty::default()))
    }
}
