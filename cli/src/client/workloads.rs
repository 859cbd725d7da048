//! Task definitions, tasks and services: what runs, with progress for the
//! commands that wait.

use std::time::Duration;

use berth_api::capacity::LaunchType;
use berth_api::hosts::{PlacementConstraint, PlacementStrategy};
use berth_api::services::{
    ContainerChange, CreateServiceRequest, DeleteServiceQuery, DeploymentConfiguration, DeploymentState,
    SchedulingStrategy, Service, UpdateServiceRequest,
};
use berth_api::tasks::{
    ContainerOverride, ListTasksQuery, RunTaskRequest, StopTaskRequest, Task, TaskOverrides, TaskStatus,
};
use berth_sdk::Client;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::output::{self, Col, Output, pairs, text, time};
use super::resources::{ClusterArg, Paging};
use super::{CliError, CliResult, ClientArgs, key_values};

fn split_ref(reference: &str) -> (&str, Option<&str>) {
    match reference.rsplit_once(':') {
        Some((f, r)) if r.chars().all(|c| c.is_ascii_digit()) && !r.is_empty() => (f, Some(r)),
        _ => (reference, None),
    }
}

fn revision_of(reference: &str) -> CliResult<(&str, &str)> {
    match split_ref(reference) {
        (f, Some(r)) => Ok((f, r)),
        (_, None) => Err(CliError::Usage(format!("{reference:?}: name a revision, as family:revision"))),
    }
}

fn spinner(output: Output) -> ProgressBar {
    // Progress is for people: never mixed into JSON or YAML output.
    let bar = if output == Output::Table { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

#[derive(Subcommand, Debug)]
pub enum TaskDefinitionsCmd {
    /// Register a revision from a JSON or YAML file (Berth's format, or an
    /// ECS task definition / containerDefinitions array).
    Register {
        file: std::path::PathBuf,
        /// The family, instead of the file's (required for a bare containerDefinitions array).
        #[arg(long)]
        family: Option<String>,
    },
    /// List the families.
    List(Paging),
    /// Show `family` (its latest ACTIVE revision) or `family:revision`.
    Get { reference: String },
    /// A family's revisions.
    Revisions {
        family: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Mark `family:revision` INACTIVE (running tasks keep running).
    Deregister { reference: String },
    /// Delete an INACTIVE `family:revision` that no task uses.
    Delete { reference: String },
}

const FAMILY: &[Col] = &[
    Col("FAMILY", |v| text(&v["family"])),
    Col("LATEST", |v| text(&v["latest_revision"])),
    Col("LATEST ACTIVE", |v| text(&v["latest_active_revision"])),
    Col("CREATED", |v| time(&v["created_at"])),
];

const TASK_DEFINITION: &[Col] = &[
    Col("TASK DEFINITION", |v| format!("{}:{}", text(&v["family"]), text(&v["revision"]))),
    Col("STATUS", |v| text(&v["status"])),
    Col("CONTAINERS", |v| {
        v["container_definitions"]
            .as_array()
            .map(|a| {
                a.iter().map(|c| format!("{}={}", text(&c["name"]), text(&c["image"]))).collect::<Vec<_>>().join(" ")
            })
            .unwrap_or_default()
    }),
    Col("CPU", |v| text(&v["cpu"])),
    Col("MEMORY", |v| text(&v["memory"])),
    Col("REGISTERED", |v| time(&v["registered_at"])),
];

pub async fn task_definitions(args: &ClientArgs, cmd: TaskDefinitionsCmd) -> CliResult {
    let c = args.connect()?;
    let o = args.output;
    match cmd {
        TaskDefinitionsCmd::Register { file, family } => {
            let text = std::fs::read_to_string(&file).map_err(|e| CliError::Io(format!("{}: {e}", file.display())))?;
            let (req, warnings) = super::ecs::load(&text, family.as_deref())
                .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            output::one(o, &c.register_task_definition(&req).await?, TASK_DEFINITION)
        }
        TaskDefinitionsCmd::List(p) => output::list(
            o,
            &c.list_task_definition_families(&berth_api::Page { limit: p.limit, next_token: p.next_token }).await?,
            "families",
            FAMILY,
        ),
        TaskDefinitionsCmd::Get { reference } => {
            let td = match split_ref(&reference) {
                (f, Some(r)) => c.get_task_definition_revision(f, r).await?,
                (f, None) => c.get_task_definition(f).await?,
            };
            output::one(o, &td, TASK_DEFINITION)
        }
        TaskDefinitionsCmd::Revisions { family, paging } => output::list(
            o,
            &c.list_task_definition_revisions(
                &family,
                &berth_api::Page { limit: paging.limit, next_token: paging.next_token },
            )
            .await?,
            "task_definitions",
            TASK_DEFINITION,
        ),
        TaskDefinitionsCmd::Deregister { reference } => {
            let (f, r) = revision_of(&reference)?;
            output::one(o, &c.deregister_task_definition(f, r).await?, TASK_DEFINITION)
        }
        TaskDefinitionsCmd::Delete { reference } => {
            let (f, r) = revision_of(&reference)?;
            c.delete_task_definition(f, r).await?;
            output::done(o, &serde_json::Value::Null, &format!("deleted {reference}"))
        }
    }
}

/// What `--wait` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WaitFor {
    Running,
    Stopped,
}

/// Placement flags shared by tasks and services.
#[derive(Args, Debug, Clone, Default)]
pub struct PlacementArgs {
    /// `binpack:cpu|memory`, `spread:ATTRIBUTE` or `random` (repeatable, in order).
    #[arg(long = "strategy")]
    pub strategies: Vec<String>,
    /// `distinct_host`, `member_of:EXPRESSION` or `max_per:ATTRIBUTE:N` (repeatable).
    #[arg(long = "constraint")]
    pub constraints: Vec<String>,
}

impl PlacementArgs {
    fn parse(&self) -> CliResult<(Vec<PlacementStrategy>, Vec<PlacementConstraint>)> {
        let strategies = self
            .strategies
            .iter()
            .map(|s| {
                let (t, f) = s.split_once(':').map_or((s.as_str(), None), |(t, f)| (t, Some(f.to_owned())));
                PlacementStrategy { strategy_type: t.to_owned(), field: f }
            })
            .collect();
        let constraints = self
            .constraints
            .iter()
            .map(|c| {
                let mut parts = c.splitn(2, ':');
                let kind = parts.next().unwrap_or_default().to_owned();
                let rest = parts.next().map(str::to_owned);
                let mut pc =
                    PlacementConstraint { constraint_type: kind.clone(), expression: None, attribute: None, max: None };
                match (kind.as_str(), rest) {
                    ("member_of", Some(e)) => pc.expression = Some(e),
                    ("max_per", Some(r)) => {
                        let (attr, n) = r
                            .rsplit_once(':')
                            .ok_or_else(|| CliError::Usage(format!("--constraint {c:?}: max_per:ATTRIBUTE:N")))?;
                        pc.attribute = Some(attr.to_owned());
                        pc.max =
                            Some(n.parse().map_err(|_| CliError::Usage(format!("--constraint {c:?}: N is a number")))?);
                    }
                    (_, Some(e)) => pc.expression = Some(e),
                    (_, None) => {}
                }
                Ok(pc)
            })
            .collect::<CliResult<_>>()?;
        Ok((strategies, constraints))
    }
}

#[derive(Subcommand, Debug)]
pub enum TasksCmd {
    /// Run tasks of a task definition (`family` or `family:revision`).
    Run {
        task_definition: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Environment overrides, `CONTAINER:KEY=VALUE` (repeatable).
        #[arg(long = "env")]
        env: Vec<String>,
        #[arg(long)]
        started_by: Option<String>,
        /// Wait until the tasks are RUNNING (or, with =stopped, STOPPED), showing progress.
        #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "running")]
        wait: Option<WaitFor>,
        /// Seconds to wait at most.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Wait in PROVISIONING for capacity instead of failing.
        #[arg(long)]
        queue: bool,
        /// Run on the operator's shared capacity (launch type MANAGED): the
        /// definition's task-level cpu and memory are rounded up to an allowed size.
        #[arg(long)]
        managed: bool,
        #[command(flatten)]
        placement: PlacementArgs,
    },
    /// List the cluster's tasks.
    List {
        /// Only tasks in this state (PROVISIONING, PENDING, RUNNING, STOPPING, STOPPED).
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        family: Option<String>,
        /// Only tasks of this service (name or id).
        #[arg(long)]
        service: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Show a task.
    Get { task: String },
    /// Stop a task.
    Stop {
        task: String,
        #[arg(long)]
        reason: Option<String>,
        /// Wait until it has stopped.
        #[arg(long)]
        wait: bool,
    },
}

const TASK: &[Col] = &[
    Col("ID", |v| text(&v["id"])),
    Col("TASK DEFINITION", |v| text(&v["task_definition"])),
    Col("STATUS", |v| text(&v["last_status"])),
    Col("DESIRED", |v| text(&v["desired_status"])),
    Col("HEALTH", |v| text(&v["health_status"])),
    Col("HOST", |v| text(&v["host_id"])),
    Col("STOP CODE", |v| text(&v["stop_code"])),
    Col("CREATED", |v| time(&v["created_at"])),
];

const TASK_DETAIL: &[Col] = &[
    Col("ID", |v| text(&v["id"])),
    Col("TASK DEFINITION", |v| text(&v["task_definition"])),
    Col("STATUS", |v| format!("{} (desired {})", text(&v["last_status"]), text(&v["desired_status"]))),
    Col("HOST", |v| text(&v["host_id"])),
    Col("CONTAINERS", |v| {
        v["containers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        let exit = c["exit_code"].as_i64().map(|e| format!(" exit {e}")).unwrap_or_default();
                        format!("{} {}{exit}", text(&c["name"]), text(&c["last_status"]))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    }),
    Col("STOPPED", |v| match v["stop_code"].as_str() {
        Some(code) => format!("{code}: {}", text(&v["stopped_reason"])),
        None => "-".into(),
    }),
    Col("SERVICE", |v| text(&v["service_id"])),
    Col("CREATED", |v| time(&v["created_at"])),
    Col("RUNNING AT", |v| time(&v["running_at"])),
    Col("STOPPED AT", |v| time(&v["stopped_at"])),
];

fn overrides(env: &[String]) -> CliResult<TaskOverrides> {
    let mut by_container: std::collections::BTreeMap<String, ContainerOverride> = Default::default();
    for e in env {
        let (container, kv) =
            e.split_once(':').ok_or_else(|| CliError::Usage(format!("--env {e:?}: CONTAINER:KEY=VALUE")))?;
        let (k, v) = kv.split_once('=').ok_or_else(|| CliError::Usage(format!("--env {e:?}: CONTAINER:KEY=VALUE")))?;
        by_container
            .entry(container.to_owned())
            .or_insert_with(|| ContainerOverride { name: container.to_owned(), ..Default::default() })
            .environment
            .insert(k.to_owned(), v.to_owned());
    }
    Ok(TaskOverrides { container_overrides: by_container.into_values().collect() })
}

/// Polls tasks until each reached `until` (or stopped), showing their states.
async fn follow_tasks(
    c: &Client,
    cluster: &str,
    ids: &[String],
    until: WaitFor,
    o: Output,
    timeout: u64,
) -> CliResult<Vec<Task>> {
    let bar = spinner(o);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let mut tasks = Vec::new();
        for id in ids {
            tasks.push(c.get_task(cluster, id).await?);
        }
        let states: Vec<String> = tasks
            .iter()
            .map(|t| match t.last_status {
                TaskStatus::Pending => "PENDING (pulling images, starting containers)".to_owned(),
                s => s.as_str().to_owned(),
            })
            .collect();
        bar.set_message(if ids.len() == 1 { format!("task {}: {}", ids[0], states[0]) } else { states.join(", ") });
        let reached = |t: &Task| match until {
            WaitFor::Running => t.last_status == TaskStatus::Running || t.last_status == TaskStatus::Stopped,
            WaitFor::Stopped => t.last_status == TaskStatus::Stopped,
        };
        if tasks.iter().all(reached) {
            bar.finish_and_clear();
            return Ok(tasks);
        }
        if tokio::time::Instant::now() >= deadline {
            bar.finish_and_clear();
            return Err(CliError::Sdk(berth_sdk::Error::Timeout { what: "the tasks".into(), seconds: timeout }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The outcome of waited-for tasks: stopped unexpectedly, or (for
/// `--wait=stopped`) an essential container that did not exit 0, is a failure.
fn judge(tasks: &[Task], until: WaitFor) -> CliResult {
    for t in tasks {
        if until == WaitFor::Running && t.last_status == TaskStatus::Stopped {
            return Err(CliError::Sdk(berth_sdk::Error::Failed(format!(
                "task {} stopped: {}{}",
                t.id,
                t.stop_code.map_or("", |c| c.as_str()),
                t.stopped_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
            ))));
        }
        if until == WaitFor::Stopped
            && let Some(bad) = t.containers.iter().find(|c| c.essential && c.exit_code != Some(0))
        {
            return Err(CliError::Sdk(berth_sdk::Error::Failed(format!(
                "task {}: container {} exited {}",
                t.id,
                bad.name,
                bad.exit_code.map_or("without an exit code".into(), |e| e.to_string())
            ))));
        }
    }
    Ok(())
}

pub async fn tasks(args: &ClientArgs, cl: &ClusterArg, cmd: TasksCmd) -> CliResult {
    let c = args.connect()?;
    let (o, cluster) = (args.output, cl.cluster.as_str());
    match cmd {
        TasksCmd::Run { task_definition, count, env, started_by, wait, timeout, queue, managed, placement } => {
            let (placement_strategy, placement_constraints) = placement.parse()?;
            let req = RunTaskRequest {
                task_definition,
                count,
                overrides: overrides(&env)?,
                started_by,
                tags: Default::default(),
                client_token: None,
                placement_strategy,
                placement_constraints,
                queue,
                launch_type: if managed { LaunchType::Managed } else { LaunchType::External },
            };
            let resp = c.run_task(cluster, &req).await?;
            for f in &resp.failures {
                eprintln!("not started: {} ({})", f.reason, f.detail.as_deref().unwrap_or(""));
            }
            if resp.tasks.is_empty() {
                return Err(CliError::Usage("no task could be started".into())
                    .with_hint("see the reasons above; `berth hosts list` shows the cluster's capacity"));
            }
            let Some(until) = wait else {
                return output::list(o, &resp, "tasks", TASK);
            };
            let ids: Vec<String> = resp.tasks.iter().map(|t| t.id.to_string()).collect();
            let tasks = follow_tasks(&c, cluster, &ids, until, o, timeout).await?;
            let shown = serde_json::json!({"tasks": tasks, "failures": resp.failures});
            // One task reads best (and queries simplest) as the task itself.
            if tasks.len() == 1 {
                output::one(o, &tasks[0], TASK_DETAIL)?;
            } else {
                output::list(o, &shown, "tasks", TASK)?;
            }
            judge(&tasks, until)
        }
        TasksCmd::List { status, family, service, paging } => {
            let last_status = status
                .map(|s| {
                    TaskStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                        CliError::Usage(format!("--status {s:?}: PROVISIONING, PENDING, RUNNING, STOPPING or STOPPED"))
                    })
                })
                .transpose()?;
            let service_id = match service {
                Some(s) => Some(c.get_service(cluster, &s).await?.id),
                None => None,
            };
            let q = ListTasksQuery {
                last_status,
                family,
                service_id,
                limit: paging.limit,
                next_token: paging.next_token,
                ..Default::default()
            };
            output::list(o, &c.list_tasks(cluster, &q).await?, "tasks", TASK)
        }
        TasksCmd::Get { task } => output::one(o, &c.get_task(cluster, &task).await?, TASK_DETAIL),
        TasksCmd::Stop { task, reason, wait } => {
            let t = c.stop_task(cluster, &task, &StopTaskRequest { reason }).await?;
            if !wait {
                return output::one(o, &t, TASK_DETAIL);
            }
            let tasks = follow_tasks(&c, cluster, &[task], WaitFor::Stopped, o, 300).await?;
            output::one(o, &tasks[0], TASK_DETAIL)
        }
    }
}

/// Flags of `berth services create`.
#[derive(Args, Debug)]
pub struct CreateServiceArgs {
    name: String,
    /// `family` or `family:revision`.
    #[arg(long)]
    task_definition: String,
    #[arg(long)]
    desired_count: Option<u32>,
    /// One task on every eligible host instead of a desired count.
    #[arg(long)]
    daemon: bool,
    /// Run the service's tasks on the operator's shared capacity (launch type MANAGED).
    #[arg(long, conflicts_with = "daemon")]
    managed: bool,
    #[arg(long)]
    minimum_healthy_percent: Option<u32>,
    #[arg(long)]
    maximum_percent: Option<u32>,
    /// Seconds RUNNING before a task without health checks counts as healthy.
    #[arg(long)]
    min_healthy_time: Option<u32>,
    /// Failed launches that stop a deployment and roll it back.
    #[arg(long)]
    failure_threshold: Option<u32>,
    #[arg(long, default_value_t = 0)]
    health_check_grace_period: u32,
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[command(flatten)]
    placement: PlacementArgs,
    /// Wait until the service is stable, showing progress.
    #[arg(long)]
    wait: bool,
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[derive(Subcommand, Debug)]
pub enum ServicesCmd {
    /// Create a service.
    Create(CreateServiceArgs),
    /// List the cluster's services.
    List(Paging),
    /// Show a service: counts, deployments and the scheduler's latest messages.
    Get { service: String },
    /// Change the desired count.
    Scale {
        service: String,
        count: u32,
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Roll out a change: another revision, new images or environment
    /// (which register a revision), or just fresh tasks with --force.
    Deploy {
        service: String,
        #[arg(long)]
        task_definition: Option<String>,
        /// `CONTAINER=IMAGE` (repeatable).
        #[arg(long = "image")]
        images: Vec<String>,
        /// `CONTAINER:KEY=VALUE`, or `CONTAINER:KEY=` to remove it (repeatable).
        #[arg(long = "env")]
        env: Vec<String>,
        /// Replace every task even without a change.
        #[arg(long)]
        force: bool,
        /// Wait for the deployment to finish, showing the rollout.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// Delete a service (it drains to zero first, unless --force).
    Delete {
        service: String,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        wait: bool,
    },
    /// A service's deployments, newest first.
    Deployments {
        service: String,
        #[command(flatten)]
        paging: Paging,
    },
}

const SERVICE: &[Col] = &[
    Col("NAME", |v| text(&v["name"])),
    Col("STATUS", |v| text(&v["status"])),
    Col("TASK DEFINITION", |v| text(&v["task_definition"])),
    Col("DESIRED", |v| text(&v["desired_count"])),
    Col("RUNNING", |v| text(&v["running_count"])),
    Col("HEALTHY", |v| text(&v["healthy_count"])),
    Col("PENDING", |v| text(&v["pending_count"])),
    Col("DEPLOYMENT", |v| {
        v["deployments"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["primary"] == true))
            .map(|d| text(&d["state"]))
            .unwrap_or_default()
    }),
];

const SERVICE_DETAIL: &[Col] = &[
    Col("NAME", |v| format!("{} ({})", text(&v["name"]), text(&v["id"]))),
    Col("STATUS", |v| format!("{} {}", text(&v["status"]), text(&v["scheduling_strategy"]))),
    Col("TASK DEFINITION", |v| text(&v["task_definition"])),
    Col("TASKS", |v| {
        format!(
            "desired {}, running {}, healthy {}, pending {}",
            text(&v["desired_count"]),
            text(&v["running_count"]),
            text(&v["healthy_count"]),
            text(&v["pending_count"])
        )
    }),
    Col("DEPLOYMENTS", |v| {
        v["deployments"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| {
                        format!(
                            "{} {} {} ({} running, {} healthy, {} failed)",
                            text(&d["task_definition"]),
                            text(&d["state"]),
                            if d["primary"] == true { "primary" } else { "old" },
                            text(&d["running_count"]),
                            text(&d["healthy_count"]),
                            text(&d["failed_tasks"])
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }),
    Col("EVENTS", |v| {
        v["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .take(5)
                    .map(|e| format!("{} {}", time(&e["at"]), text(&e["message"])))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }),
    Col("TAGS", |v| pairs(&v["tags"])),
];

const DEPLOYMENT: &[Col] = &[
    Col("ID", |v| text(&v["id"])),
    Col("TASK DEFINITION", |v| text(&v["task_definition"])),
    Col("STATE", |v| text(&v["state"])),
    Col("TRIGGER", |v| text(&v["trigger"])),
    Col("FAILED", |v| text(&v["failed_tasks"])),
    Col("CREATED", |v| time(&v["created_at"])),
    Col("REASON", |v| text(&v["reason"])),
];

/// Follows a service until `done`, showing the rollout; returns the last view.
async fn follow_service(
    c: &Client,
    cluster: &str,
    service: &str,
    o: Output,
    timeout: u64,
    done: impl Fn(&Service) -> bool,
) -> CliResult<Service> {
    let bar = spinner(o);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let mut last_event = None;
    loop {
        let s = c.get_service(cluster, service).await?;
        // The scheduler's messages scroll above the progress line.
        if let Some(e) = s.events.first()
            && last_event.as_ref() != Some(&e.message)
        {
            bar.println(format!("  {}", e.message));
            last_event = Some(e.message.clone());
        }
        let primary = s.deployments.iter().find(|d| d.primary);
        let old: u32 = s.deployments.iter().filter(|d| !d.primary).map(|d| d.running_count).sum();
        bar.set_message(format!(
            "{}: {} of {} healthy on {}{}",
            s.name,
            primary.map_or(0, |d| d.healthy_count),
            s.desired_count,
            s.task_definition,
            if old > 0 { format!(", {old} old task(s) running") } else { String::new() }
        ));
        if done(&s) {
            bar.finish_and_clear();
            return Ok(s);
        }
        if tokio::time::Instant::now() >= deadline {
            bar.finish_and_clear();
            return Err(CliError::Sdk(berth_sdk::Error::Timeout {
                what: format!("service {service}"),
                seconds: timeout,
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn deployment_finished(s: &Service, id: berth_api::DeploymentId) -> bool {
    let Some(d) = s.deployments.iter().find(|d| d.id == id) else { return true };
    match d.state {
        DeploymentState::InProgress => false,
        DeploymentState::Completed => berth_sdk::waiters::service_is_stable(s),
        _ => true,
    }
}

pub async fn services(args: &ClientArgs, cl: &ClusterArg, cmd: ServicesCmd) -> CliResult {
    let c = args.connect()?;
    let (o, cluster) = (args.output, cl.cluster.as_str());
    match cmd {
        ServicesCmd::Create(a) => {
            let (placement_strategy, placement_constraints) = a.placement.parse()?;
            let mut config = DeploymentConfiguration {
                minimum_healthy_percent: a.minimum_healthy_percent,
                maximum_percent: a.maximum_percent,
                min_healthy_time_seconds: a.min_healthy_time,
                ..Default::default()
            };
            config.circuit_breaker.threshold = a.failure_threshold;
            let req = CreateServiceRequest {
                name: a.name.clone(),
                task_definition: a.task_definition,
                desired_count: a.desired_count,
                scheduling_strategy: if a.daemon { SchedulingStrategy::Daemon } else { SchedulingStrategy::Replica },
                launch_type: if a.managed { LaunchType::Managed } else { LaunchType::External },
                placement_strategy,
                placement_constraints,
                deployment_configuration: Some(config),
                health_check_grace_period_seconds: a.health_check_grace_period,
                tags: key_values("--tag", &a.tags)?,
                client_token: None,
            };
            let s = c.create_service(cluster, &req).await?;
            let s = if a.wait {
                follow_service(&c, cluster, &a.name, o, a.timeout, berth_sdk::waiters::service_is_stable).await?
            } else {
                s
            };
            output::one(o, &s, SERVICE_DETAIL)
        }
        ServicesCmd::List(p) => output::list(
            o,
            &c.list_services(cluster, &berth_api::Page { limit: p.limit, next_token: p.next_token }).await?,
            "services",
            SERVICE,
        ),
        ServicesCmd::Get { service } => output::one(o, &c.get_service(cluster, &service).await?, SERVICE_DETAIL),
        ServicesCmd::Scale { service, count, wait, timeout } => {
            let s = c
                .update_service(
                    cluster,
                    &service,
                    &UpdateServiceRequest { desired_count: Some(count), ..Default::default() },
                )
                .await?;
            let s = if wait {
                follow_service(&c, cluster, &service, o, timeout, berth_sdk::waiters::service_is_stable).await?
            } else {
                s
            };
            output::one(o, &s, SERVICE_DETAIL)
        }
        ServicesCmd::Deploy { service, task_definition, images, env, force, wait, timeout } => {
            let mut changes: std::collections::BTreeMap<String, ContainerChange> = Default::default();
            let change = |changes: &mut std::collections::BTreeMap<String, ContainerChange>, name: &str| {
                changes
                    .entry(name.to_owned())
                    .or_insert_with(|| ContainerChange { name: name.to_owned(), ..Default::default() })
                    .clone()
            };
            for i in &images {
                let (name, image) =
                    i.split_once('=').ok_or_else(|| CliError::Usage(format!("--image {i:?}: CONTAINER=IMAGE")))?;
                let mut ch = change(&mut changes, name);
                ch.image = Some(image.to_owned());
                changes.insert(name.to_owned(), ch);
            }
            for e in &env {
                let (name, kv) =
                    e.split_once(':').ok_or_else(|| CliError::Usage(format!("--env {e:?}: CONTAINER:KEY=VALUE")))?;
                let (k, v) =
                    kv.split_once('=').ok_or_else(|| CliError::Usage(format!("--env {e:?}: CONTAINER:KEY=VALUE")))?;
                let mut ch = change(&mut changes, name);
                ch.environment.insert(k.to_owned(), (!v.is_empty()).then(|| v.to_owned()));
                changes.insert(name.to_owned(), ch);
            }
            if task_definition.is_none() && changes.is_empty() && !force {
                return Err(CliError::Usage("nothing to deploy".into())
                    .with_hint("give --task-definition, --image, --env, or --force for fresh tasks"));
            }
            let req = UpdateServiceRequest {
                task_definition,
                container_changes: changes.into_values().collect(),
                force_new_deployment: force,
                ..Default::default()
            };
            let s = c.update_service(cluster, &service, &req).await?;
            let Some(deployment) = s.deployments.iter().find(|d| d.primary).map(|d| d.id) else {
                return output::one(o, &s, SERVICE_DETAIL);
            };
            if !wait {
                return output::one(o, &s, SERVICE_DETAIL);
            }
            let s = follow_service(&c, cluster, &service, o, timeout, |s| deployment_finished(s, deployment)).await?;
            let all = c.list_service_deployments(cluster, &service, &Default::default()).await?;
            let d = all.deployments.iter().find(|d| d.id == deployment);
            output::one(o, &s, SERVICE_DETAIL)?;
            match d.map(|d| (d.state, d.reason.clone())) {
                Some((DeploymentState::Completed, _)) => Ok(()),
                Some((state, reason)) => Err(CliError::Sdk(berth_sdk::Error::Failed(format!(
                    "deployment {deployment} ended {}{}",
                    state.as_str(),
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                )))),
                None => Ok(()),
            }
        }
        ServicesCmd::Delete { service, force, wait } => {
            let s = c.delete_service(cluster, &service, &DeleteServiceQuery { force: Some(force) }).await?;
            if wait && !force {
                let id = s.id.to_string();
                follow_service(&c, cluster, &id, o, 600, |s| s.status == berth_api::services::ServiceStatus::Inactive)
                    .await?;
            }
            output::done(o, &s, &format!("deleted service {service}"))
        }
        ServicesCmd::Deployments { service, paging } => output::list(
            o,
            &c.list_service_deployments(
                cluster,
                &service,
                &berth_api::Page { limit: paging.limit, next_token: paging.next_token },
            )
            .await?,
            "deployments",
            DEPLOYMENT,
        ),
    }
}
