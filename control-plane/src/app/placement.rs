//! Between the API's placement spec and the engine, and between the engine's
//! plan and the store's reservation.

use std::collections::HashMap;

use berth_api::hosts::{PlacementConstraint, PlacementStrategy};
use berth_api::task_definitions::{ContainerDefinition, NetworkMode};
use berth_placement::{Constraint, Expr, Host, HostState, Resource, Spec, Strategy, TaskNeeds};

use super::{AppError, AppResult};
use crate::store::hosts::HostRow;

pub const MAX_STRATEGIES: usize = 3;
pub const MAX_CONSTRAINTS: usize = 10;

/// The engine's spec from the API's, with errors naming the field (and, for
/// expressions, the position in them).
pub fn spec_from(strategies: &[PlacementStrategy], constraints: &[PlacementConstraint]) -> AppResult<Spec> {
    if strategies.len() > MAX_STRATEGIES {
        return Err(AppError::validation("placement_strategy", format!("at most {MAX_STRATEGIES} strategies")));
    }
    if constraints.len() > MAX_CONSTRAINTS {
        return Err(AppError::validation("placement_constraints", format!("at most {MAX_CONSTRAINTS} constraints")));
    }
    let mut spec = Spec::default();
    for (i, s) in strategies.iter().enumerate() {
        let field = format!("placement_strategy[{i}]");
        let strategy = match (s.strategy_type.as_str(), s.field.as_deref()) {
            ("binpack", Some("memory") | None) => Strategy::Binpack(Resource::Memory),
            ("binpack", Some("cpu")) => Strategy::Binpack(Resource::Cpu),
            ("binpack", Some(other)) => {
                return Err(AppError::validation(
                    format!("{field}.field"),
                    format!("binpack works on cpu or memory, not {other:?}"),
                ));
            }
            ("spread", Some(attr)) if !attr.is_empty() => {
                Strategy::Spread(attr.trim_start_matches("attribute:").to_owned())
            }
            ("spread", _) => Strategy::Spread("host.id".into()),
            ("random", None) => Strategy::Random,
            ("random", Some(_)) => return Err(AppError::validation(format!("{field}.field"), "random takes no field")),
            (other, _) => {
                return Err(AppError::validation(
                    format!("{field}.type"),
                    format!("unknown strategy {other:?}: use binpack, spread or random"),
                ));
            }
        };
        spec.strategies.push(strategy);
    }
    if spec.strategies.is_empty() {
        spec.strategies.push(Strategy::Spread("host.id".into()));
    }
    for (i, c) in constraints.iter().enumerate() {
        let field = format!("placement_constraints[{i}]");
        let constraint = match c.constraint_type.as_str() {
            "distinct_host" => Constraint::DistinctHost,
            "member_of" => {
                let src = c.expression.as_deref().ok_or_else(|| {
                    AppError::validation(format!("{field}.expression"), "member_of needs an expression")
                })?;
                let expr = Expr::parse(src)
                    .map_err(|e| AppError::validation(format!("{field}.expression"), format!("{e} in {src:?}")))?;
                Constraint::MemberOf(expr)
            }
            "max_per" => {
                let attribute = c
                    .attribute
                    .clone()
                    .ok_or_else(|| AppError::validation(format!("{field}.attribute"), "max_per needs an attribute"))?;
                let max = c
                    .max
                    .filter(|m| *m >= 1)
                    .ok_or_else(|| AppError::validation(format!("{field}.max"), "max_per needs max >= 1"))?;
                Constraint::MaxPer { attribute: attribute.trim_start_matches("attribute:").to_owned(), max }
            }
            other => {
                return Err(AppError::validation(
                    format!("{field}.type"),
                    format!("unknown constraint {other:?}: use distinct_host, member_of or max_per"),
                ));
            }
        };
        spec.constraints.push(constraint);
    }
    Ok(spec)
}

/// What a task needs from a host: resources and ports.
pub fn needs_of(cpu: u32, memory: u32, network_mode: NetworkMode, containers: &[ContainerDefinition]) -> TaskNeeds {
    let mut needs = TaskNeeds { cpu, memory, ..Default::default() };
    if network_mode == NetworkMode::None {
        return needs;
    }
    for m in containers.iter().flat_map(|c| &c.port_mappings) {
        match network_mode {
            NetworkMode::Host => needs.static_ports.push(m.container_port),
            _ if m.host_port == 0 => needs.dynamic_ports += 1,
            _ => needs.static_ports.push(m.host_port),
        }
    }
    needs
}

/// The engine's view of the cluster's hosts.
pub fn engine_hosts(rows: &[HostRow]) -> Vec<Host> {
    rows.iter()
        .map(|h| Host {
            id: h.host_id(),
            state: match h.status.as_str() {
                "ACTIVE" => HostState::Active,
                "DRAINING" => HostState::Draining,
                "LOST" => HostState::Lost,
                _ => HostState::Disconnected,
            },
            attributes: h.attributes.0.clone(),
            cpu_free: clamp(h.cpu_total - h.cpu_reserved - h.cpu_used),
            memory_free: clamp(h.memory_total - h.memory_reserved - h.memory_used),
            ports_used: h.ports_used.0.clone(),
            dynamic_ports: (clamp16(h.port_range_start), clamp16(h.port_range_end)),
        })
        .collect()
}

fn clamp(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn clamp16(v: i64) -> u16 {
    u16::try_from(v.clamp(0, i64::from(u16::MAX))).unwrap_or(u16::MAX)
}

/// The group counts per host, in the order of `rows`.
pub fn group_counts(rows: &[HostRow], by_host: &HashMap<uuid::Uuid, i64>) -> Vec<u32> {
    rows.iter().map(|h| clamp(by_host.get(&h.id).copied().unwrap_or(0))).collect()
}

/// A seed for one placement: random, so concurrent placements differ, but
/// recorded nowhere, since the decision itself is kept on the task.
pub fn seed() -> u64 {
    use rand::RngCore;
    rand::rng().next_u64()
}
