//! `berth server`

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use berth_control_plane::app::Limits;
use berth_control_plane::app::agent::AgentSettings;
use berth_control_plane::app::quotas::QuotaDefaults;
use berth_control_plane::app::service_scheduler::ServiceSchedulerSettings;
use berth_control_plane::auth::keyring::Keyring;
use berth_control_plane::auth::session::SessionSettings;
use berth_control_plane::config::{self, AuthSettings, FileConfig, ServerConfig};
use berth_control_plane::server::{BoundServer, build_app, open_database};
use berth_control_plane::telemetry::{self, LogFormat};
use clap::Args;
use time::Duration;

use crate::credentials::{self, Profile};

/// Options shared by `berth server` and `berth dev`.
#[derive(Args, Clone, Debug)]
pub struct CommonServerArgs {
    /// Log format of the server's output.
    #[arg(long, env = "BERTH_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "BERTH_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest task definition (as JSON) in bytes [default: 65536].
    #[arg(long, env = "BERTH_MAX_TASK_DEFINITION_BYTES")]
    pub max_task_definition_bytes: Option<usize>,
    /// Most containers in one task definition [default: 10].
    #[arg(long, env = "BERTH_MAX_CONTAINERS_PER_TASK_DEFINITION")]
    pub max_containers_per_task_definition: Option<usize>,
    /// Read calls per second each account may make; 0 turns all rate limits off [default: 100].
    #[arg(long, env = "BERTH_RATE_LIMIT_PER_SECOND")]
    pub rate_limit_per_second: Option<u32>,
    /// Read calls an account may make at once above its rate [default: 200].
    #[arg(long, env = "BERTH_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// Other classes' buckets, `class=per_second/burst,...` (classes: read, mutate, run_task, agent)
    /// [default: mutate=50/100,run_task=20/100,agent=5000/10000].
    #[arg(long, env = "BERTH_RATE_LIMITS")]
    pub rate_limits: Option<String>,
    /// Seconds a request may run before it is abandoned with 503 RequestTimeout [default: 60].
    #[arg(long, env = "BERTH_REQUEST_TIMEOUT_SECONDS")]
    pub request_timeout_seconds: Option<u64>,
    /// RunTask and placement simulations one account may have in flight per replica [default: 16].
    #[arg(long, env = "BERTH_EXPENSIVE_CALLS_PER_ACCOUNT")]
    pub expensive_calls_per_account: Option<usize>,
    /// The SigV4 region clients sign requests for [default: local].
    #[arg(long, env = "BERTH_REGION")]
    pub region: Option<String>,
    /// Master keys that encrypt stored secrets: `id:base64key[,id:base64key...]`, newest first
    /// (make one with `berth generate-master-key`). Prefer the environment or a file to the command line.
    #[arg(long, env = "BERTH_MASTER_KEYS", hide_env_values = true)]
    pub master_keys: Option<String>,
    /// A file holding the master keys, one `id:base64key` per line, newest first.
    #[arg(long, env = "BERTH_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Default lifetime of a session token in seconds [default: 3600].
    #[arg(long, env = "BERTH_SESSION_LIFETIME_SECONDS")]
    pub session_lifetime_seconds: Option<u64>,
    /// Longest lifetime a client may ask for, in seconds [default: 43200].
    #[arg(long, env = "BERTH_SESSION_MAX_LIFETIME_SECONDS")]
    pub session_max_lifetime_seconds: Option<u64>,
    /// How often a new session-signing key is made, in hours [default: 24].
    #[arg(long, env = "BERTH_SIGNING_KEY_ROTATION_HOURS")]
    pub signing_key_rotation_hours: Option<u64>,
    /// How often agents heartbeat, in seconds; three missed ones make a host DISCONNECTED [default: 5].
    #[arg(long, env = "BERTH_HEARTBEAT_INTERVAL_SECONDS")]
    pub heartbeat_interval_seconds: Option<u64>,
    /// Seconds without a heartbeat before a host is LOST and its tasks stop with HostLost [default: 60].
    #[arg(long, env = "BERTH_HOST_LOST_TIMEOUT_SECONDS")]
    pub host_lost_timeout_seconds: Option<u64>,
    /// Hours STOPPED tasks stay readable [default: 168, seven days].
    #[arg(long, env = "BERTH_TASK_RETENTION_HOURS")]
    pub task_retention_hours: Option<u64>,
    /// Days events stay in the log [default: 30].
    #[arg(long, env = "BERTH_EVENT_RETENTION_DAYS")]
    pub event_retention_days: Option<u64>,
    /// Seconds a replica's claim on a service lasts without renewal: how long
    /// services wait for another replica after theirs died [default: 10].
    #[arg(long, env = "BERTH_SERVICE_LEASE_SECONDS")]
    pub service_lease_seconds: Option<u64>,
    /// Longest wait, in seconds, before replacing the tasks of a service whose tasks keep failing [default: 300].
    #[arg(long, env = "BERTH_SERVICE_BACKOFF_CAP_SECONDS")]
    pub service_backoff_cap_seconds: Option<u64>,
    /// Default quota limits, `name=limit,...` (docs/quotas.md lists the names and built-in defaults).
    #[arg(long, env = "BERTH_QUOTAS")]
    pub quotas: Option<String>,
    /// The sizes MANAGED tasks are rounded up to, `cpu:memory,...` [default: Fargate's table, docs/managed-capacity.md].
    #[arg(long, env = "BERTH_MANAGED_TASK_SIZES")]
    pub managed_task_sizes: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// A TOML file with any of the settings below (flags and environment win over it).
    #[arg(long, env = "BERTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to serve the API on [default: 127.0.0.1:7070].
    #[arg(long, env = "BERTH_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// postgres://user:pass@host/db (production) or sqlite://path/to/berth.db (one machine).
    #[arg(long, env = "BERTH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Most database connections this replica opens [default: 16].
    #[arg(long, env = "BERTH_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// Where, on an empty database, the operator's first admin key is written (once, mode 0600)
    /// [default: ./berth-admin-credentials].
    #[arg(long, env = "BERTH_BOOTSTRAP_CREDENTIALS_FILE")]
    pub bootstrap_credentials_file: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonServerArgs,
}

/// Merges flags/environment over the file over the defaults.
pub fn resolve(args: &ServerArgs) -> anyhow::Result<ServerConfig> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let Some(database_url) = args.database_url.clone().or(file.database_url.clone()) else {
        bail!("no database: pass --database-url postgres://... or sqlite://path (or set BERTH_DATABASE_URL)");
    };
    let listen = match args.listen.or(file.listen) {
        Some(l) => l,
        None => config::DEFAULT_LISTEN.parse().context("default listen address")?,
    };
    let Some(keyring) = keyring_from(&args.common, &file)? else {
        bail!(
            "no master key: set BERTH_MASTER_KEYS or --master-key-file (create one with `berth generate-master-key`); \
             it encrypts the access-key secrets stored in the database"
        );
    };
    build_config(
        listen,
        database_url,
        args.db_max_connections.or(file.db_max_connections),
        &args.common,
        &file,
        keyring,
    )
}

/// The master key ring from flags/environment, a key file, or the config file.
pub fn keyring_from(common: &CommonServerArgs, file: &FileConfig) -> anyhow::Result<Option<Keyring>> {
    let spec = if let Some(spec) = common.master_keys.clone().or(file.master_keys.clone()) {
        spec
    } else if let Some(path) = common.master_key_file.clone().or(file.master_key_file.clone()) {
        std::fs::read_to_string(&path).with_context(|| format!("reading the master key file {}", path.display()))?
    } else {
        return Ok(None);
    };
    Ok(Some(Keyring::parse(&spec)?))
}

pub fn build_config(
    listen: SocketAddr,
    database_url: String,
    db_max_connections: Option<u32>,
    common: &CommonServerArgs,
    file: &FileConfig,
    keyring: Keyring,
) -> anyhow::Result<ServerConfig> {
    let defaults = Limits::default();
    let limits = Limits {
        max_body_bytes: common.max_body_bytes.or(file.max_body_bytes).unwrap_or(defaults.max_body_bytes),
        max_task_definition_bytes: common
            .max_task_definition_bytes
            .or(file.max_task_definition_bytes)
            .unwrap_or(defaults.max_task_definition_bytes),
        max_containers_per_task_definition: common
            .max_containers_per_task_definition
            .or(file.max_containers_per_task_definition)
            .unwrap_or(defaults.max_containers_per_task_definition),
        request_timeout: common
            .request_timeout_seconds
            .or(file.request_timeout_seconds)
            .map_or(defaults.request_timeout, std::time::Duration::from_secs),
        expensive_calls_per_account: common
            .expensive_calls_per_account
            .or(file.expensive_calls_per_account)
            .unwrap_or(defaults.expensive_calls_per_account),
    };
    if limits.request_timeout < std::time::Duration::from_secs(35) {
        bail!("the request timeout must be at least 35 s: long-polls wait up to 30 s");
    }
    let rate_limits = config::rate_limits(
        common.rate_limit_per_second.or(file.rate_limit_per_second).unwrap_or(config::DEFAULT_RATE_PER_SECOND),
        common.rate_limit_burst.or(file.rate_limit_burst).unwrap_or(config::DEFAULT_RATE_BURST),
        common.rate_limits.as_deref().or(file.rate_limits.as_deref()),
    )?;
    Ok(ServerConfig {
        listen,
        database_url,
        db_max_connections: db_max_connections.unwrap_or(16),
        log_format: common.log_format.or(file.log_format).unwrap_or_default(),
        limits,
        rate_limits,
        auth: AuthSettings {
            region: common.region.clone().or(file.region.clone()).unwrap_or_else(|| config::DEFAULT_REGION.to_owned()),
            keyring,
            sessions: session_settings(common, file)?,
        },
        agent: agent_settings(common, file)?,
        quotas: quota_defaults(common, file)?,
    })
}

fn quota_defaults(common: &CommonServerArgs, file: &FileConfig) -> anyhow::Result<QuotaDefaults> {
    let mut settings = file.quotas.clone().unwrap_or_default();
    if let Some(list) = &common.quotas {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, limit) =
                item.split_once('=').with_context(|| format!("--quotas: {item:?} is not name=limit"))?;
            let limit: i64 =
                limit.trim().parse().with_context(|| format!("--quotas: the limit of {name} is not a number"))?;
            settings.insert(name.trim().to_owned(), limit);
        }
    }
    QuotaDefaults::default().with_overrides(&settings).map_err(anyhow::Error::msg)
}

fn agent_settings(common: &CommonServerArgs, file: &FileConfig) -> anyhow::Result<AgentSettings> {
    let defaults = AgentSettings::default();
    let secs = |v: Option<u64>, d: std::time::Duration| v.map_or(d, std::time::Duration::from_secs);
    let settings = AgentSettings {
        heartbeat_interval: secs(
            common.heartbeat_interval_seconds.or(file.heartbeat_interval_seconds),
            defaults.heartbeat_interval,
        ),
        lost_timeout: secs(common.host_lost_timeout_seconds.or(file.host_lost_timeout_seconds), defaults.lost_timeout),
        task_retention: common
            .task_retention_hours
            .or(file.task_retention_hours)
            .map_or(defaults.task_retention, |h| std::time::Duration::from_secs(h * 3600)),
        event_retention: common
            .event_retention_days
            .or(file.event_retention_days)
            .map_or(defaults.event_retention, |d| std::time::Duration::from_secs(d * 24 * 3600)),
        idempotency_retention: defaults.idempotency_retention,
        services: ServiceSchedulerSettings {
            lease: secs(common.service_lease_seconds.or(file.service_lease_seconds), defaults.services.lease),
            backoff_cap: secs(
                common.service_backoff_cap_seconds.or(file.service_backoff_cap_seconds),
                defaults.services.backoff_cap,
            ),
            ..defaults.services.clone()
        },
        managed_task_sizes: match common.managed_task_sizes.as_deref().or(file.managed_task_sizes.as_deref()) {
            Some(s) => berth_control_plane::app::capacity::parse_task_sizes(s)
                .map_err(|e| anyhow::anyhow!("--managed-task-sizes: {e}"))?,
            None => defaults.managed_task_sizes.clone(),
        },
    };
    if settings.services.lease < settings.services.interval * 2 {
        bail!("the service lease must be at least 2 s (twice the scheduler's round)");
    }
    if settings.heartbeat_interval.is_zero() || settings.lost_timeout <= settings.heartbeat_interval * 3 {
        bail!("the heartbeat interval must be at least 1 s, and the lost timeout more than three intervals");
    }
    Ok(settings)
}

fn session_settings(common: &CommonServerArgs, file: &FileConfig) -> anyhow::Result<SessionSettings> {
    let defaults = SessionSettings::default();
    let secs = |v: Option<u64>, d: Duration| v.map_or(d, |s| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX)));
    let settings = SessionSettings {
        default_lifetime: secs(
            common.session_lifetime_seconds.or(file.session_lifetime_seconds),
            defaults.default_lifetime,
        ),
        max_lifetime: secs(
            common.session_max_lifetime_seconds.or(file.session_max_lifetime_seconds),
            defaults.max_lifetime,
        ),
        rotation_period: common
            .signing_key_rotation_hours
            .or(file.signing_key_rotation_hours)
            .map_or(defaults.rotation_period, |h| Duration::hours(i64::try_from(h).unwrap_or(24))),
    };
    if settings.default_lifetime < Duration::minutes(1) || settings.default_lifetime > settings.max_lifetime {
        bail!("the session lifetime must be at least 60 s and at most the maximum lifetime");
    }
    if settings.rotation_period < Duration::hours(1) {
        bail!("signing keys rotate at most hourly");
    }
    Ok(settings)
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let config = resolve(&args)?;
    let _telemetry = telemetry::init(config.log_format);
    let db = open_database(&config).await?;
    tracing::info!(backend = db.backend().as_str(), "database ready");
    let app = build_app(db.clone(), &config).await?;
    let server = BoundServer::bind(app.clone(), &config).await?;
    let endpoint = format!("http://{}", server.local_addr()?);
    if let Some(boot) = app.bootstrap().await? {
        let path = match &args.bootstrap_credentials_file {
            Some(p) => p.clone(),
            None => std::env::current_dir()?.join("berth-admin-credentials"),
        };
        let profile = Profile {
            endpoint,
            access_key_id: boot.key.access_key.access_key_id.clone(),
            secret_access_key: boot.key.secret_access_key.clone(),
            region: config.auth.region.clone(),
        };
        credentials::write_new(&path, "default", &profile)?;
        // The path, never the secret.
        tracing::info!(path = %path.display(), access_key_id = %profile.access_key_id, "empty database: created the operator account and its first admin key");
        println!("Created the operator account; its admin credentials are in {}", path.display());
    }
    tracing::info!(addr = %server.local_addr()?, "serving the Berth API");
    server.serve(super::shutdown_signal()).await?;
    db.close().await;
    Ok(())
}
