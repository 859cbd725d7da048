//! `berth_task_definition`: one revision of a family. Revisions are
//! immutable, so every change forces a replacement: a new revision is
//! registered and the old one deregistered, as `aws_ecs_task_definition`
//! does. `container_definitions` is JSON (`jsonencode([...])`), compared by
//! meaning, not by text, so formatting never shows as a change.

use std::collections::BTreeMap;

use async_trait::async_trait;
use berth_api::task_definitions::{
    ContainerDefinition, NetworkMode, RegisterTaskDefinitionRequest, TaskDefinition, TaskDefinitionStatus,
};
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Block, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource, map};

use crate::util::*;

pub struct TaskDefinitionResource(pub Api);

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct TaskDefinitionState {
    /// `family:revision`.
    pub id: Value<String>,
    pub family: Value<String>,
    pub revision: Value<i64>,
    pub container_definitions: Value<String>,
    pub cpu: Value<i64>,
    pub memory: Value<i64>,
    pub network_mode: Value<String>,
    pub tags: Value<BTreeMap<String, String>>,
}

/// The definitions in one canonical JSON form, or why they are not valid.
pub fn canonical(json: &str) -> Result<String, String> {
    let defs: Vec<ContainerDefinition> = serde_json::from_str(json)
        .map_err(|e| format!("container_definitions is not a list of container definitions: {e}"))?;
    serde_json::to_string(&defs).map_err(|e| e.to_string())
}

fn network_mode(s: &str) -> Option<NetworkMode> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

fn mode_name(m: NetworkMode) -> String {
    serde_json::to_value(m).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "bridge".into())
}

/// The state for a revision, keeping the prior JSON text when it means the same.
pub fn state_of(td: &TaskDefinition, prior: &TaskDefinitionState) -> TaskDefinitionState {
    let api_json = serde_json::to_string(&td.container_definitions).unwrap_or_default();
    let container_definitions = match string(&prior.container_definitions) {
        Some(p) if canonical(p).as_deref() == Ok(api_json.as_str()) => prior.container_definitions.clone(),
        _ => known(api_json),
    };
    TaskDefinitionState {
        id: known(format!("{}:{}", td.family, td.revision)),
        family: known(td.family.clone()),
        revision: known(td.revision),
        container_definitions,
        cpu: some_or_null(td.cpu.map(i64::from)),
        memory: some_or_null(td.memory.map(i64::from)),
        network_mode: known(mode_name(td.network_mode)),
        tags: if td.tags.is_empty() && prior.tags.is_null() { Value::Null } else { known(td.tags.clone()) },
    }
}

fn planned(config: TaskDefinitionState) -> TaskDefinitionState {
    TaskDefinitionState {
        id: Value::Unknown,
        revision: Value::Unknown,
        network_mode: or_default(&config.network_mode, "bridge".into()),
        ..config
    }
}

#[async_trait]
impl Resource for TaskDefinitionResource {
    type State<'a> = TaskDefinitionState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _d: &mut Diagnostics) -> Option<Schema> {
        let number = AttributeType::Number;
        Some(Schema {
            version: 1,
            block: Block {
                attributes: map! {
                    "id" => attr(AttributeType::String, Computed, "family:revision"),
                    "family" => attr(AttributeType::String, Required, "The family; every change registers a new revision"),
                    "revision" => attr(number.clone(), Computed, "The revision number"),
                    "container_definitions" => attr(AttributeType::String, Required, "The containers, as JSON: jsonencode([{name, image, memory, ...}])"),
                    "cpu" => attr(number.clone(), Optional, "CPU units for the task (1024 = one core); default the containers' sum"),
                    "memory" => attr(number, Optional, "MiB for the task; default the containers' sum"),
                    "network_mode" => attr(AttributeType::String, OptionalComputed, "bridge (default), host or none"),
                    "tags" => attr(AttributeType::Map(Box::new(AttributeType::String)), Optional, "Tags")
                },
                description: "A revision of a Berth task-definition family".into(),
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, d: &mut Diagnostics, config: TaskDefinitionState) -> Option<()> {
        if let Some(json) = string(&config.container_definitions)
            && let Err(e) = canonical(json)
        {
            d.error("Invalid container_definitions", e, AttributePath::new("container_definitions"));
        }
        if let Some(m) = string(&config.network_mode)
            && network_mode(m).is_none()
        {
            d.error(
                "Invalid network_mode",
                format!("{m:?} is not bridge, host or none"),
                AttributePath::new("network_mode"),
            );
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        d: &mut Diagnostics,
        state: TaskDefinitionState,
        p: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(TaskDefinitionState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let id = string(&state.id)?.to_owned();
        let Some((family, revision)) = id.rsplit_once(':') else {
            d.root_error("Invalid id", format!("{id:?} is not family:revision"));
            return None;
        };
        match read_result(d, "Reading the task definition", c.get_task_definition_revision(family, revision).await) {
            // A deregistered revision is gone for Terraform, as in the AWS provider: plan a new one.
            Read::Found(td) if td.status == TaskDefinitionStatus::Inactive => None,
            Read::Found(td) => Some((state_of(&td, &state), p)),
            Read::Gone => None,
            Read::Failed => Some((state, p)),
        }
    }

    async fn plan_create<'a>(
        &self,
        _d: &mut Diagnostics,
        _p: TaskDefinitionState,
        config: TaskDefinitionState,
        _m: ValueEmpty,
    ) -> Option<(TaskDefinitionState, ValueEmpty)> {
        Some((planned(config), ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        _d: &mut Diagnostics,
        prior: TaskDefinitionState,
        _p: TaskDefinitionState,
        config: TaskDefinitionState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(TaskDefinitionState, ValueEmpty, Vec<AttributePath>)> {
        let mut plan = planned(config);
        // Same meaning, other text: no change.
        if let (Some(a), Some(b)) = (string(&prior.container_definitions), string(&plan.container_definitions))
            && canonical(a).ok() == canonical(b).ok()
        {
            plan.container_definitions = prior.container_definitions.clone();
        }
        let replace = replacements(&[
            ("family", changed(&prior.family, &plan.family)),
            ("container_definitions", changed(&prior.container_definitions, &plan.container_definitions)),
            ("cpu", changed(&prior.cpu, &plan.cpu)),
            ("memory", changed(&prior.memory, &plan.memory)),
            ("network_mode", changed(&prior.network_mode, &plan.network_mode)),
            ("tags", changed(&prior.tags, &plan.tags)),
        ]);
        if replace.is_empty() {
            plan.id = keep(&prior.id);
            plan.revision = keep(&prior.revision);
        }
        Some((plan, pp, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _d: &mut Diagnostics,
        _prior: TaskDefinitionState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<ValueEmpty> {
        Some(pp)
    }

    async fn create<'a>(
        &self,
        d: &mut Diagnostics,
        planned: TaskDefinitionState,
        _c: TaskDefinitionState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(TaskDefinitionState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let containers: Vec<ContainerDefinition> = match serde_json::from_str(string(&planned.container_definitions)?) {
            Ok(v) => v,
            Err(e) => {
                d.error("Invalid container_definitions", e.to_string(), AttributePath::new("container_definitions"));
                return None;
            }
        };
        let req = RegisterTaskDefinitionRequest {
            family: string(&planned.family)?.to_owned(),
            container_definitions: containers,
            cpu: planned.cpu.as_ref_option().and_then(|v| u32::try_from(*v).ok()),
            memory: planned.memory.as_ref_option().and_then(|v| u32::try_from(*v).ok()),
            network_mode: string(&planned.network_mode).and_then(network_mode).unwrap_or_default(),
            volumes: Vec::new(),
            restart_policy: None,
            tags: planned.tags.as_ref_option().cloned().unwrap_or_default(),
            client_token: None,
        };
        match c.register_task_definition(&req).await {
            Ok(td) => Some((state_of(&td, &planned), pp)),
            Err(e) => {
                report(
                    d,
                    "Registering the task definition",
                    &e,
                    &[
                        ("container_definitions", "container_definitions"),
                        ("family", "family"),
                        ("cpu", "cpu"),
                        ("memory", "memory"),
                    ],
                );
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        _d: &mut Diagnostics,
        _prior: TaskDefinitionState,
        planned: TaskDefinitionState,
        _c: TaskDefinitionState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(TaskDefinitionState, ValueEmpty)> {
        // Every change is a replacement; an update only happens with nothing to change.
        Some((planned, pp))
    }

    async fn destroy<'a>(
        &self,
        d: &mut Diagnostics,
        prior: TaskDefinitionState,
        _pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<()> {
        let c = client(&self.0, d).await?;
        let id = string(&prior.id)?.to_owned();
        let (family, revision) = id.rsplit_once(':')?;
        deleted(d, "Deregistering the task definition", c.deregister_task_definition(family, revision).await)
    }

    /// `terraform import berth_task_definition.x family:revision`
    async fn import<'a>(&self, d: &mut Diagnostics, id: String) -> Option<(TaskDefinitionState, ValueEmpty)> {
        if id.rsplit_once(':').is_none_or(|(_, r)| r.parse::<i64>().is_err()) {
            d.root_error("Invalid import id", format!("{id:?}: import a revision as family:revision"));
            return None;
        }
        Some((TaskDefinitionState { id: known(id), ..Default::default() }, ValueEmpty::default()))
    }
}
