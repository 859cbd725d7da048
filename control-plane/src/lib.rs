//! Berth's control plane: the HTTP API, authentication, app logic and the store.
//!
//! Layers, outermost first (each has its own error type):
//! - [`http`]: axum routes, extractors, middleware; maps errors to HTTP in one place.
//! - [`app`]: what each API operation does, independent of HTTP.
//! - [`store`]: durable state in PostgreSQL or SQLite, always scoped to one account.

pub mod app;
pub mod auth;
pub mod config;
pub mod http;
pub mod server;
pub mod store;
pub mod telemetry;
