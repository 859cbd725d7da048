//! Clusters, hosts, registration tokens, access keys, accounts, quotas,
//! the audit log, and `berth configure`.

use berth_api::Page;
use berth_api::auth::{CreateAccessKeyRequest, CreateAccountRequest, CreateRegistrationTokenRequest, Role};
use berth_api::clusters::{CreateClusterRequest, UpdateClusterRequest};
use berth_api::hosts::{DeregisterHostRequest, UpdateHostAttributesRequest};
use berth_api::quotas::PutQuotaRequest;
use berth_sdk::Client;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::output::{self, Col, pairs, text, time};
use super::{CliError, CliResult, ClientArgs, key_values};

fn page(limit: Option<u32>, next_token: Option<String>) -> Page {
    Page { limit, next_token }
}

/// Paging flags of a list command.
#[derive(Args, Debug, Clone)]
pub struct Paging {
    /// Items in this page (1-100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Continue from a previous page's next_token.
    #[arg(long)]
    pub next_token: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ClustersCmd {
    /// List the account's clusters.
    List(Paging),
    /// Show a cluster.
    Get { cluster: String },
    /// Create a cluster.
    Create {
        name: String,
        /// A tag, `key=value` (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Replace a cluster's tags.
    Tag {
        cluster: String,
        /// `key=value` pairs; none clears the tags.
        tags: Vec<String>,
    },
    /// Delete a cluster (refused while it has tasks, services or hosts).
    Delete { cluster: String },
}

const CLUSTER: &[Col] = &[
    Col("NAME", |v| text(&v["name"])),
    Col("ID", |v| text(&v["id"])),
    Col("STATUS", |v| text(&v["status"])),
    Col("ACTIVE TASKS", |v| text(&v["active_tasks_count"])),
    Col("TAGS", |v| pairs(&v["tags"])),
    Col("CREATED", |v| time(&v["created_at"])),
];

pub async fn clusters(args: &ClientArgs, cmd: ClustersCmd) -> CliResult {
    let c = args.connect()?;
    let o = args.output;
    match cmd {
        ClustersCmd::List(p) => {
            output::list(o, &c.list_clusters(&page(p.limit, p.next_token)).await?, "clusters", CLUSTER)
        }
        ClustersCmd::Get { cluster } => output::one(o, &c.get_cluster(&cluster).await?, CLUSTER),
        ClustersCmd::Create { name, tags } => {
            let tags = key_values("--tag", &tags)?;
            output::one(o, &c.create_cluster(&CreateClusterRequest { name, tags, client_token: None }).await?, CLUSTER)
        }
        ClustersCmd::Tag { cluster, tags } => {
            let tags = Some(key_values("tags", &tags)?);
            output::one(o, &c.update_cluster(&cluster, &UpdateClusterRequest { tags }).await?, CLUSTER)
        }
        ClustersCmd::Delete { cluster } => {
            c.delete_cluster(&cluster).await?;
            output::done(o, &Value::Null, &format!("deleted cluster {cluster}"))
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum HostsCmd {
    /// List a cluster's hosts with their resources.
    List(Paging),
    /// Show a host.
    Get { host: String },
    /// Stop placing on a host (service tasks move elsewhere).
    Drain { host: String },
    /// Remove a host (refused while tasks run on it, unless --force).
    Deregister {
        host: String,
        #[arg(long)]
        force: bool,
    },
    /// Replace a host's custom attributes (`key=value` ...).
    SetAttributes { host: String, attributes: Vec<String> },
}

const HOST: &[Col] = &[
    Col("ID", |v| text(&v["id"])),
    Col("HOSTNAME", |v| text(&v["hostname"])),
    Col("STATUS", |v| text(&v["status"])),
    Col("CPU USED/TOTAL", |v| format!("{}/{}", text(&v["used"]["cpu"]), text(&v["total"]["cpu"]))),
    Col("MEMORY USED/TOTAL", |v| format!("{}/{}", text(&v["used"]["memory"]), text(&v["total"]["memory"]))),
    Col("AGENT", |v| text(&v["agent_version"])),
    Col("LAST HEARTBEAT", |v| time(&v["last_heartbeat_at"])),
];

/// The cluster flag of cluster-scoped commands.
#[derive(Args, Debug, Clone)]
pub struct ClusterArg {
    /// The cluster (name or id).
    #[arg(long, short = 'c', global = true, env = "BERTH_CLUSTER", default_value = "default")]
    pub cluster: String,
}

pub async fn hosts(args: &ClientArgs, cl: &ClusterArg, cmd: HostsCmd) -> CliResult {
    let c = args.connect()?;
    let (o, cluster) = (args.output, cl.cluster.as_str());
    match cmd {
        HostsCmd::List(p) => {
            output::list(o, &c.list_hosts(cluster, &page(p.limit, p.next_token)).await?, "hosts", HOST)
        }
        HostsCmd::Get { host } => output::one(o, &c.get_host(cluster, &host).await?, HOST),
        HostsCmd::Drain { host } => output::one(o, &c.drain_host(cluster, &host).await?, HOST),
        HostsCmd::Deregister { host, force } => {
            output::one(o, &c.deregister_host(cluster, &host, &DeregisterHostRequest { force }).await?, HOST)
        }
        HostsCmd::SetAttributes { host, attributes } => {
            let attributes = key_values("attributes", &attributes)?;
            output::one(
                o,
                &c.update_host_attributes(cluster, &host, &UpdateHostAttributesRequest { attributes }).await?,
                HOST,
            )
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum TokensCmd {
    /// Make a token agents exchange for a host credential (printed once).
    Create {
        /// How many hosts may register with it [default: 1].
        #[arg(long)]
        max_uses: Option<i64>,
        /// Seconds until it expires [default: 3600].
        #[arg(long)]
        expires_in: Option<u64>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List the cluster's tokens (never their secrets).
    List(Paging),
    /// Revoke a token.
    Revoke { token: String },
}

const TOKEN: &[Col] = &[
    Col("ID", |v| text(&v["id"])),
    Col("STATUS", |v| text(&v["status"])),
    Col("USES", |v| format!("{}/{}", text(&v["uses"]), text(&v["max_uses"]))),
    Col("EXPIRES", |v| time(&v["expires_at"])),
    Col("DESCRIPTION", |v| text(&v["description"])),
];

pub async fn tokens(args: &ClientArgs, cl: &ClusterArg, cmd: TokensCmd) -> CliResult {
    let c = args.connect()?;
    let (o, cluster) = (args.output, cl.cluster.as_str());
    match cmd {
        TokensCmd::Create { max_uses, expires_in, description } => {
            let req = CreateRegistrationTokenRequest { expires_in_seconds: expires_in, max_uses, description };
            let made = c.create_registration_token(cluster, &req).await?;
            let v = serde_json::to_value(&made).map_err(|e| CliError::Io(e.to_string()))?;
            match o {
                output::Output::Table => {
                    println!("token: {}", text(&v["token"]));
                    println!(
                        "(shown once) start an agent with: berth agent --cluster {cluster} --registration-token <token> ..."
                    );
                    Ok(())
                }
                other => output::structured(other, &v),
            }
        }
        TokensCmd::List(p) => output::list(
            o,
            &c.list_registration_tokens(cluster, &page(p.limit, p.next_token)).await?,
            "registration_tokens",
            TOKEN,
        ),
        TokensCmd::Revoke { token } => output::one(o, &c.revoke_registration_token(cluster, &token).await?, TOKEN),
    }
}

#[derive(Subcommand, Debug)]
pub enum AccessKeysCmd {
    /// Make an access key (the secret is printed once).
    Create {
        /// admin, operator or read-only.
        #[arg(long, default_value = "read-only")]
        role: String,
        /// Only these clusters (repeatable); default all.
        #[arg(long = "cluster-only")]
        clusters: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    List(Paging),
    Get {
        key: String,
    },
    Deactivate {
        key: String,
    },
    Reactivate {
        key: String,
    },
    Delete {
        key: String,
    },
}

const KEY: &[Col] = &[
    Col("ACCESS KEY ID", |v| text(&v["access_key_id"])),
    Col("ROLE", |v| text(&v["role"])),
    Col("STATUS", |v| text(&v["status"])),
    Col("CLUSTERS", |v| {
        v["clusters"].as_array().map_or("all".into(), |a| a.iter().map(text).collect::<Vec<_>>().join(","))
    }),
    Col("LAST USED", |v| time(&v["last_used_at"])),
    Col("DESCRIPTION", |v| text(&v["description"])),
];

pub async fn access_keys(args: &ClientArgs, cmd: AccessKeysCmd) -> CliResult {
    let c = args.connect()?;
    let o = args.output;
    match cmd {
        AccessKeysCmd::Create { role, clusters, description } => {
            let role = Role::parse(&role)
                .ok_or_else(|| CliError::Usage(format!("--role: {role:?} is not admin, operator or read-only")))?;
            let req =
                CreateAccessKeyRequest { role, clusters: (!clusters.is_empty()).then_some(clusters), description };
            let made = c.create_access_key(&req).await?;
            let v = serde_json::to_value(&made).map_err(|e| CliError::Io(e.to_string()))?;
            match o {
                output::Output::Table => {
                    println!("access_key_id     {}", text(&v["access_key"]["access_key_id"]));
                    println!("secret_access_key {}", text(&v["secret_access_key"]));
                    println!("(the secret is shown once: `berth configure` stores it in a profile)");
                    Ok(())
                }
                other => output::structured(other, &v),
            }
        }
        AccessKeysCmd::List(p) => {
            output::list(o, &c.list_access_keys(&page(p.limit, p.next_token)).await?, "access_keys", KEY)
        }
        AccessKeysCmd::Get { key } => output::one(o, &c.get_access_key(&key).await?, KEY),
        AccessKeysCmd::Deactivate { key } => output::one(o, &c.deactivate_access_key(&key).await?, KEY),
        AccessKeysCmd::Reactivate { key } => output::one(o, &c.reactivate_access_key(&key).await?, KEY),
        AccessKeysCmd::Delete { key } => {
            c.delete_access_key(&key).await?;
            output::done(o, &Value::Null, &format!("deleted access key {key}"))
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum AccountsCmd {
    /// Create a tenant account (operator only).
    Create {
        name: String,
    },
    List(Paging),
    Get {
        account: String,
    },
    /// Refuse every call of the account until it is reactivated.
    Suspend {
        account: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Reactivate {
        account: String,
    },
    /// Make an admin access key in the account (the secret is printed once).
    CreateAdminKey {
        account: String,
    },
}

const ACCOUNT: &[Col] = &[
    Col("NAME", |v| text(&v["name"])),
    Col("ID", |v| text(&v["id"])),
    Col("STATUS", |v| text(&v["status"])),
    Col("OPERATOR", |v| text(&v["is_operator"])),
    Col("REASON", |v| text(&v["status_reason"])),
    Col("CREATED", |v| time(&v["created_at"])),
];

pub async fn accounts(args: &ClientArgs, cmd: AccountsCmd) -> CliResult {
    let c = args.connect()?;
    let o = args.output;
    match cmd {
        AccountsCmd::Create { name } => {
            output::one(o, &c.create_account(&CreateAccountRequest { name }).await?, ACCOUNT)
        }
        AccountsCmd::List(p) => {
            output::list(o, &c.list_accounts(&page(p.limit, p.next_token)).await?, "accounts", ACCOUNT)
        }
        AccountsCmd::Get { account } => output::one(o, &c.get_account(&account).await?, ACCOUNT),
        AccountsCmd::Suspend { account, reason } => output::one(
            o,
            &c.suspend_account(&account, &berth_api::auth::SuspendAccountRequest { reason }).await?,
            ACCOUNT,
        ),
        AccountsCmd::Reactivate { account } => output::one(o, &c.reactivate_account(&account).await?, ACCOUNT),
        AccountsCmd::CreateAdminKey { account } => {
            let made = c.create_account_admin_key(&account).await?;
            output::structured(
                if o == output::Output::Yaml { o } else { output::Output::Json },
                &serde_json::to_value(&made).map_err(|e| CliError::Io(e.to_string()))?,
            )
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum QuotasCmd {
    /// Limits and usage: the caller's account, or any with --account (operator).
    List {
        #[arg(long)]
        account: Option<String>,
    },
    /// Set an account's limit (operator).
    Set { account: String, name: String, limit: i64 },
    /// Back to the default limit (operator).
    Reset { account: String, name: String },
}

const QUOTA: &[Col] = &[
    Col("QUOTA", |v| text(&v["name"])),
    Col("USAGE", |v| text(&v["usage"])),
    Col("LIMIT", |v| text(&v["limit"])),
    Col("SOURCE", |v| text(&v["source"])),
];

pub async fn quotas(args: &ClientArgs, cmd: QuotasCmd) -> CliResult {
    let c = args.connect()?;
    let o = args.output;
    match cmd {
        QuotasCmd::List { account: None } => output::list(o, &c.list_quotas().await?, "quotas", QUOTA),
        QuotasCmd::List { account: Some(a) } => output::list(o, &c.list_account_quotas(&a).await?, "quotas", QUOTA),
        QuotasCmd::Set { account, name, limit } => {
            output::one(o, &c.put_account_quota(&account, &name, &PutQuotaRequest { limit }).await?, QUOTA)
        }
        QuotasCmd::Reset { account, name } => output::one(o, &c.reset_account_quota(&account, &name).await?, QUOTA),
    }
}

/// Flags of `berth audit-events`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only this action (an operationId, e.g. run_task).
    #[arg(long)]
    pub action: Option<String>,
    /// From this time (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Until this time (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub paging: Paging,
}

const AUDIT: &[Col] = &[
    Col("TIME", |v| time(&v["time"])),
    Col("ACTION", |v| text(&v["action"])),
    Col("RESOURCE", |v| text(&v["resource"])),
    Col("OUTCOME", |v| format!("{} {}", text(&v["outcome"]), text(&v["status_code"]))),
    Col("KEY", |v| text(&v["access_key_id"])),
    Col("SOURCE", |v| text(&v["source_ip"])),
];

pub async fn audit(args: &ClientArgs, a: AuditArgs) -> CliResult {
    let c = args.connect()?;
    let q = berth_api::auth::ListAuditEventsQuery {
        action: a.action,
        from: a.from,
        to: a.to,
        limit: a.paging.limit,
        next_token: a.paging.next_token,
    };
    output::list(args.output, &c.list_audit_events(&q).await?, "audit_events", AUDIT)
}

/// Flags of `berth configure`.
#[derive(Args, Debug)]
pub struct ConfigureArgs {
    /// The profile to write [default: default].
    #[arg(long, env = "BERTH_PROFILE")]
    pub profile: Option<String>,
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long)]
    pub access_key_id: Option<String>,
    /// Read the secret from standard input instead of asking.
    #[arg(long)]
    pub secret_from_stdin: bool,
    #[arg(long)]
    pub region: Option<String>,
}

/// Writes a profile, asking for what the flags did not give (keeping the
/// current values on an empty answer), then checks it with one call.
pub async fn configure(a: ConfigureArgs) -> CliResult {
    use std::io::{BufRead as _, Write as _};
    let name = a.profile.unwrap_or_else(|| "default".into());
    let path = crate::credentials::default_path().map_err(|e| CliError::Usage(e.to_string()))?;
    let current = crate::credentials::read_profile(&path, &name).map_err(|e| CliError::Io(format!("{e:#}")))?;
    let stdin = std::io::stdin();
    let ask = |label: &str, given: Option<String>, current: Option<String>, secret: bool| -> CliResult<String> {
        if let Some(v) = given {
            return Ok(v);
        }
        let shown = match (&current, secret) {
            (Some(c), true) if c.len() > 4 => format!(" [****{}]", &c[c.len() - 4..]),
            (Some(c), false) => format!(" [{c}]"),
            _ => String::new(),
        };
        eprint!("{label}{shown}: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let line = line.trim().to_owned();
        match (line.is_empty(), current) {
            (true, Some(c)) => Ok(c),
            (true, None) => Err(CliError::Usage(format!("{label} is required"))),
            (false, _) => Ok(line),
        }
    };
    let endpoint = ask(
        "Endpoint",
        a.endpoint,
        current
            .as_ref()
            .map(|p| p.endpoint.clone())
            .or(Some(format!("http://{}", berth_control_plane::config::DEFAULT_LISTEN))),
        false,
    )?;
    let access_key_id =
        ask("Access key id", a.access_key_id, current.as_ref().map(|p| p.access_key_id.clone()), false)?;
    let secret_given = if a.secret_from_stdin {
        let mut s = String::new();
        std::io::stdin().lock().read_line(&mut s)?;
        Some(s.trim().to_owned())
    } else {
        None
    };
    let secret = ask("Secret access key", secret_given, current.as_ref().map(|p| p.secret_access_key.clone()), true)?;
    let region = ask(
        "Region",
        a.region,
        current.as_ref().map(|p| p.region.clone()).or(Some(berth_control_plane::config::DEFAULT_REGION.into())),
        false,
    )?;
    let profile =
        crate::credentials::Profile { endpoint: endpoint.clone(), access_key_id, secret_access_key: secret, region };
    crate::credentials::upsert(&path, &name, &profile).map_err(|e| CliError::Io(format!("{e:#}")))?;
    eprintln!("Wrote [{name}] in {}", path.display());
    let client = Client::new(
        &endpoint,
        berth_sdk::Credentials::sigv4(&profile.access_key_id, &profile.secret_access_key, &profile.region),
    )?;
    match client.list_clusters(&Page::default()).await {
        Ok(list) => {
            eprintln!("Checked: the key works ({} cluster(s) visible).", list.clusters.len());
            Ok(())
        }
        Err(e) => Err(CliError::Sdk(e).with_hint("the profile was written, but this call with it failed")),
    }
}
