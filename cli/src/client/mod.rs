//! The client commands: every resource of the API from the command line,
//! through the Rust SDK. Credentials and the endpoint come from a profile in
//! `~/.config/berth/credentials`, overridden by `BERTH_PROFILE`,
//! `BERTH_ENDPOINT`, `BERTH_ACCESS_KEY_ID` and `BERTH_SECRET_ACCESS_KEY`.

pub mod capacity;
pub mod ecs;
pub mod output;
pub mod resources;
pub mod streams;
pub mod workloads;

use std::process::ExitCode;

use berth_sdk::{Client, Credentials};
use clap::Args;

pub use output::Output;

use crate::credentials;

/// What every client command takes.
#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// The profile in the credentials file [default: default].
    #[arg(long, global = true, env = "BERTH_PROFILE")]
    pub profile: Option<String>,
    /// The API's URL, instead of the profile's.
    #[arg(long, global = true, env = "BERTH_ENDPOINT")]
    pub endpoint: Option<String>,
    /// The region requests are signed for, instead of the profile's [default: local].
    #[arg(long, global = true, env = "BERTH_REGION")]
    pub region: Option<String>,
    /// How to print results: a table for people, JSON (stable, for scripts) or YAML.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table, env = "BERTH_OUTPUT")]
    pub output: Output,
    /// Print only this field of the JSON result, bare: a dot path such as
    /// `id` or `tasks.0.id` (`tasks.*.id` for every item).
    #[arg(long, global = true)]
    pub query: Option<String>,
}

impl ClientArgs {
    /// An SDK client from the flags, the environment and the profile, in that order.
    pub fn connect(&self) -> Result<Client, CliError> {
        output::set_query(self.query.clone());
        let name = self.profile.clone().unwrap_or_else(|| "default".into());
        let path = credentials::default_path().map_err(|e| CliError::Usage(e.to_string()))?;
        let profile = credentials::read_profile(&path, &name).map_err(|e| CliError::Usage(format!("{e:#}")))?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| profile.as_ref().map(|p| p.endpoint.clone()).filter(|e| !e.is_empty()))
            .unwrap_or_else(|| format!("http://{}", berth_control_plane::config::DEFAULT_LISTEN));
        let region = self
            .region
            .clone()
            .or_else(|| profile.as_ref().map(|p| p.region.clone()).filter(|r| !r.is_empty()))
            .unwrap_or_else(|| berth_control_plane::config::DEFAULT_REGION.into());
        let key = env("BERTH_ACCESS_KEY_ID").or_else(|| profile.as_ref().map(|p| p.access_key_id.clone()));
        let secret = env("BERTH_SECRET_ACCESS_KEY").or_else(|| profile.as_ref().map(|p| p.secret_access_key.clone()));
        let credentials = match (key, secret, env("BERTH_SESSION_TOKEN")) {
            (_, _, Some(token)) => Credentials::Bearer(token),
            (Some(k), Some(s), None) if !k.is_empty() && !s.is_empty() => Credentials::sigv4(k, s, region),
            _ => {
                return Err(CliError::Usage(format!(
                    "no credentials: the profile [{name}] is not in {} and BERTH_ACCESS_KEY_ID / BERTH_SECRET_ACCESS_KEY are not set",
                    path.display()
                ))
                .with_hint("run `berth configure`, or start `berth dev`, which writes a profile"));
            }
        };
        Client::new(&endpoint, credentials).map_err(CliError::Sdk)
    }
}

/// The exit codes, documented in the README: scripts can branch on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Failure = 1,
    Usage = 2,
    NotFound = 3,
    Conflict = 4,
    Denied = 5,
    Invalid = 6,
    Throttled = 7,
    Unavailable = 8,
    /// A waited-for task or deployment ended badly.
    Failed = 9,
    Timeout = 10,
}

/// What ends a client command unsuccessfully.
#[derive(Debug)]
pub enum CliError {
    Sdk(berth_sdk::Error),
    Usage(String),
    Io(String),
    Hinted(Box<CliError>, String),
}

impl CliError {
    pub fn with_hint(self, hint: impl Into<String>) -> CliError {
        CliError::Hinted(Box::new(self), hint.into())
    }

    pub fn exit(&self) -> Exit {
        match self {
            CliError::Hinted(e, _) => e.exit(),
            CliError::Usage(_) => Exit::Usage,
            CliError::Io(_) => Exit::Failure,
            CliError::Sdk(berth_sdk::Error::Api(e)) => match (e.status, e.code.as_str()) {
                (_, "LimitExceeded" | "ThrottlingException" | "TooManyConcurrentRequests") => Exit::Throttled,
                (404, _) => Exit::NotFound,
                (409 | 412, _) => Exit::Conflict,
                (401 | 403, _) => Exit::Denied,
                (400 | 413 | 415 | 422, _) => Exit::Invalid,
                (429, _) => Exit::Throttled,
                (s, _) if s >= 500 => Exit::Unavailable,
                _ => Exit::Failure,
            },
            CliError::Sdk(berth_sdk::Error::Transport(_)) => Exit::Unavailable,
            CliError::Sdk(berth_sdk::Error::Timeout { .. }) => Exit::Timeout,
            CliError::Sdk(berth_sdk::Error::Failed(_)) => Exit::Failed,
            CliError::Sdk(_) => Exit::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            CliError::Hinted(_, h) => Some(h.clone()),
            CliError::Sdk(berth_sdk::Error::Api(e)) => Some(match e.code.as_str() {
                "ResourceNotFound" => "check the name with the resource's `list` command".into(),
                "MissingAuthenticationToken" | "InvalidAccessKeyId" | "InvalidToken" => {
                    "run `berth configure`, or set BERTH_ACCESS_KEY_ID and BERTH_SECRET_ACCESS_KEY".into()
                }
                "SignatureDoesNotMatch" => "the secret does not belong to this access key: check the profile".into(),
                "RequestExpired" => "this machine's clock is off: sync it".into(),
                "AccessDenied" => "this key's role or cluster restriction does not allow it".into(),
                "AccountSuspended" => "the operator suspended the account".into(),
                "LimitExceeded" => "see `berth quotas list`".into(),
                "ValidationError" | "BadRequest" => match &e.field {
                    Some(f) => format!("fix `{f}` and try again"),
                    None => "fix the request and try again".into(),
                },
                "PreconditionFailed" => "someone changed it meanwhile: read it again".into(),
                _ => return None,
            }),
            CliError::Sdk(berth_sdk::Error::Transport(_)) => {
                Some("is the control plane running? `berth dev` starts one; --endpoint picks another".into())
            }
            _ => None,
        }
    }

    /// One line, then a hint line when there is one.
    pub fn report(&self) -> ExitCode {
        let message = match self {
            CliError::Hinted(e, _) => e.message(),
            other => other.message(),
        };
        eprintln!("berth: {message}");
        if let Some(h) = self.hint() {
            eprintln!("hint: {h}");
        }
        ExitCode::from(self.exit() as u8)
    }

    fn message(&self) -> String {
        match self {
            CliError::Sdk(e) => e.to_string(),
            CliError::Usage(m) | CliError::Io(m) => m.clone(),
            CliError::Hinted(e, _) => e.message(),
        }
    }
}

impl From<berth_sdk::Error> for CliError {
    fn from(e: berth_sdk::Error) -> Self {
        CliError::Sdk(e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Io(e.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// `key=value` pairs from the command line.
pub fn key_values(field: &str, pairs: &[String]) -> CliResult<std::collections::BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| CliError::Usage(format!("{field}: {p:?} is not key=value")))
        })
        .collect()
}

/// The client commands, as `berth <resource> <verb>`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Clusters: named groups of hosts, tasks and services.
    Clusters {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: resources::ClustersCmd,
    },
    /// Task definitions: families of immutable revisions.
    #[command(name = "task-definitions", alias = "td")]
    TaskDefinitions {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: workloads::TaskDefinitionsCmd,
    },
    /// Tasks: run, list, inspect and stop.
    Tasks {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        cluster: resources::ClusterArg,
        #[command(subcommand)]
        cmd: workloads::TasksCmd,
    },
    /// Services: desired counts kept running, deployed revision by revision.
    Services {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        cluster: resources::ClusterArg,
        #[command(subcommand)]
        cmd: workloads::ServicesCmd,
    },
    /// A cluster's hosts.
    Hosts {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        cluster: resources::ClusterArg,
        #[command(subcommand)]
        cmd: resources::HostsCmd,
    },
    /// Tokens host agents register with.
    #[command(name = "registration-tokens")]
    RegistrationTokens {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        cluster: resources::ClusterArg,
        #[command(subcommand)]
        cmd: resources::TokensCmd,
    },
    /// The account's access keys.
    #[command(name = "access-keys")]
    AccessKeys {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: resources::AccessKeysCmd,
    },
    /// Tenant accounts (the operator's).
    Accounts {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: resources::AccountsCmd,
    },
    /// Capacity pools: the operator's shared hosts for MANAGED tasks.
    #[command(name = "capacity-pools", alias = "pools")]
    CapacityPools {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: capacity::PoolsCmd,
    },
    /// MANAGED usage: vCPU-seconds and GiB-seconds per task.
    Usage {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: capacity::UsageArgs,
    },
    /// Quotas: limits and usage.
    Quotas {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: resources::QuotasCmd,
    },
    /// The account's event log; -f follows it.
    Events {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: streams::EventsArgs,
    },
    /// A task's container logs; -f follows them.
    Logs {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        cluster: resources::ClusterArg,
        #[command(flatten)]
        args: streams::LogsArgs,
    },
    /// Who did what: the account's audit log.
    #[command(name = "audit-events")]
    AuditEvents {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: resources::AuditArgs,
    },
    /// Write a profile to the credentials file (asks for what is not given).
    Configure(resources::ConfigureArgs),
}

/// Runs a client command; the exit code says how it ended.
pub async fn run(cmd: Command) -> ExitCode {
    let result = match cmd {
        Command::Clusters { client, cmd } => resources::clusters(&client, cmd).await,
        Command::TaskDefinitions { client, cmd } => workloads::task_definitions(&client, cmd).await,
        Command::Tasks { client, cluster, cmd } => workloads::tasks(&client, &cluster, cmd).await,
        Command::Services { client, cluster, cmd } => workloads::services(&client, &cluster, cmd).await,
        Command::Hosts { client, cluster, cmd } => resources::hosts(&client, &cluster, cmd).await,
        Command::RegistrationTokens { client, cluster, cmd } => resources::tokens(&client, &cluster, cmd).await,
        Command::AccessKeys { client, cmd } => resources::access_keys(&client, cmd).await,
        Command::Accounts { client, cmd } => resources::accounts(&client, cmd).await,
        Command::Quotas { client, cmd } => resources::quotas(&client, cmd).await,
        Command::CapacityPools { client, cmd } => capacity::pools(&client, cmd).await,
        Command::Usage { client, args } => capacity::usage(&client, args).await,
        Command::Events { client, args } => streams::events(&client, args).await,
        Command::Logs { client, cluster, args } => streams::logs(&client, &cluster, args).await,
        Command::AuditEvents { client, args } => resources::audit(&client, args).await,
        Command::Configure(args) => resources::configure(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}
