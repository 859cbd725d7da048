//! Berth's placement engine: a pure function from cluster state to a plan.
//!
//! Given the hosts of a cluster (free CPU, memory and ports, attributes,
//! status), what a task needs, how many such tasks to place, the tasks of the
//! same group already placed, and a placement spec (strategies and
//! constraints), [`place`] returns a host for each task or a structured
//! failure that counts the hosts rejected per reason, as ECS's `failures[]`
//! does. It does no I/O and its randomness is seeded, so the same input gives
//! the same plan; the store commits the plan optimistically.

pub mod engine;
pub mod expr;

pub use engine::{
    Constraint, Host, HostState, Placement, Placer, Plan, Reason, Resource, Spec, Strategy, TaskNeeds, Unplaced,
    explain, place,
};
pub use expr::{Expr, ParseError};
