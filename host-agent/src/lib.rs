//! Berth's host agent.
//!
//! An agent registers its host with a cluster once (exchanging a
//! registration token for a host id and credential, kept in its state dir so
//! a restart keeps the same identity), then runs three loops against the
//! control plane (docs/agent-protocol.md): heartbeats carrying what it runs,
//! a long-poll on its assignment stream from its acknowledged cursor, and
//! sequenced status reports for every task transition.
//!
//! Tasks run through a [`Runtime`]: [`containerd::ContainerdRuntime`] runs
//! them as containers through containerd's API; [`SimulatedRuntime`] is a
//! test double that reports tasks RUNNING without running anything, for
//! tests and benchmarks of the control plane (`berth agent --simulate N`).
//! Container logs are written by a logger the shim runs ([`logs`]) and
//! served to the control plane by [`logs_server`].

pub mod client;
pub mod containerd;
pub mod failpoint;
pub mod logs;
pub mod logs_server;
pub mod registry;
pub mod runtime;
pub mod state;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_api::agent::{
    AckRequest, HeartbeatRequest, LogsEndpoint, ObservedTask, TaskStatusReport, TaskStatusReportBatch,
    TaskStatusReportItem,
};
use berth_api::hosts::Resources;
use berth_api::tasks::{DesiredStatus, TaskStatus};
use tokio::sync::watch;

pub use client::{AgentClient, ClientError};
pub use runtime::{Runtime, SimulatedRuntime, TaskUpdate};
pub use state::{Identity, StateDir};

/// What `berth agent` was asked to do.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub server: String,
    pub registration_token: String,
    pub state_dir: PathBuf,
    pub hostname: String,
    pub total: Resources,
    pub reserved: Resources,
    pub dynamic_port_range: [u16; 2],
    pub attributes: BTreeMap<String, String>,
    /// What runs the tasks, reported at registration.
    pub runtime: berth_api::auth::RuntimeDetails,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("state dir: {0}")]
    State(#[from] std::io::Error),
    #[error("state dir: {0}")]
    StateFormat(String),
    #[error(transparent)]
    Runtime(#[from] containerd::RuntimeError),
    #[error("{0}")]
    Config(String),
}

/// A containerd runtime and the endpoint that serves its containers' logs.
pub struct ContainerdAgent {
    pub runtime: Arc<containerd::ContainerdRuntime>,
    pub logs_endpoint: LogsEndpoint,
}

/// Connects to containerd (re-adopting recorded tasks) and serves logs on
/// `logs_listen`. The control plane reaches the logs at `advertise`
/// (`http://host:port`), by default the address bound.
pub async fn start_containerd(
    config: containerd::ContainerdConfig,
    logs_listen: std::net::SocketAddr,
    advertise: Option<String>,
) -> Result<ContainerdAgent, AgentError> {
    let runtime = Arc::new(containerd::ContainerdRuntime::start(config).await?);
    let listener = logs_server::bind(logs_listen).await?;
    let bound = listener.local_addr()?;
    let url = match advertise {
        Some(a) => a.trim_end_matches('/').to_owned(),
        None if bound.ip().is_unspecified() => {
            return Err(AgentError::Config(format!(
                "the logs endpoint listens on {bound}: say how the control plane reaches it with --logs-advertise"
            )));
        }
        None => format!("http://{bound}"),
    };
    let token = hex::encode(rand::random::<[u8; 32]>());
    let dyn_runtime: Arc<dyn Runtime> = runtime.clone();
    let logs_dir = runtime.logs_dir();
    let serve_token = token.clone();
    tokio::spawn(async move {
        if let Err(e) = logs_server::serve(listener, logs_dir, serve_token, dyn_runtime).await {
            tracing::error!(error = %e, "the logs endpoint stopped");
        }
    });
    Ok(ContainerdAgent { runtime, logs_endpoint: LogsEndpoint { url, token } })
}

/// Registers (or reloads) the host's identity.
pub async fn identify(config: &AgentConfig) -> Result<Identity, AgentError> {
    identify_with(config, &client::http()?).await
}

/// [`identify`] over a given HTTP client.
pub async fn identify_with(config: &AgentConfig, http: &reqwest::Client) -> Result<Identity, AgentError> {
    let state = StateDir::new(&config.state_dir)?;
    if let Some(identity) = state.load_identity()? {
        tracing::info!(host_id = %identity.host_id, "reusing the host identity from the state dir");
        return Ok(identity);
    }
    let mut attributes = config.attributes.clone();
    attributes.entry("os".into()).or_insert_with(|| std::env::consts::OS.into());
    attributes.entry("arch".into()).or_insert_with(|| std::env::consts::ARCH.into());
    let registered = AgentClient::register(
        http,
        &config.server,
        &berth_api::auth::RegisterHostRequest {
            registration_token: config.registration_token.clone(),
            hostname: config.hostname.clone(),
            total: config.total,
            reserved: config.reserved,
            dynamic_port_range: Some(config.dynamic_port_range),
            attributes,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            runtime: Some(config.runtime.clone()),
        },
    )
    .await?;
    let identity = Identity {
        server: config.server.clone(),
        host_id: registered.host_id,
        cluster_id: registered.cluster_id,
        host_credential: registered.host_credential,
    };
    state.save_identity(&identity)?;
    tracing::info!(host_id = %identity.host_id, "registered the host");
    Ok(identity)
}

/// Most reports the agent sends in one request.
const REPORTS_PER_REQUEST: usize = 100;

/// Runs the agent until `stop` becomes true.
pub async fn run(
    identity: Identity,
    runtime: Arc<dyn Runtime>,
    logs_endpoint: Option<LogsEndpoint>,
    stop: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    run_with(AgentClient::new(&identity)?, runtime, logs_endpoint, stop).await
}

/// [`run`] with a given client (simulated hosts share one's connections).
pub async fn run_with(
    client: AgentClient,
    runtime: Arc<dyn Runtime>,
    logs_endpoint: Option<LogsEndpoint>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let interval = Arc::new(std::sync::Mutex::new(Duration::from_secs(5)));
    let reporter = tokio::spawn(report_loop(client.clone(), runtime.clone(), stop.clone()));
    let heartbeats =
        tokio::spawn(heartbeat_loop(client.clone(), runtime.clone(), logs_endpoint, interval.clone(), stop.clone()));
    // The cursor of changes applied but not yet acknowledged: the next poll
    // carries it, so applying a batch costs one request, not two.
    let mut unacked: Option<i64> = None;
    loop {
        let poll = client.assignments(None, unacked, 20);
        let got = tokio::select! {
            r = poll => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        match got {
            Ok(page) => {
                for a in &page.assignments {
                    match a.desired_status {
                        DesiredStatus::Running => runtime.start(a.task.clone()).await,
                        DesiredStatus::Stopped => runtime.stop(a.task_id).await,
                    }
                }
                // The poll carried the previous acknowledgement; only this page is left.
                unacked = (!page.assignments.is_empty()).then_some(page.cursor);
            }
            Err(e) => {
                // A refused cursor would be refused forever; unacknowledged changes simply come again.
                if matches!(e, ClientError::Api { status: 422, .. }) {
                    unacked = None;
                }
                tracing::warn!(error = %e, "assignment poll failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    // Stopping between applying a batch and the next poll: acknowledge it
    // now, so a restart does not apply it again (it would be harmless).
    if let Some(cursor) = unacked
        && let Err(e) = client.ack(&AckRequest { cursor }).await
    {
        tracing::warn!(error = %e, "could not acknowledge assignments; they will come again");
    }
    heartbeats.abort();
    reporter.abort();
    Ok(())
}

async fn heartbeat_loop(
    client: AgentClient,
    runtime: Arc<dyn Runtime>,
    logs_endpoint: Option<LogsEndpoint>,
    interval: Arc<std::sync::Mutex<Duration>>,
    stop: watch::Receiver<bool>,
) {
    // Sent until the control plane has it: once per agent start.
    let mut logs_endpoint = logs_endpoint;
    while !*stop.borrow() {
        let mut usage = runtime.usage().await;
        let observed: Vec<ObservedTask> = runtime
            .observed()
            .await
            .into_iter()
            .map(|(task_id, last_status)| ObservedTask { task_id, last_status, usage: usage.remove(&task_id) })
            .collect();
        match client.heartbeat(&HeartbeatRequest { observed, logs_endpoint: logs_endpoint.clone() }).await {
            Ok(resp) => {
                logs_endpoint = None;
                for task in resp.stop_tasks {
                    runtime.stop(task).await;
                }
                if let Ok(mut i) = interval.lock() {
                    *i = Duration::from_secs(u64::from(resp.heartbeat_interval_seconds.max(1)));
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
        let wait = interval.lock().map(|i| *i).unwrap_or(Duration::from_secs(5));
        tokio::time::sleep(wait).await;
    }
}

/// Sends the runtime's transitions as sequenced reports, retrying until they land.
async fn report_loop(client: AgentClient, runtime: Arc<dyn Runtime>, stop: watch::Receiver<bool>) {
    let mut seq = runtime::Sequencer::default();
    while !*stop.borrow() {
        let Some(updates) = runtime.next_updates(REPORTS_PER_REQUEST).await else { break };
        let reports: Vec<TaskStatusReportItem> = updates
            .iter()
            .map(|u| TaskStatusReportItem {
                task_id: u.task_id,
                report: TaskStatusReport {
                    seq: seq.next_seq(),
                    last_status: u.last_status,
                    containers: u.containers.clone(),
                    stop_code: u.stop_code,
                    reason: u.reason.clone(),
                    health_status: u.health_status,
                    observed_at: Some(u.observed_at),
                },
            })
            .collect();
        let batch = TaskStatusReportBatch { reports };
        for attempt in 0..10u32 {
            match client.report_batch(&batch).await {
                // Per-report refusals (the task is gone, or the transition is illegal) are final.
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "report failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
                }
            }
        }
        for u in updates.iter().filter(|u| u.last_status == TaskStatus::Stopped) {
            runtime.forget(u.task_id).await;
        }
    }
}
