//! Berth's control plane: the HTTP API, authentication, app logic and the store.
//!
//! Layers, outermost first (each has its own error type):
//! - [`http`]: axum routes, extractors, middleware; maps errors to HTTP in one place.
//! - [`app`]: what each API operation does, independent of HTTP.
//! - [`store`]: durable state in PostgreSQL or SQLite, always scoped to one account.
//! - [`auth`]: who is calling (SigV4, sessions, host credentials) and the policy.
//! - [`placement`]: the pure placement engine.
//! - [`reconcilers`]: the loops that keep services at their desired state.
//! - [`console`]: the web console, server-rendered over the same app calls.

pub mod app;
pub mod auth;
pub mod config;
pub mod console;
pub mod http;
pub mod ratelimit;
pub mod reconcilers;
pub mod server;
pub mod store;

/// The placement engine (a pure crate in `control-plane/placement/`, so its
/// benchmark builds without the server's dependencies).
pub use berth_placement as placement;
pub mod telemetry;
