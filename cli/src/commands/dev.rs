//! `berth dev`: everything on one machine, on embedded SQLite.

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use berth_control_plane::auth::keyring::Keyring;
use berth_control_plane::config::{self, FileConfig};
use berth_control_plane::server::{BoundServer, build_app, open_database};
use berth_control_plane::telemetry;
use clap::Args;

use super::server::{CommonServerArgs, build_config, keyring_from};
use crate::credentials::{self, Profile};

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Where the SQLite database, master key and credentials live [default: $XDG_DATA_HOME/berth/dev, or ~/.local/share/berth/dev].
    #[arg(long, env = "BERTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to serve the API on.
    #[arg(long, env = "BERTH_LISTEN", default_value = config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Do not write the credentials to the CLI's default profile.
    #[arg(long)]
    pub no_profile: bool,
    /// containerd's socket [default: /run/containerd/containerd.sock if it exists, else a private
    /// containerd started under the data dir].
    #[arg(long, env = "BERTH_CONTAINERD_SOCKET")]
    pub containerd_socket: Option<PathBuf>,
    /// Run no host agent (the API alone).
    #[arg(long)]
    pub no_agent: bool,
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

/// The dev master key: made once, kept in the data dir (mode 0600).
fn dev_keyring(data_dir: &Path) -> anyhow::Result<Keyring> {
    let path = data_dir.join("master.key");
    if !path.exists() {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        writeln!(f, "{}", Keyring::generate_entry("dev1"))?;
        f.sync_all()?;
    }
    let spec = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Keyring::parse(&spec)?)
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    // The database holds tenant data and the master key sits beside it: owner only.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let database_url = format!("sqlite://{}", data_dir.join("berth.db").display());
    let keyring = match keyring_from(&args.common, &FileConfig::default())? {
        Some(k) => k,
        None => dev_keyring(&data_dir)?,
    };
    let config = build_config(args.listen, database_url, Some(8), &args.common, &FileConfig::default(), keyring)?;
    let _telemetry = telemetry::init(config.log_format);

    let db = open_database(&config).await?;
    let app = build_app(db.clone(), &config).await?;
    let server = BoundServer::bind(app.clone(), &config).await?;
    let addr = server.local_addr()?;
    let endpoint = format!("http://{addr}");
    let creds_path = data_dir.join("admin-credentials");
    if let Some(boot) = app.bootstrap().await? {
        let profile = Profile {
            endpoint: endpoint.clone(),
            access_key_id: boot.key.access_key.access_key_id.clone(),
            secret_access_key: boot.key.secret_access_key.clone(),
            region: config.auth.region.clone(),
        };
        let _ = std::fs::remove_file(&creds_path);
        credentials::write_new(&creds_path, "default", &profile)?;
        if !args.no_profile {
            write_cli_profile(&profile)?;
        }
    }
    let profile = credentials::read_profile(&creds_path, "default")?.with_context(|| {
        format!("{} is missing: remove {} to start afresh", creds_path.display(), data_dir.display())
    })?;

    // Serve before the agent starts: it registers over the API.
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = shutdown_rx.await;
    }));
    let mut _private_containerd = None;
    let mut dev_agent = None;
    let agent_line = if args.no_agent {
        "none (--no-agent)".to_owned()
    } else {
        let started = match super::dev_agent::containerd(&data_dir, args.containerd_socket.clone()) {
            Ok((socket, private)) => {
                _private_containerd = private;
                super::dev_agent::start(&app, &endpoint, &data_dir, socket).await
            }
            Err(e) => Err(e),
        };
        match started {
            Ok(agent) => {
                let line = format!(
                    "host {} in cluster \"{}\" (containerd {})",
                    agent.host,
                    super::dev_agent::DEV_CLUSTER,
                    agent.version
                );
                dev_agent = Some(agent);
                line
            }
            // The API still works without an agent; say why there is none.
            Err(e) => format!("none: {e:#}"),
        }
    };

    println!("Berth dev is running.");
    println!("  endpoint:    {endpoint}");
    println!("  database:    {}", data_dir.join("berth.db").display());
    println!("  credentials: {} (access key {})", creds_path.display(), profile.access_key_id);
    println!("  host agent:  {agent_line}");
    println!("  console:     {endpoint}/console (sign in with the access key and secret in the credentials file)");
    println!("Try (the CLI uses the profile written above; the README has the whole tour):");
    println!("  berth hosts list");
    println!("  berth clusters list -o json");
    super::shutdown_signal().await;
    // The agent first: its containers stop (and are reported) while the
    // server still runs, and its long-poll would hold the graceful shutdown.
    if let Some(agent) = dev_agent {
        agent.shutdown().await;
    }
    let _ = shutdown_tx.send(());
    serving.await.context("the API server task")??;
    db.close().await;
    Ok(())
}

/// Puts the dev credentials in the CLI's `[default]` profile, unless that
/// profile points at another endpoint (then in `[dev]`).
fn write_cli_profile(profile: &Profile) -> anyhow::Result<()> {
    let path = credentials::default_path()?;
    let name = match credentials::read_profile(&path, "default")? {
        Some(existing) if existing.endpoint != profile.endpoint => "dev",
        _ => "default",
    };
    credentials::upsert(&path, name, profile)?;
    println!("Wrote the [{name}] profile in {}", path.display());
    Ok(())
}
