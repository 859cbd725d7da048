//! `berth_service`: a desired count of tasks kept running. Changing the task
//! definition starts a rolling deployment; `wait_for_steady_state` makes
//! apply wait until it is done. Destroy scales the service to zero and
//! waits until its last task stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use berth_api::capacity::LaunchType;
use berth_api::hosts::{PlacementConstraint, PlacementStrategy};
use berth_api::services::{
    CircuitBreaker, CreateServiceRequest, DeleteServiceQuery, DeploymentConfiguration, SchedulingStrategy, Service,
    ServiceStatus, UpdateServiceRequest,
};
use berth_sdk::waiters::Wait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Block, NestedBlock, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource, map};

use crate::util::*;

pub struct ServiceResource(pub Api);

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct StrategyBlock {
    #[serde(rename = "type")]
    pub kind: Value<String>,
    pub field: Value<String>,
}

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct ConstraintBlock {
    #[serde(rename = "type")]
    pub kind: Value<String>,
    pub expression: Value<String>,
    pub attribute: Value<String>,
    pub max: Value<i64>,
}

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct ServiceState {
    pub id: Value<String>,
    pub cluster: Value<String>,
    pub name: Value<String>,
    pub task_definition: Value<String>,
    pub desired_count: Value<i64>,
    pub scheduling_strategy: Value<String>,
    pub launch_type: Value<String>,
    pub deployment_minimum_healthy_percent: Value<i64>,
    pub deployment_maximum_percent: Value<i64>,
    pub min_healthy_time_seconds: Value<i64>,
    pub circuit_breaker_rollback: Value<bool>,
    pub failure_threshold: Value<i64>,
    pub health_check_grace_period_seconds: Value<i64>,
    pub placement_strategy: Value<Vec<StrategyBlock>>,
    pub placement_constraint: Value<Vec<ConstraintBlock>>,
    pub tags: Value<BTreeMap<String, String>>,
    pub wait_for_steady_state: Value<bool>,
}

const WAIT: Duration = Duration::from_secs(600);

fn daemon(s: &ServiceState) -> bool {
    string(&s.scheduling_strategy) == Some("DAEMON")
}

/// The plan from the configuration, with every default filled in.
fn planned(config: ServiceState) -> ServiceState {
    let is_daemon = daemon(&config);
    ServiceState {
        id: Value::Unknown,
        scheduling_strategy: or_default(&config.scheduling_strategy, "REPLICA".into()),
        launch_type: or_default(&config.launch_type, "EXTERNAL".into()),
        desired_count: if is_daemon { config.desired_count } else { or_default(&config.desired_count, 1) },
        deployment_minimum_healthy_percent: or_default(
            &config.deployment_minimum_healthy_percent,
            if is_daemon { 0 } else { 100 },
        ),
        deployment_maximum_percent: or_default(&config.deployment_maximum_percent, if is_daemon { 100 } else { 200 }),
        min_healthy_time_seconds: or_default(&config.min_healthy_time_seconds, 10),
        circuit_breaker_rollback: or_default(&config.circuit_breaker_rollback, true),
        health_check_grace_period_seconds: or_default(&config.health_check_grace_period_seconds, 0),
        placement_strategy: or_default(&config.placement_strategy, Vec::new()),
        placement_constraint: or_default(&config.placement_constraint, Vec::new()),
        wait_for_steady_state: or_default(&config.wait_for_steady_state, false),
        ..config
    }
}

fn u32_of(v: &Value<i64>) -> Option<u32> {
    v.as_ref_option().and_then(|v| u32::try_from(*v).ok())
}

fn strategies(s: &ServiceState) -> Vec<PlacementStrategy> {
    s.placement_strategy
        .as_ref_option()
        .into_iter()
        .flatten()
        .map(|b| PlacementStrategy {
            strategy_type: string(&b.kind).unwrap_or_default().to_owned(),
            field: b.field.as_ref_option().cloned(),
        })
        .collect()
}

fn constraints(s: &ServiceState) -> Vec<PlacementConstraint> {
    s.placement_constraint
        .as_ref_option()
        .into_iter()
        .flatten()
        .map(|b| PlacementConstraint {
            constraint_type: string(&b.kind).unwrap_or_default().to_owned(),
            expression: b.expression.as_ref_option().cloned(),
            attribute: b.attribute.as_ref_option().cloned(),
            max: u32_of(&b.max),
        })
        .collect()
}

fn configuration(s: &ServiceState) -> DeploymentConfiguration {
    DeploymentConfiguration {
        minimum_healthy_percent: u32_of(&s.deployment_minimum_healthy_percent),
        maximum_percent: u32_of(&s.deployment_maximum_percent),
        min_healthy_time_seconds: u32_of(&s.min_healthy_time_seconds),
        circuit_breaker: CircuitBreaker {
            enable: true,
            rollback: s.circuit_breaker_rollback.as_ref_option().copied().unwrap_or(true),
            threshold: u32_of(&s.failure_threshold),
        },
    }
}

/// The state from the API, keeping how the configuration named the task
/// definition (`web` stays `web` while the service runs the family's revision).
fn state_of(svc: &Service, prior: &ServiceState) -> ServiceState {
    let cfg = &svc.deployment_configuration;
    let family = svc.task_definition.rsplit_once(':').map_or(svc.task_definition.as_str(), |(f, _)| f);
    let task_definition = match string(&prior.task_definition) {
        Some(p) if p == svc.task_definition || (!p.contains(':') && p == family) => prior.task_definition.clone(),
        _ => known(svc.task_definition.clone()),
    };
    let is_daemon = svc.scheduling_strategy == SchedulingStrategy::Daemon;
    ServiceState {
        id: known(svc.id.to_string()),
        cluster: match string(&prior.cluster) {
            Some(c) if c == svc.cluster || c == svc.cluster_id.to_string() => prior.cluster.clone(),
            _ => known(svc.cluster.clone()),
        },
        name: known(svc.name.clone()),
        task_definition,
        // A daemon's count follows its hosts: not a setting.
        desired_count: if is_daemon { Value::Null } else { known(i64::from(svc.desired_count)) },
        scheduling_strategy: known(svc.scheduling_strategy.as_str().to_owned()),
        launch_type: known(svc.launch_type.as_str().to_owned()),
        deployment_minimum_healthy_percent: some_or_null(cfg.minimum_healthy_percent.map(i64::from)),
        deployment_maximum_percent: some_or_null(cfg.maximum_percent.map(i64::from)),
        min_healthy_time_seconds: some_or_null(cfg.min_healthy_time_seconds.map(i64::from)),
        circuit_breaker_rollback: known(cfg.circuit_breaker.rollback),
        failure_threshold: some_or_null(cfg.circuit_breaker.threshold.map(i64::from)),
        health_check_grace_period_seconds: known(i64::from(svc.health_check_grace_period_seconds)),
        placement_strategy: known(
            svc.placement_strategy
                .iter()
                .map(|s| StrategyBlock { kind: known(s.strategy_type.clone()), field: some_or_null(s.field.clone()) })
                .collect(),
        ),
        placement_constraint: known(
            svc.placement_constraints
                .iter()
                .map(|c| ConstraintBlock {
                    kind: known(c.constraint_type.clone()),
                    expression: some_or_null(c.expression.clone()),
                    attribute: some_or_null(c.attribute.clone()),
                    max: some_or_null(c.max.map(i64::from)),
                })
                .collect(),
        ),
        tags: if svc.tags.is_empty() && prior.tags.is_null() { Value::Null } else { known(svc.tags.clone()) },
        // Not the API's: how this configuration wants apply to behave.
        wait_for_steady_state: match &prior.wait_for_steady_state {
            Value::Value(b) => known(*b),
            _ => known(false),
        },
    }
}

const FIELDS: &[(&str, &str)] = &[
    ("name", "name"),
    ("task_definition", "task_definition"),
    ("desired_count", "desired_count"),
    ("deployment_configuration.minimum_healthy_percent", "deployment_minimum_healthy_percent"),
    ("deployment_configuration.maximum_percent", "deployment_maximum_percent"),
    ("deployment_configuration.min_healthy_time_seconds", "min_healthy_time_seconds"),
    ("deployment_configuration.circuit_breaker", "failure_threshold"),
    ("placement_strategy", "placement_strategy"),
    ("placement_constraints", "placement_constraint"),
    ("health_check_grace_period_seconds", "health_check_grace_period_seconds"),
    ("tags", "tags"),
];

impl ServiceResource {
    async fn settle(
        &self,
        d: &mut Diagnostics,
        c: &berth_sdk::Client,
        planned: &ServiceState,
        svc: Service,
    ) -> Option<ServiceState> {
        let mut svc = svc;
        if planned.wait_for_steady_state.as_ref_option() == Some(&true) {
            match c.wait_service_stable(&svc.cluster_id.to_string(), &svc.id.to_string(), Wait::timeout(WAIT)).await {
                Ok(s) => svc = s,
                Err(e) => {
                    // The service exists: keep it in state, and say why apply did not finish.
                    report(d, "Waiting for the service to be steady", &e, &[]);
                    return Some(state_of(&svc, planned));
                }
            }
        }
        Some(state_of(&svc, planned))
    }
}

#[async_trait]
impl Resource for ServiceResource {
    type State<'a> = ServiceState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _d: &mut Diagnostics) -> Option<Schema> {
        let (s, n, b) = (AttributeType::String, AttributeType::Number, AttributeType::Bool);
        Some(Schema {
            version: 1,
            block: Block {
                attributes: map! {
                    "id" => attr(s.clone(), Computed, "The service's id"),
                    "cluster" => attr(s.clone(), Required, "The cluster (name or id); changing it replaces the service"),
                    "name" => attr(s.clone(), Required, "Unique in the cluster; changing it replaces the service"),
                    "task_definition" => attr(s.clone(), Required, "family or family:revision; a change rolls the service out"),
                    "desired_count" => attr(n.clone(), OptionalComputed, "Tasks to keep running (default 1; not for DAEMON)"),
                    "scheduling_strategy" => attr(s.clone(), OptionalComputed, "REPLICA (default) or DAEMON; changing it replaces the service"),
                    "launch_type" => attr(s.clone(), OptionalComputed, "EXTERNAL (default: the cluster's own hosts) or MANAGED (the operator's shared capacity); changing it replaces the service"),
                    "deployment_minimum_healthy_percent" => attr(n.clone(), OptionalComputed, "Healthy tasks kept during a deployment, % (default 100; 0 for DAEMON)"),
                    "deployment_maximum_percent" => attr(n.clone(), OptionalComputed, "Tasks allowed at once during a deployment, % (default 200; 100 for DAEMON)"),
                    "min_healthy_time_seconds" => attr(n.clone(), OptionalComputed, "RUNNING this long counts as healthy without health checks (default 10)"),
                    "circuit_breaker_rollback" => attr(b.clone(), OptionalComputed, "Roll a failing deployment back to the last completed one (default true)"),
                    "failure_threshold" => attr(n.clone(), Optional, "Failed launches that fail a deployment (default: half the desired count, 10-200)"),
                    "health_check_grace_period_seconds" => attr(n, OptionalComputed, "Failing health checks are ignored this long after RUNNING (default 0)"),
                    "tags" => attr(AttributeType::Map(Box::new(s)), Optional, "Tags"),
                    "wait_for_steady_state" => attr(b, OptionalComputed, "Apply waits until every desired task runs healthy (default false)")
                },
                blocks: map! {
                    "placement_strategy" => NestedBlock::List(Block {
                        attributes: map! {
                            "type" => attr(AttributeType::String, Required, "binpack, spread or random"),
                            "field" => attr(AttributeType::String, Optional, "binpack: cpu or memory; spread: an attribute or host.id")
                        },
                        ..Default::default()
                    }),
                    "placement_constraint" => NestedBlock::List(Block {
                        attributes: map! {
                            "type" => attr(AttributeType::String, Required, "distinct_host, member_of or max_per"),
                            "expression" => attr(AttributeType::String, Optional, "member_of: an expression over host attributes"),
                            "attribute" => attr(AttributeType::String, Optional, "max_per: the attribute"),
                            "max" => attr(AttributeType::Number, Optional, "max_per: the most tasks per value")
                        },
                        ..Default::default()
                    })
                },
                description: "A Berth service: a desired count of tasks kept running and rolled out".into(),
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, d: &mut Diagnostics, config: ServiceState) -> Option<()> {
        if let Some(s) = string(&config.scheduling_strategy)
            && SchedulingStrategy::parse(s).is_none()
        {
            d.error(
                "Invalid scheduling_strategy",
                format!("{s:?} is not REPLICA or DAEMON"),
                AttributePath::new("scheduling_strategy"),
            );
        }
        if let Some(l) = string(&config.launch_type)
            && LaunchType::parse(l).is_none()
        {
            d.error(
                "Invalid launch_type",
                format!("{l:?} is not EXTERNAL or MANAGED"),
                AttributePath::new("launch_type"),
            );
        }
        if daemon(&config) && config.desired_count.is_value() {
            d.error(
                "desired_count with DAEMON",
                "a DAEMON service runs one task per eligible host; remove desired_count",
                AttributePath::new("desired_count"),
            );
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        d: &mut Diagnostics,
        state: ServiceState,
        p: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(ServiceState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let cluster = string(&state.cluster)?.to_owned();
        let key = string(&state.id).or(string(&state.name))?.to_owned();
        match read_result(d, "Reading the service", c.get_service(&cluster, &key).await) {
            Read::Found(svc) if svc.status == ServiceStatus::Active => Some((state_of(&svc, &state), p)),
            // Deleted (draining or gone) out of band: plan to create it again.
            Read::Found(_) | Read::Gone => None,
            Read::Failed => Some((state, p)),
        }
    }

    async fn plan_create<'a>(
        &self,
        _d: &mut Diagnostics,
        _p: ServiceState,
        config: ServiceState,
        _m: ValueEmpty,
    ) -> Option<(ServiceState, ValueEmpty)> {
        Some((planned(config), ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        _d: &mut Diagnostics,
        prior: ServiceState,
        _p: ServiceState,
        config: ServiceState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(ServiceState, ValueEmpty, Vec<AttributePath>)> {
        let mut plan = planned(config);
        plan.id = keep(&prior.id);
        let replace = replacements(&[
            ("cluster", changed(&prior.cluster, &plan.cluster)),
            ("name", changed(&prior.name, &plan.name)),
            ("scheduling_strategy", changed(&prior.scheduling_strategy, &plan.scheduling_strategy)),
            ("launch_type", changed(&prior.launch_type, &plan.launch_type)),
        ]);
        if !replace.is_empty() {
            plan.id = Value::Unknown;
        }
        Some((plan, pp, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _d: &mut Diagnostics,
        _prior: ServiceState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<ValueEmpty> {
        Some(pp)
    }

    async fn create<'a>(
        &self,
        d: &mut Diagnostics,
        planned: ServiceState,
        _c: ServiceState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(ServiceState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let strategy = string(&planned.scheduling_strategy).and_then(SchedulingStrategy::parse).unwrap_or_default();
        let req = CreateServiceRequest {
            name: string(&planned.name)?.to_owned(),
            task_definition: string(&planned.task_definition)?.to_owned(),
            desired_count: if strategy == SchedulingStrategy::Daemon { None } else { u32_of(&planned.desired_count) },
            scheduling_strategy: strategy,
            launch_type: string(&planned.launch_type).and_then(LaunchType::parse).unwrap_or_default(),
            placement_strategy: strategies(&planned),
            placement_constraints: constraints(&planned),
            deployment_configuration: Some(configuration(&planned)),
            health_check_grace_period_seconds: u32_of(&planned.health_check_grace_period_seconds).unwrap_or(0),
            tags: planned.tags.as_ref_option().cloned().unwrap_or_default(),
            client_token: None,
        };
        match c.create_service(string(&planned.cluster)?, &req).await {
            Ok(svc) => Some((self.settle(d, &c, &planned, svc).await?, pp)),
            Err(e) => {
                report(d, "Creating the service", &e, FIELDS);
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        d: &mut Diagnostics,
        prior: ServiceState,
        planned: ServiceState,
        _c: ServiceState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(ServiceState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let req = UpdateServiceRequest {
            task_definition: changed(&prior.task_definition, &planned.task_definition)
                .then(|| planned.task_definition.as_ref_option().cloned())
                .flatten(),
            desired_count: if daemon(&planned) { None } else { u32_of(&planned.desired_count) },
            placement_strategy: Some(strategies(&planned)),
            placement_constraints: Some(constraints(&planned)),
            deployment_configuration: Some(configuration(&planned)),
            health_check_grace_period_seconds: u32_of(&planned.health_check_grace_period_seconds),
            tags: Some(planned.tags.as_ref_option().cloned().unwrap_or_default()),
            ..Default::default()
        };
        match c.update_service(string(&prior.cluster)?, string(&prior.id)?, &req).await {
            Ok(svc) => Some((self.settle(d, &c, &planned, svc).await?, pp)),
            Err(e) => {
                report(d, "Updating the service", &e, FIELDS);
                None
            }
        }
    }

    async fn destroy<'a>(
        &self,
        d: &mut Diagnostics,
        prior: ServiceState,
        _pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<()> {
        let c = client(&self.0, d).await?;
        let (cluster, id) = (string(&prior.cluster)?.to_owned(), string(&prior.id)?.to_owned());
        match c.delete_service(&cluster, &id, &DeleteServiceQuery { force: Some(false) }).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Some(()),
            Err(e) => {
                report(d, "Deleting the service", &e, &[]);
                return None;
            }
        }
        // Drains to zero: done when its last task stopped.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match c.get_service(&cluster, &id).await {
                Ok(s) if s.status == ServiceStatus::Inactive => return Some(()),
                Err(e) if is_not_found(&e) => return Some(()),
                Err(e) => {
                    report(d, "Waiting for the service's tasks to stop", &e, &[]);
                    return None;
                }
                Ok(_) if tokio::time::Instant::now() >= deadline => {
                    d.root_error("Deleting the service timed out", "its tasks did not stop within 10 minutes");
                    return None;
                }
                Ok(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }

    /// `terraform import berth_service.x cluster/name`
    async fn import<'a>(&self, d: &mut Diagnostics, id: String) -> Option<(ServiceState, ValueEmpty)> {
        let Some((cluster, name)) = id.split_once('/') else {
            d.root_error("Invalid import id", format!("{id:?}: import a service as cluster/name"));
            return None;
        };
        Some((
            ServiceState { cluster: known(cluster.to_owned()), name: known(name.to_owned()), ..Default::default() },
            ValueEmpty::default(),
        ))
    }
}
