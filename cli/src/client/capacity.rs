//! `berth capacity-pools` (the operator's shared capacity) and `berth usage`
//! (MANAGED vCPU- and GiB-seconds, what a bill is built on).

use berth_api::auth::CreateRegistrationTokenRequest;
use berth_api::capacity::{CreateCapacityPoolRequest, UsageQuery};
use clap::Subcommand;

use super::output::{self, Col, text, time};
use super::{CliError, CliResult, ClientArgs};

#[derive(Subcommand, Debug)]
pub enum PoolsCmd {
    /// Create a pool (operator): hosts that run every account's MANAGED tasks.
    Create {
        name: String,
        /// Pools are tried lowest first [default: 100].
        #[arg(long)]
        priority: Option<i64>,
    },
    /// List the pools in the order MANAGED placement tries them.
    List,
    /// A pool's totals.
    Get { pool: String },
    /// A pool's hosts.
    Hosts { pool: String },
    /// Drain one of a pool's hosts: MANAGED service tasks move off it.
    Drain { pool: String, host: String },
    /// A token agents join the pool with (`berth agent --pool POOL`), printed once.
    Token {
        pool: String,
        /// How many hosts may register with it [default: 1].
        #[arg(long)]
        max_uses: Option<i64>,
    },
}

const POOL: &[Col] = &[
    Col("NAME", |v| text(&v["name"])),
    Col("PRIORITY", |v| text(&v["priority"])),
    Col("HOSTS", |v| format!("{}/{}", text(&v["active_hosts"]), text(&v["hosts"]))),
    Col("CPU USED/TOTAL", |v| format!("{}/{}", text(&v["cpu_used"]), text(&v["cpu_total"]))),
    Col("MEMORY USED/TOTAL", |v| format!("{}/{}", text(&v["memory_used"]), text(&v["memory_total"]))),
    Col("TASKS", |v| text(&v["running_tasks"])),
];

const POOL_HOST: &[Col] = &[
    Col("ID", |v| text(&v["id"])),
    Col("HOSTNAME", |v| text(&v["hostname"])),
    Col("STATUS", |v| text(&v["status"])),
    Col("CPU USED/TOTAL", |v| format!("{}/{}", text(&v["used"]["cpu"]), text(&v["total"]["cpu"]))),
    Col("MEMORY USED/TOTAL", |v| format!("{}/{}", text(&v["used"]["memory"]), text(&v["total"]["memory"]))),
    Col("LAST HEARTBEAT", |v| time(&v["last_heartbeat_at"])),
];

pub async fn pools(args: &ClientArgs, cmd: PoolsCmd) -> CliResult {
    let c = args.connect()?;
    let o = args.output;
    match cmd {
        PoolsCmd::Create { name, priority } => output::one(
            o,
            &c.create_capacity_pool(&CreateCapacityPoolRequest { name, priority, client_token: None }).await?,
            POOL,
        ),
        PoolsCmd::List => output::list(o, &c.list_capacity_pools().await?, "capacity_pools", POOL),
        PoolsCmd::Get { pool } => output::one(o, &c.get_capacity_pool(&pool).await?, POOL),
        PoolsCmd::Hosts { pool } => {
            output::list(o, &c.list_pool_hosts(&pool, &Default::default()).await?, "hosts", POOL_HOST)
        }
        PoolsCmd::Drain { pool, host } => output::one(o, &c.drain_pool_host(&pool, &host).await?, POOL_HOST),
        PoolsCmd::Token { pool, max_uses } => {
            let req = CreateRegistrationTokenRequest { expires_in_seconds: None, max_uses, description: None };
            let made = c.create_pool_registration_token(&pool, &req).await?;
            let v = serde_json::to_value(&made).map_err(|e| CliError::Io(e.to_string()))?;
            match o {
                output::Output::Table => {
                    println!("token: {}", text(&v["token"]));
                    println!(
                        "(shown once) start an agent with: berth agent --pool {pool} --registration-token <token> ..."
                    );
                    Ok(())
                }
                other => output::structured(other, &v),
            }
        }
    }
}

/// Flags of `berth usage`.
#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    /// Start of the window, RFC 3339 [default: 24 hours before --to].
    #[arg(long)]
    pub from: Option<String>,
    /// End of the window, RFC 3339 [default: now].
    #[arg(long)]
    pub to: Option<String>,
    /// Every account's usage (operator).
    #[arg(long)]
    pub all_accounts: bool,
}

const RECORD: &[Col] = &[
    Col("TASK", |v| text(&v["task_id"])),
    Col("CLUSTER", |v| text(&v["cluster"])),
    Col("DEFINITION", |v| text(&v["task_definition"])),
    Col("SIZE", |v| format!("{}/{}", text(&v["cpu"]), text(&v["memory"]))),
    Col("STARTED", |v| time(&v["started_at"])),
    Col("STOPPED", |v| time(&v["stopped_at"])),
    Col("SECONDS", |v| text(&v["seconds"])),
    Col("VCPU-S", |v| format!("{:.1}", v["vcpu_seconds"].as_f64().unwrap_or(0.0))),
    Col("GIB-S", |v| format!("{:.1}", v["gib_seconds"].as_f64().unwrap_or(0.0))),
];

fn instant(flag: &str, value: Option<String>) -> Result<Option<time::OffsetDateTime>, CliError> {
    value
        .map(|v| {
            time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
                .map_err(|e| CliError::Usage(format!("{flag} {v:?} is not an RFC 3339 time: {e}")))
        })
        .transpose()
}

pub async fn usage(args: &ClientArgs, a: UsageArgs) -> CliResult {
    let c = args.connect()?;
    let query =
        UsageQuery { from: instant("--from", a.from)?, to: instant("--to", a.to)?, all_accounts: a.all_accounts };
    let resp = c.get_usage(&query).await?;
    if args.output == output::Output::Table {
        for acct in &resp.accounts {
            println!(
                "account {}: {} task(s), {:.1} vCPU-seconds, {:.1} GiB-seconds",
                acct.account_id, acct.tasks, acct.vcpu_seconds, acct.gib_seconds
            );
        }
    }
    output::list(args.output, &resp, "records", RECORD)
}
