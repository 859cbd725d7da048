//! Server configuration. Values come from flags, then `BERTH_*` environment
//! variables (both handled by the CLI with clap), then a TOML file, then the
//! defaults below.

use std::net::SocketAddr;
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
    /// Per-account token buckets by class of call; None turns rate limiting off.
    pub rate_limits: Option<crate::ratelimit::RateLimitSettings>,
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
    pub rate_limits: Option<String>,
    pub request_timeout_seconds: Option<u64>,
    pub expensive_calls_per_account: Option<usize>,
    pub region: Option<String>,
    pub master_keys: Option<String>,
    pub master_key_file: Option<std::path::PathBuf>,
    pub session_lifetime_seconds: Option<u64>,
    pub session_max_lifetime_seconds: Option<u64>,
    pub signing_key_rotation_hours: Option<u64>,
    pub bootstrap_credentials_file: Option<std::path::PathBuf>,
    pub heartbeat_interval_seconds: Option<u64>,
    pub host_lost_timeout_seconds: Option<u64>,
    pub service_lease_seconds: Option<u64>,
    pub service_backoff_cap_seconds: Option<u64>,
    /// The sizes MANAGED tasks are rounded up to, `cpu:memory,...`.
    pub managed_task_sizes: Option<String>,
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
/// The rate limits: the read class's bucket from `per_second`/`burst` (0
/// turns rate limiting off altogether), and any class from `classes`
/// (`class=per_second/burst`, comma-separated).
pub fn rate_limits(
    per_second: u32,
    burst: u32,
    classes: Option<&str>,
) -> Result<Option<crate::ratelimit::RateLimitSettings>, ConfigError> {
    use crate::ratelimit::{Bucket, RateLimitSettings};
    if per_second == 0 {
        return Ok(None);
    }
    let mut settings = RateLimitSettings::default();
    let read = Bucket { per_second: f64::from(per_second), burst };
    read.validate().map_err(|e| ConfigError::Invalid(format!("rate_limit: {e}")))?;
    settings.defaults.insert(berth_api::quotas::RateLimitClass::Read, read);
    for item in classes.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let invalid = || ConfigError::Invalid(format!("rate_limits: {item:?} is not class=per_second/burst"));
        let (class, bucket) = item.split_once('=').ok_or_else(invalid)?;
        let class = berth_api::quotas::RateLimitClass::parse(class.trim()).ok_or_else(invalid)?;
        let (rate, burst) = bucket.split_once('/').ok_or_else(invalid)?;
        let bucket = Bucket {
            per_second: rate.trim().parse().map_err(|_| invalid())?,
            burst: burst.trim().parse().map_err(|_| invalid())?,
        };
        bucket.validate().map_err(|e| ConfigError::Invalid(format!("rate_limits: {class}: {e}")))?;
        settings.defaults.insert(class, bucket);
    }
    Ok(Some(settings))
}
