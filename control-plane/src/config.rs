//! Server configuration. Values come from flags, then `BERTH_*` environment
//! variables (both handled by the CLI with clap), then a TOML file, then the
//! defaults below.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;

use serde::Deserialize;

use crate::app::Limits;
use crate::auth::keyring::Keyring;
use crate::auth::session::SessionSettings;
use crate::telemetry::LogFormat;

/// Everything `berth server` needs to run.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub database_url: String,
    pub db_max_connections: u32,
    pub log_format: LogFormat,
    pub limits: Limits,
    /// Requests per second per account, and the burst above it; None disables the limit.
    pub rate_limit: Option<(NonZeroU32, NonZeroU32)>,
    pub auth: AuthSettings,
    pub agent: crate::app::agent::AgentSettings,
    /// Every account's limits unless the operator sets its own.
    pub quotas: crate::app::quotas::QuotaDefaults,
}

/// Authentication settings.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// The SigV4 region clients sign for.
    pub region: String,
    /// Master keys that encrypt stored secrets, newest first.
    pub keyring: Keyring,
    pub sessions: SessionSettings,
}

pub const DEFAULT_REGION: &str = "local";

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
pub const DEFAULT_RATE_PER_SECOND: u32 = 100;
pub const DEFAULT_RATE_BURST: u32 = 200;

/// The TOML configuration file: every key optional, unknown keys refused.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub db_max_connections: Option<u32>,
    pub log_format: Option<LogFormat>,
    pub max_body_bytes: Option<usize>,
    pub max_task_definition_bytes: Option<usize>,
    pub max_containers_per_task_definition: Option<usize>,
    pub rate_limit_per_second: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub region: Option<String>,
    pub master_keys: Option<String>,
    pub master_key_file: Option<std::path::PathBuf>,
    pub session_lifetime_seconds: Option<u64>,
    pub session_max_lifetime_seconds: Option<u64>,
    pub signing_key_rotation_hours: Option<u64>,
    pub bootstrap_credentials_file: Option<std::path::PathBuf>,
    pub heartbeat_interval_seconds: Option<u64>,
    pub host_lost_timeout_seconds: Option<u64>,
    pub task_retention_hours: Option<u64>,
    pub event_retention_days: Option<u64>,
    /// Default quota limits by name (`[quotas]` table), over the built-in ones.
    pub quotas: Option<std::collections::BTreeMap<String, i64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: String, source: Box<toml::de::Error> },
    #[error("{0}")]
    Invalid(String),
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        toml::from_str(&text)
            .map_err(|source| ConfigError::Parse { path: path.display().to_string(), source: Box::new(source) })
    }
}

/// Builds rate-limit settings; 0 per second disables limiting.
pub fn rate_limit(per_second: u32, burst: u32) -> Result<Option<(NonZeroU32, NonZeroU32)>, ConfigError> {
    match (NonZeroU32::new(per_second), NonZeroU32::new(burst)) {
        (None, _) => Ok(None),
        (Some(r), Some(b)) => Ok(Some((r, b))),
        (Some(_), None) => Err(ConfigError::Invalid("rate_limit_burst must be at least 1".into())),
    }
}
