//! `berth server`

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use berth_control_plane::app::{App, Limits};
use berth_control_plane::config::{self, FileConfig, ServerConfig};
use berth_control_plane::server::{BoundServer, open_database};
use berth_control_plane::telemetry::{self, LogFormat};
use clap::Args;

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
    /// Requests per second each account may make; 0 turns the limit off [default: 100].
    #[arg(long, env = "BERTH_RATE_LIMIT_PER_SECOND")]
    pub rate_limit_per_second: Option<u32>,
    /// Requests an account may make in a burst above its rate [default: 200].
    #[arg(long, env = "BERTH_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
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
    build_config(listen, database_url, args.db_max_connections.or(file.db_max_connections), &args.common, &file)
}

pub fn build_config(
    listen: SocketAddr,
    database_url: String,
    db_max_connections: Option<u32>,
    common: &CommonServerArgs,
    file: &FileConfig,
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
    };
    let rate_limit = config::rate_limit(
        common.rate_limit_per_second.or(file.rate_limit_per_second).unwrap_or(config::DEFAULT_RATE_PER_SECOND),
        common.rate_limit_burst.or(file.rate_limit_burst).unwrap_or(config::DEFAULT_RATE_BURST),
    )?;
    Ok(ServerConfig {
        listen,
        database_url,
        db_max_connections: db_max_connections.unwrap_or(16),
        log_format: common.log_format.or(file.log_format).unwrap_or_default(),
        limits,
        rate_limit,
    })
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let config = resolve(&args)?;
    let _telemetry = telemetry::init(config.log_format);
    let db = open_database(&config).await?;
    tracing::info!(backend = db.backend().as_str(), "database ready");
    let app = App::new(db.clone(), config.limits.clone());
    let server = BoundServer::bind(app, &config).await?;
    tracing::info!(addr = %server.local_addr()?, "serving the Berth API");
    server.serve(super::shutdown_signal()).await?;
    db.close().await;
    Ok(())
}
