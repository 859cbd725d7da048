//! Berth's public contract: the JSON wire types of API v1, typed ids and the
//! error body. Servers, the SDK, the CLI and the Terraform provider all use
//! these types, so there is exactly one definition of what goes over the wire.
//!
//! This crate has no server dependencies on purpose: a client can depend on it
//! without pulling in axum, sqlx or tokio.

pub mod agent;
pub mod auth;
pub mod capacity;
pub mod clusters;
pub mod common;
pub mod error;
pub mod events;
pub mod hosts;
pub mod ids;
pub mod images;
pub mod quotas;
pub mod registry_credentials;
pub mod services;
pub mod task_definitions;
pub mod tasks;

pub use common::{Page, Tags};
pub use error::{ErrorBody, ErrorCode};
pub use ids::*;

/// The header carrying a request's id on every response (and accepted on requests).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The header naming a client-chosen key that makes a mutating call safe to retry.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The header set on a response that was replayed from an earlier request with the same key.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";
/// Largest page a list call returns.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Page size when the caller gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
