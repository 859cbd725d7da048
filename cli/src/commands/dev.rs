//! `berth dev`: everything on one machine, on embedded SQLite.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use berth_control_plane::app::App;
use berth_control_plane::config::{self, FileConfig};
use berth_control_plane::server::{BoundServer, open_database};
use berth_control_plane::telemetry;
use clap::Args;

use super::server::{CommonServerArgs, build_config};

pub const DEV_ACCOUNT: &str = "dev";

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Where the SQLite database and credentials live [default: $XDG_DATA_HOME/berth/dev, or ~/.local/share/berth/dev].
    #[arg(long, env = "BERTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to serve the API on.
    #[arg(long, env = "BERTH_LISTEN", default_value = config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub common: CommonServerArgs,
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("berth").join("dev"));
    }
    let home = std::env::var_os("HOME").context("neither XDG_DATA_HOME nor HOME is set; pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/berth/dev"))
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let database_url = format!("sqlite://{}", data_dir.join("berth.db").display());
    let config = build_config(args.listen, database_url, Some(8), &args.common, &FileConfig::default())?;
    let _telemetry = telemetry::init(config.log_format);

    let db = open_database(&config).await?;
    let app = App::new(db.clone(), config.limits.clone());
    let account = match app.account_by_name(DEV_ACCOUNT).await? {
        Some(id) => id,
        None => app.create_account(DEV_ACCOUNT).await?,
    };
    let account_file = data_dir.join("dev-account");
    std::fs::write(&account_file, format!("{account}\n"))
        .with_context(|| format!("writing {}", account_file.display()))?;

    let server = BoundServer::bind(app, &config).await?;
    let addr = server.local_addr()?;
    println!("Berth dev is running.");
    println!("  endpoint:   http://{addr}");
    println!("  database:   {}", data_dir.join("berth.db").display());
    println!("  account:    {account} (written to {})", account_file.display());
    println!("  host agent: not started; tasks wait in PROVISIONING until placement and agents land");
    println!("Try:");
    println!("  curl -s -H 'Authorization: Dev {account}' -H 'Content-Type: application/json' \\");
    println!("       -d '{{\"name\":\"demo\"}}' http://{addr}/v1/clusters");
    server.serve(super::shutdown_signal()).await?;
    db.close().await;
    Ok(())
}
