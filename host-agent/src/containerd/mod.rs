//! The containerd runtime: tasks as containerd containers in the agent's
//! own namespace, driven through containerd's gRPC API.
//!
//! Each task has a supervisor (a tokio task) that pulls its images, sets up
//! its network, starts its containers in dependency order, watches their
//! exits and health, stops them (stop signal, `stop_timeout`, SIGKILL) and
//! cleans up. Every step is idempotent and a record of the task is kept in
//! the state dir, so after a restart (even a SIGKILL mid-pull or mid-start)
//! the same supervisor re-adopts what containerd still runs and carries on:
//! nothing leaks and nothing starts twice.

pub mod client;
pub mod health;
pub mod image;
pub mod network;
pub mod rootfs;
pub mod spec;
pub mod stats;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::TaskId;
use berth_api::agent::AgentTask;
use berth_api::task_definitions::{ContainerDefinition, DependencyCondition, PullPolicy};
use berth_api::tasks::{ContainerState, HealthStatus, StopCode, TaskStatus};
use containerd_client::services::v1::container::Runtime as ContainerRuntimeInfo;
use containerd_client::services::v1::snapshots::{MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest, DeleteTaskRequest,
    GetContainerRequest, GetRequest, KillRequest, ListContainersRequest, StartRequest, WaitRequest,
};
use containerd_client::types::v1::Status as ProcessStatus;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tonic::Code;

use self::client::{Containerd, call, call_idempotent};
use self::image::{ImageStore, ReadyImage};
use self::network::{NetworkConfig, TaskNetwork};
use crate::logs::DriverSpec;
use crate::runtime::{BoxFuture, Runtime, TaskUpdate, UpdateQueue};

const TASK_LABEL: &str = "berth.io/task";
const CONTAINER_LABEL: &str = "berth.io/container";
/// Which agent owns a container: several agents may share one containerd
/// (a `berth dev` beside a production agent, or tests), and each cleans up
/// only its own.
const AGENT_LABEL: &str = "berth.io/agent";
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// One error enum for the runtime layer; a task's failure reason is its text.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("containerd is unavailable: {0}")]
    Unavailable(String),
    #[error("containerd {what}: {}", status.message())]
    Containerd { what: String, status: tonic::Status },
    #[error("containerd {0} timed out")]
    Timeout(String),
    #[error("CannotPullImage: {0}")]
    CannotPullImage(String),
    #[error("invalid container configuration: {0}")]
    Spec(String),
    #[error("network: {0}")]
    Network(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("state dir: {0}")]
    Io(#[from] std::io::Error),
}

impl RuntimeError {
    pub fn code(&self) -> Option<Code> {
        match self {
            RuntimeError::Containerd { status, .. } => Some(status.code()),
            _ => None,
        }
    }
}

/// How `berth agent` runs containers.
#[derive(Clone, Debug)]
pub struct ContainerdConfig {
    pub socket: PathBuf,
    /// containerd namespace of the agent's containers and images.
    pub namespace: String,
    pub snapshotter: String,
    /// The agent's state dir: task records, logs, per-task /etc files.
    pub state_dir: PathBuf,
    /// The program containerd's shim runs as each container's logger (`berth log-driver`).
    pub logger: PathBuf,
    pub network: NetworkConfig,
    /// Registries reached over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    pub log_max_bytes: u64,
    pub log_keep: u32,
    pub log_retention: Duration,
    pub default_pids_limit: i64,
    pub image_max_age: Duration,
    pub image_budget_bytes: u64,
}

impl ContainerdConfig {
    pub fn with_defaults(socket: PathBuf, state_dir: PathBuf, logger: PathBuf) -> Self {
        ContainerdConfig {
            socket,
            namespace: "berth".into(),
            snapshotter: client::AUTO_SNAPSHOTTER.into(),
            network: NetworkConfig::with_defaults(),
            state_dir,
            logger,
            insecure_registries: Vec::new(),
            log_max_bytes: 10 << 20,
            log_keep: 2,
            log_retention: Duration::from_secs(24 * 3600),
            default_pids_limit: 4096,
            image_max_age: Duration::from_secs(7 * 24 * 3600),
            image_budget_bytes: 20 << 30,
        }
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }
    fn records_dir(&self) -> PathBuf {
        self.state_dir.join("tasks")
    }
    fn volumes_dir(&self, task: &TaskId) -> PathBuf {
        self.state_dir.join("volumes").join(task.to_string())
    }
    fn etc_dir(&self, task: &TaskId) -> PathBuf {
        self.state_dir.join("etc").join(task.to_string())
    }
}

/// What the agent keeps of a task in its state dir, written before any
/// container exists and updated as the task moves on.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TaskRecord {
    task: AgentTask,
    #[serde(default)]
    network: Option<TaskNetwork>,
    /// Set once the containers are gone: the report still to send.
    #[serde(default)]
    finished: Option<FinalState>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct FinalState {
    containers: Vec<ContainerState>,
    stop_code: Option<StopCode>,
    reason: Option<String>,
    /// When the last container was gone: the end of the task's usage, also
    /// when the report is sent again after an agent restart.
    #[serde(default = "time::OffsetDateTime::now_utc", with = "time::serde::rfc3339")]
    stopped_at: time::OffsetDateTime,
}

struct Handle {
    status: Arc<Mutex<TaskStatus>>,
    stop: watch::Sender<bool>,
    /// The task's images by their stored names, kept from garbage collection.
    images: Vec<String>,
    containers: usize,
}

struct Inner {
    ctr: Containerd,
    /// This agent's id among those sharing the containerd (kept in the state dir).
    agent_id: String,
    images: ImageStore,
    config: ContainerdConfig,
    tasks: Mutex<HashMap<TaskId, Handle>>,
    updates: UpdateQueue,
    /// Each task's last CPU sample, to turn cumulative CPU time into a rate.
    cpu_samples: Mutex<HashMap<TaskId, (std::time::Instant, u64)>>,
}

/// The containerd runtime. Cheap to clone.
#[derive(Clone)]
pub struct ContainerdRuntime {
    inner: Arc<Inner>,
}

fn container_id(task: &TaskId, index: usize) -> String {
    format!("{task}-{index}")
}

impl ContainerdRuntime {
    /// Connects to containerd and re-adopts the tasks recorded in the state
    /// dir; containers of the namespace that no record claims are removed.
    pub async fn start(config: ContainerdConfig) -> Result<Self, RuntimeError> {
        let ctr = Containerd::connect(&config.socket, &config.namespace, &config.snapshotter).await?;
        for dir in [config.records_dir(), config.logs_dir(), config.state_dir.join("etc")] {
            std::fs::create_dir_all(dir)?;
        }
        let http = crate::registry::http().map_err(|e| RuntimeError::Config(e.to_string()))?;
        let images = ImageStore::new(ctr.clone(), http, config.insecure_registries.clone());
        let agent_id = agent_id(&config.state_dir)?;
        let runtime = ContainerdRuntime {
            inner: Arc::new(Inner {
                ctr,
                agent_id,
                images,
                config,
                tasks: Mutex::new(HashMap::new()),
                updates: UpdateQueue::default(),
                cpu_samples: Mutex::new(HashMap::new()),
            }),
        };
        runtime.recover().await?;
        runtime.spawn_housekeeping();
        Ok(runtime)
    }

    pub async fn containerd_version(&self) -> Result<String, RuntimeError> {
        self.inner.ctr.version().await
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.inner.config.logs_dir()
    }

    async fn recover(&self) -> Result<(), RuntimeError> {
        let mut records = Vec::new();
        for entry in std::fs::read_dir(self.inner.config.records_dir())?.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                match std::fs::read(&path).map(|b| serde_json::from_slice::<TaskRecord>(&b)) {
                    Ok(Ok(r)) => records.push(r),
                    _ => tracing::warn!(path = %path.display(), "ignoring an unreadable task record"),
                }
            }
        }
        let claimed: HashSet<String> = records.iter().map(|r| r.task.task_id.to_string()).collect();
        let listed = call(
            "list containers",
            self.inner.ctr.containers().list(self.inner.ctr.req(ListContainersRequest {
                filters: vec![format!("labels.\"{AGENT_LABEL}\"=={}", self.inner.agent_id)],
            })),
        )
        .await?;
        for c in listed.into_inner().containers {
            if c.labels.get(TASK_LABEL).is_some_and(|t| !claimed.contains(t)) {
                tracing::warn!(container = %c.id, "removing a container no task record claims");
                let _ = remove_container(&self.inner.ctr, &c.id, true).await;
            }
        }
        for record in records {
            tracing::info!(task = %record.task.task_id, "re-adopting a task after a restart");
            self.spawn(record);
        }
        Ok(())
    }

    fn spawn(&self, record: TaskRecord) {
        let task_id = record.task.task_id;
        let (stop_tx, stop_rx) = watch::channel(false);
        let status = Arc::new(Mutex::new(TaskStatus::Pending));
        {
            let mut tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
            if tasks.contains_key(&task_id) {
                return;
            }
            let images = record
                .task
                .containers
                .iter()
                .filter_map(|c| crate::registry::ImageReference::parse(&c.image).ok().map(|r| r.to_string()))
                .collect();
            let containers = record.task.containers.len();
            tasks.insert(task_id, Handle { status: status.clone(), stop: stop_tx, images, containers });
        }
        let inner = self.inner.clone();
        tokio::spawn(async move { Supervisor::new(inner, record, status, stop_rx).run().await });
    }

    /// Log retention and image garbage collection, every few minutes.
    fn spawn_housekeeping(&self) {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(300));
            loop {
                tick.tick().await;
                let Some(inner) = inner.upgrade() else { break };
                let running: HashSet<TaskId> =
                    inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
                crate::logs::purge(&inner.config.logs_dir(), inner.config.log_retention, &running);
                let in_use = images_in_use(&inner);
                match inner
                    .images
                    .collect_garbage(&in_use, inner.config.image_max_age, inner.config.image_budget_bytes)
                    .await
                {
                    Ok(removed) if !removed.is_empty() => tracing::info!(?removed, "removed unused images"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "image garbage collection failed"),
                }
            }
        });
    }
}

fn images_in_use(inner: &Inner) -> HashSet<String> {
    let tasks = inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
    tasks.values().flat_map(|h| h.images.iter().cloned()).collect()
}

/// The agent's id, made once and kept in the state dir.
fn agent_id(state_dir: &std::path::Path) -> Result<String, RuntimeError> {
    let path = state_dir.join("agent-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let id = hex::encode(rand::random::<[u8; 8]>());
    std::fs::write(&path, &id)?;
    Ok(id)
}

fn record_path(config: &ContainerdConfig, task: &TaskId) -> PathBuf {
    config.records_dir().join(format!("{task}.json"))
}

fn read_record(config: &ContainerdConfig, task: &TaskId) -> Option<TaskRecord> {
    std::fs::read(record_path(config, task)).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// Written to a temporary file, synced and renamed: a crash leaves the old record or the new.
fn write_record(config: &ContainerdConfig, record: &TaskRecord) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = record_path(config, &record.task.task_id);
    let tmp = path.with_extension("json.tmp");
    // Owner only: the record carries the task's registry credentials.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(&serde_json::to_vec(record).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
}

impl Runtime for ContainerdRuntime {
    fn start(&self, task: AgentTask) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&task.task_id) {
                return;
            }
            let record = read_record(&self.inner.config, &task.task_id).unwrap_or(TaskRecord {
                task,
                network: None,
                finished: None,
            });
            // The record is on disk before anything runs, so a restart finds what to clean up.
            if let Err(e) = write_record(&self.inner.config, &record) {
                tracing::error!(task = %record.task.task_id, error = %e, "cannot record the task; not starting it");
                self.inner.updates.push(TaskUpdate {
                    observed_at: time::OffsetDateTime::now_utc(),
                    task_id: record.task.task_id,
                    last_status: TaskStatus::Stopped,
                    containers: Vec::new(),
                    stop_code: Some(StopCode::TaskFailedToStart),
                    reason: Some(format!("the agent cannot write its state dir: {e}")),
                    health_status: None,
                });
                return;
            }
            self.spawn(record);
        })
    }

    fn stop(&self, task: TaskId) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(h) = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).get(&task) {
                let _ = h.stop.send(true);
            }
        })
    }

    fn observed(&self) -> BoxFuture<'_, Vec<(TaskId, TaskStatus)>> {
        Box::pin(async move {
            self.inner
                .tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(id, h)| (*id, *h.status.lock().unwrap_or_else(|p| p.into_inner())))
                .collect()
        })
    }

    fn usage(&self) -> BoxFuture<'_, HashMap<TaskId, berth_api::tasks::ResourceUsage>> {
        Box::pin(async move {
            let running: Vec<(TaskId, usize)> = self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|(_, h)| *h.status.lock().unwrap_or_else(|p| p.into_inner()) == TaskStatus::Running)
                .map(|(id, h)| (*id, h.containers))
                .collect();
            let now = std::time::Instant::now();
            let mut samples = self.inner.cpu_samples.lock().unwrap_or_else(|p| p.into_inner());
            samples.retain(|id, _| running.iter().any(|(r, _)| r == id));
            let mut out = HashMap::new();
            for (task, containers) in running {
                let total = (0..containers)
                    .filter_map(|i| stats::sample(&self.inner.ctr.namespace_name, &container_id(&task, i)))
                    .fold(stats::Sample::default(), |acc, s| stats::Sample {
                        cpu_nanos: acc.cpu_nanos + s.cpu_nanos,
                        memory_bytes: acc.memory_bytes + s.memory_bytes,
                    });
                // The first sample of a task only sets the baseline for its CPU rate.
                let cpu = match samples.insert(task, (now, total.cpu_nanos)) {
                    Some((then, before)) => {
                        stats::cpu_units(before, total.cpu_nanos, now.duration_since(then).as_nanos())
                    }
                    None => 0,
                };
                let memory = u32::try_from(total.memory_bytes / (1024 * 1024)).unwrap_or(u32::MAX);
                out.insert(task, berth_api::tasks::ResourceUsage { cpu, memory });
            }
            out
        })
    }

    fn next_updates(&self, max: usize) -> BoxFuture<'_, Option<Vec<TaskUpdate>>> {
        Box::pin(self.inner.updates.next_batch(max))
    }

    fn forget(&self, task: TaskId) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let finished = {
                let tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
                tasks
                    .get(&task)
                    .is_some_and(|h| *h.status.lock().unwrap_or_else(|p| p.into_inner()) == TaskStatus::Stopped)
            };
            if finished {
                self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).remove(&task);
                let _ = std::fs::remove_file(record_path(&self.inner.config, &task));
                let _ = std::fs::remove_dir_all(self.inner.config.etc_dir(&task));
                let _ = std::fs::remove_dir_all(self.inner.config.volumes_dir(&task));
            }
        })
    }
}

/// What happened to one of the task's containers.
enum Event {
    Exited {
        index: usize,
        exit_code: i32,
        oom: bool,
    },
    Health {
        index: usize,
        status: HealthStatus,
    },
    /// A restart policy's back-off has passed.
    Restart {
        index: usize,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Waiting,
    Running,
    Exited { exit_code: i32, oom: bool },
}

struct Supervisor {
    inner: Arc<Inner>,
    record: TaskRecord,
    status: Arc<Mutex<TaskStatus>>,
    stop: watch::Receiver<bool>,
    phases: Vec<Phase>,
    health: Vec<Option<HealthStatus>>,
    restarts: Vec<u32>,
    /// A restart is scheduled for the container: its exit does not end the task yet.
    restarting: Vec<bool>,
    images: Vec<Option<ReadyImage>>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    /// Exit waiters and health checkers, by container.
    watchers: Vec<(usize, tokio::task::JoinHandle<()>)>,
}

/// Why the task ends.
struct Ending {
    stop_code: Option<StopCode>,
    reason: Option<String>,
}

impl Supervisor {
    fn new(inner: Arc<Inner>, record: TaskRecord, status: Arc<Mutex<TaskStatus>>, stop: watch::Receiver<bool>) -> Self {
        let n = record.task.containers.len();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Supervisor {
            inner,
            record,
            status,
            stop,
            phases: vec![Phase::Waiting; n],
            health: vec![None; n],
            restarts: vec![0; n],
            restarting: vec![false; n],
            images: vec![None; n],
            events_tx,
            events_rx,
            watchers: Vec::new(),
        }
    }

    fn task_id(&self) -> TaskId {
        self.record.task.task_id
    }

    async fn run(mut self) {
        if let Some(done) = self.record.finished.clone() {
            // The containers are gone already; only the report is left.
            self.report_final(done);
            return;
        }
        let ending = match self.prepare().await {
            Ok(()) => self.supervise().await,
            Err(e) => Ending { stop_code: Some(StopCode::TaskFailedToStart), reason: Some(e.to_string()) },
        };
        self.finish(ending).await;
    }

    fn set_status(&self, s: TaskStatus) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    fn container_states(&self) -> Vec<ContainerState> {
        let task = &self.record.task;
        task.containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (last_status, exit_code, reason) = match &self.phases[i] {
                    Phase::Waiting => (TaskStatus::Pending, None, None),
                    Phase::Running => (TaskStatus::Running, None, None),
                    Phase::Exited { exit_code, oom } => {
                        (TaskStatus::Stopped, Some(*exit_code), oom.then(|| "OutOfMemory".to_owned()))
                    }
                };
                ContainerState {
                    name: c.name.clone(),
                    image: c.image.clone(),
                    last_status,
                    exit_code,
                    reason,
                    essential: c.essential,
                    health_status: self.health[i],
                    network_bindings: task
                        .port_bindings
                        .iter()
                        .filter(|b| b.container_name == c.name)
                        .cloned()
                        .collect(),
                    restart_count: self.restarts[i],
                }
            })
            .collect()
    }

    fn task_health(&self, states: &[ContainerState]) -> Option<HealthStatus> {
        HealthStatus::of_task(states.iter().zip(&self.record.task.containers).map(|(s, c)| (s, c.essential)))
    }

    fn report(&self, last_status: TaskStatus) {
        let containers = self.container_states();
        let health_status = self.task_health(&containers);
        self.inner.updates.push(TaskUpdate {
            observed_at: time::OffsetDateTime::now_utc(),
            task_id: self.task_id(),
            last_status,
            containers,
            stop_code: None,
            reason: None,
            health_status,
        });
    }

    /// Images and the network: everything before the first container.
    async fn prepare(&mut self) -> Result<(), RuntimeError> {
        let containers = self.record.task.containers.clone();
        for (i, c) in containers.iter().enumerate() {
            if *self.stop.borrow() {
                return Ok(());
            }
            let policy = c.effective_pull_policy();
            let pulled = tokio::select! {
                r = self.inner.images.ensure(&c.image, match policy {
                    PullPolicy::Always => image::PullPolicy::Always,
                    PullPolicy::IfNotPresent => image::PullPolicy::IfNotPresent,
                }, self.credentials_for(i)) => r?,
                _ = self.stop.wait_for(|s| *s) => return Ok(()),
            };
            self.images[i] = Some(pulled);
        }
        if self.record.network.is_none() {
            let task = &self.record.task;
            let net = network::set_up(&self.inner.config.network, task).await?;
            self.record.network = Some(net);
            write_record(&self.inner.config, &self.record)?;
        }
        let hostname = self.hostname();
        let net = self.record.network.clone().unwrap_or_default();
        network::write_etc_files(&self.inner.config.etc_dir(&self.task_id()), &hostname, &net)?;
        // The task's own volumes: empty directories its containers share, gone with the task.
        let volumes = self.inner.config.volumes_dir(&self.task_id());
        for v in self.record.task.volumes.iter().filter(|v| v.host.is_none()) {
            std::fs::create_dir_all(volumes.join(&v.name))
                .map_err(|e| RuntimeError::Spec(format!("creating volume {:?}: {e}", v.name)))?;
        }
        Ok(())
    }

    fn hostname(&self) -> String {
        if self.record.task.network_mode == berth_api::task_definitions::NetworkMode::Host {
            return std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
        }
        self.task_id().as_uuid().simple().to_string()[..12].to_owned()
    }

    /// Whether container `i` may start now; Err when it never can.
    fn dependencies_met(&self, c: &ContainerDefinition) -> Result<bool, String> {
        let task = &self.record.task;
        for d in &c.depends_on {
            let Some(j) = task.containers.iter().position(|o| o.name == d.container_name) else {
                return Err(format!("{} depends on an unknown container {}", c.name, d.container_name));
            };
            let met = match (d.condition, &self.phases[j]) {
                (_, Phase::Waiting) => false,
                (DependencyCondition::Start, _) => true,
                (DependencyCondition::Complete, Phase::Exited { .. }) => true,
                (DependencyCondition::Success, Phase::Exited { exit_code: 0, .. }) => true,
                (DependencyCondition::Success, Phase::Exited { exit_code, .. }) => {
                    return Err(format!(
                        "{} exited with {exit_code}, and {} needs it to succeed",
                        d.container_name, c.name
                    ));
                }
                (DependencyCondition::Healthy, Phase::Running) => self.health[j] == Some(HealthStatus::Healthy),
                (DependencyCondition::Healthy, Phase::Exited { .. }) => {
                    return Err(format!(
                        "{} exited before it was healthy, and {} waits for that",
                        d.container_name, c.name
                    ));
                }
                (_, Phase::Running) => false,
            };
            if !met {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Starts containers as their dependencies allow, then watches until an
    /// essential container exits or the task is asked to stop.
    async fn supervise(&mut self) -> Ending {
        let mut reported_running = false;
        loop {
            if *self.stop.borrow() {
                return Ending { stop_code: None, reason: None };
            }
            let task = self.record.task.clone();
            // A start can meet another container's dependency (START), whatever
            // their order in the definition: go round until nothing more can start.
            let mut started_one = true;
            while started_one {
                started_one = false;
                for (i, c) in task.containers.iter().enumerate() {
                    if self.phases[i] != Phase::Waiting {
                        continue;
                    }
                    match self.dependencies_met(c) {
                        Ok(false) => {}
                        Ok(true) => match self.ensure_started(i).await {
                            Ok(()) => started_one = true,
                            Err(e) => {
                                return Ending {
                                    stop_code: Some(StopCode::TaskFailedToStart),
                                    reason: Some(format!("container {}: {e}", c.name)),
                                };
                            }
                        },
                        Err(why) => return Ending { stop_code: Some(StopCode::TaskFailedToStart), reason: Some(why) },
                    }
                }
            }
            if let Some(i) = (0..task.containers.len()).find(|&i| {
                task.containers[i].essential && matches!(self.phases[i], Phase::Exited { .. }) && !self.restarting[i]
            }) {
                let c = &task.containers[i];
                return Ending {
                    stop_code: Some(StopCode::EssentialContainerExited),
                    reason: Some(format!("essential container {} exited", c.name)),
                };
            }
            if !reported_running && !self.phases.contains(&Phase::Waiting) {
                reported_running = true;
                self.set_status(TaskStatus::Running);
                self.report(TaskStatus::Running);
            }
            tokio::select! {
                ev = self.events_rx.recv() => match ev {
                    Some(Event::Exited { index, exit_code, oom }) => {
                        self.phases[index] = Phase::Exited { exit_code, oom };
                        let c = &task.containers[index];
                        // Only a group restart policy reaches an essential container (the
                        // control plane refuses one of its own), and restarts it too.
                        if c.restart_policy.as_ref().is_some_and(|p| p.restarts_after(exit_code, self.restarts[index])) {
                            self.restarting[index] = true;
                            self.schedule_restart(index);
                        }
                        if reported_running && !c.essential {
                            self.report(TaskStatus::Running);
                        }
                    }
                    Some(Event::Restart { index }) => {
                        if let Err(e) = self.restart(index).await {
                            tracing::warn!(task = %task.task_id, container = %task.containers[index].name, error = %e,
                                "could not restart a container");
                        } else if reported_running {
                            self.report(TaskStatus::Running);
                        }
                    }
                    Some(Event::Health { index, status }) => {
                        self.health[index] = Some(status);
                        if reported_running {
                            self.report(TaskStatus::Running);
                        }
                    }
                    None => return Ending { stop_code: None, reason: None },
                },
                _ = self.stop.changed() => {}
            }
        }
    }

    /// The credentials container `i` pulls with: only for the registry they were given for.
    fn credentials_for(&self, i: usize) -> Option<crate::registry::RegistryCredentials> {
        let c = &self.record.task.containers[i];
        let registry = crate::registry::ImageReference::parse(&c.image).ok()?.registry;
        self.record
            .task
            .registry_credentials
            .iter()
            .find(|rc| rc.container_name == c.name && rc.registry == registry)
            .map(|rc| crate::registry::RegistryCredentials {
                username: rc.username.clone(),
                password: rc.password.clone(),
            })
    }

    async fn image_of(&mut self, i: usize) -> Result<ReadyImage, RuntimeError> {
        if let Some(img) = &self.images[i] {
            return Ok(img.clone());
        }
        let c = &self.record.task.containers[i];
        let img = self.inner.images.ensure(&c.image, image::PullPolicy::IfNotPresent, self.credentials_for(i)).await?;
        self.images[i] = Some(img.clone());
        Ok(img)
    }

    /// Brings container `i` to running, whatever a previous run of the agent
    /// left: a container already running is adopted, one that already ran
    /// is taken as exited (never started twice), the rest is created.
    async fn ensure_started(&mut self, i: usize) -> Result<(), RuntimeError> {
        let ctr = self.inner.ctr.clone();
        let id = container_id(&self.task_id(), i);
        let existing =
            call("get task", ctr.tasks().get(ctr.req(GetRequest { container_id: id.clone(), exec_id: String::new() })))
                .await;
        let process = match existing {
            Ok(r) => r.into_inner().process,
            Err(e) if e.code() == Some(Code::NotFound) => None,
            Err(e) => return Err(e),
        };
        let image = self.image_of(i).await?;
        match process.map(|p| (ProcessStatus::try_from(p.status).unwrap_or(ProcessStatus::Unknown), p.exit_status)) {
            Some((ProcessStatus::Running | ProcessStatus::Paused | ProcessStatus::Pausing, _)) => {}
            Some((ProcessStatus::Stopped, _)) => {}
            Some((ProcessStatus::Created, _)) => {
                call(
                    "start task",
                    ctr.tasks().start(ctr.req(StartRequest { container_id: id.clone(), exec_id: String::new() })),
                )
                .await?;
            }
            _ => {
                self.create_container(i, &id, &image).await?;
                crate::failpoint::hit(crate::failpoint::MID_START);
                let result = self.create_and_start_task(i, &id).await;
                if let Err(e) = result {
                    // A failed create leaves the container record and snapshot behind.
                    let _ = remove_container(&ctr, &id, false).await;
                    return Err(e);
                }
            }
        }
        self.phases[i] = Phase::Running;
        let user = self.user_of(i, &id, &image).await.unwrap_or((0, 0));
        self.watch(i, &id, &image, user);
        Ok(())
    }

    async fn create_container(&self, i: usize, id: &str, image: &ReadyImage) -> Result<(), RuntimeError> {
        let ctr = &self.inner.ctr;
        let found =
            call("get container", ctr.containers().get(ctr.req(GetContainerRequest { id: id.to_owned() }))).await;
        match found {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some(Code::NotFound) => {}
            Err(e) => return Err(e),
        }
        // The lease keeps the new snapshot from containerd's garbage
        // collector until the container record refers to it.
        let lease = format!("berth-create-{id}");
        ctr.take_lease(&lease, Duration::from_secs(600)).await?;
        let created = self.create_leased(i, id, image, &lease).await;
        ctr.release_lease(&lease).await;
        created
    }

    async fn create_leased(&self, i: usize, id: &str, image: &ReadyImage, lease: &str) -> Result<(), RuntimeError> {
        let ctr = &self.inner.ctr;
        let prepared = call(
            "prepare snapshot",
            ctr.snapshots().prepare(ctr.leased(
                PrepareSnapshotRequest {
                    snapshotter: ctr.snapshotter.clone(),
                    key: id.to_owned(),
                    parent: image.chain_id.clone(),
                    labels: HashMap::new(),
                },
                lease,
            )),
        )
        .await;
        match prepared {
            Ok(_) => {}
            Err(e) if e.code() == Some(Code::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
        // User names resolve through the container's own filesystem, now that it exists.
        let user = self.user_of(i, id, image).await?;
        let task = &self.record.task;
        let c = &task.containers[i];
        let etc = self.inner.config.etc_dir(&task.task_id);
        let volumes = self.inner.config.volumes_dir(&task.task_id);
        let netns = self.record.network.as_ref().and_then(TaskNetwork::netns_path);
        let hostname = self.hostname();
        let oci = spec::build(&spec::SpecContext {
            task,
            container: c,
            image: &image.config,
            user,
            netns: netns.as_deref(),
            hostname: &hostname,
            cgroups_path: format!("/{}/{id}", ctr.namespace_name),
            etc_dir: &etc,
            volumes_dir: &volumes,
            default_pids_limit: self.inner.config.default_pids_limit,
        })?;
        let spec_any = prost_types::Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
            value: serde_json::to_vec(&oci).map_err(|e| RuntimeError::Spec(e.to_string()))?,
        };
        let mut labels: HashMap<String, String> =
            c.labels.iter().filter(|(k, _)| !k.starts_with("berth.io/")).map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.insert(TASK_LABEL.into(), task.task_id.to_string());
        labels.insert(CONTAINER_LABEL.into(), c.name.clone());
        labels.insert(AGENT_LABEL.into(), self.inner.agent_id.clone());
        call(
            "create container",
            ctr.containers().create(ctr.leased(
                CreateContainerRequest {
                    container: Some(Container {
                        id: id.to_owned(),
                        labels,
                        image: image.name.clone(),
                        runtime: Some(ContainerRuntimeInfo { name: "io.containerd.runc.v2".into(), options: None }),
                        spec: Some(spec_any),
                        snapshotter: ctr.snapshotter.clone(),
                        snapshot_key: id.to_owned(),
                        ..Default::default()
                    }),
                },
                lease,
            )),
        )
        .await?;
        Ok(())
    }

    async fn snapshot_mounts(&self, id: &str) -> Result<Vec<containerd_client::types::Mount>, RuntimeError> {
        let ctr = &self.inner.ctr;
        Ok(call(
            "snapshot mounts",
            ctr.snapshots().mounts(ctr.req(MountsRequest { snapshotter: ctr.snapshotter.clone(), key: id.to_owned() })),
        )
        .await?
        .into_inner()
        .mounts)
    }

    /// The uid and gid container `i` runs as: the definition's user, else the
    /// image's, with names looked up in the container's `/etc/passwd` and `/etc/group`.
    async fn user_of(&self, i: usize, id: &str, image: &ReadyImage) -> Result<(u32, u32), RuntimeError> {
        let c = &self.record.task.containers[i];
        let user = c.user.as_deref().or(image.config.config.user.as_deref()).unwrap_or("");
        if user.is_empty() {
            return Ok((0, 0));
        }
        let mounts = self.snapshot_mounts(id).await?;
        let passwd = rootfs::read(&mounts, "etc/passwd");
        let group = rootfs::read(&mounts, "etc/group");
        rootfs::resolve_user(user, passwd.as_deref(), group.as_deref()).map_err(RuntimeError::Spec)
    }

    async fn create_and_start_task(&self, i: usize, id: &str) -> Result<(), RuntimeError> {
        let ctr = &self.inner.ctr;
        let c = &self.record.task.containers[i];
        let mounts = self.snapshot_mounts(id).await?;
        let log = DriverSpec {
            max_bytes: self.inner.config.log_max_bytes,
            keep: self.inner.config.log_keep,
            path: crate::logs::container_log(&self.inner.config.logs_dir(), &self.task_id(), &c.name),
        };
        if let Some(dir) = log.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let uri = log.uri(&self.inner.config.logger);
        call(
            "create task",
            ctr.tasks().create(ctr.req(CreateTaskRequest {
                container_id: id.to_owned(),
                rootfs: mounts,
                stdout: uri.clone(),
                stderr: uri,
                ..Default::default()
            })),
        )
        .await?;
        call(
            "start task",
            ctr.tasks().start(ctr.req(StartRequest { container_id: id.to_owned(), exec_id: String::new() })),
        )
        .await?;
        Ok(())
    }

    /// Sends a restart of container `index` after its back-off: 1 s, doubling
    /// with each restart up to 60 s, so a crash loop cannot flood the host.
    fn schedule_restart(&self, index: usize) {
        let delay = Duration::from_secs(1u64 << self.restarts[index].min(6)).min(Duration::from_secs(60));
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = events.send(Event::Restart { index });
        });
    }

    /// Runs an exited container again: a new containerd task on the same
    /// container and filesystem, logging to the same file.
    async fn restart(&mut self, index: usize) -> Result<(), RuntimeError> {
        if !matches!(self.phases[index], Phase::Exited { .. }) || *self.stop.borrow() {
            return Ok(());
        }
        self.restarting[index] = false;
        let ctr = self.inner.ctr.clone();
        let id = container_id(&self.task_id(), index);
        call_idempotent("delete task", ctr.tasks().delete(ctr.req(DeleteTaskRequest { container_id: id.clone() })))
            .await?;
        // The last run's health checker would exec into a container that is gone.
        self.watchers.retain(|(i, w)| {
            if *i == index {
                w.abort();
            }
            *i != index
        });
        let image = self.image_of(index).await?;
        self.create_and_start_task(index, &id).await?;
        self.restarts[index] += 1;
        self.phases[index] = Phase::Running;
        let user = self.user_of(index, &id, &image).await.unwrap_or((0, 0));
        self.watch(index, &id, &image, user);
        Ok(())
    }

    /// Waits for the container's exit (surviving containerd restarts) and
    /// runs its health check, sending both as events.
    fn watch(&mut self, index: usize, id: &str, image: &ReadyImage, user: (u32, u32)) {
        let ctr = self.inner.ctr.clone();
        let events = self.events_tx.clone();
        let id_owned = id.to_owned();
        self.watchers.push((
            index,
            tokio::spawn(async move {
                let exit_code = wait_exit(&ctr, &id_owned).await;
                let oom = exit_code == 137 && oom_killed(&ctr.namespace_name, &id_owned);
                let _ = events.send(Event::Exited { index, exit_code, oom });
            }),
        ));
        let c = &self.record.task.containers[index];
        if let Some(check) = c.health_check.clone() {
            let ctr = self.inner.ctr.clone();
            let events = self.events_tx.clone();
            let exec = health::ExecContext {
                container_id: id.to_owned(),
                env: spec::environment(c, &image.config),
                // As the container's own process runs (it started, so these resolved).
                cwd: spec::working_dir(c, &image.config),
                user,
            };
            self.watchers.push((
                index,
                tokio::spawn(async move {
                    health::run(ctr, exec, check, move |status| {
                        let _ = events.send(Event::Health { index, status });
                    })
                    .await;
                }),
            ));
        }
    }

    /// Stops what runs (stop signal, `stop_timeout`, SIGKILL), removes the
    /// containers and the network, records the end, and reports it.
    async fn finish(mut self, ending: Ending) {
        self.set_status(TaskStatus::Stopping);
        let ctr = self.inner.ctr.clone();
        let task = self.record.task.clone();
        let mut stops = Vec::new();
        for (i, c) in task.containers.iter().enumerate() {
            if self.phases[i] != Phase::Running {
                continue;
            }
            let id = container_id(&task.task_id, i);
            let signal = self.images[i].as_ref().map_or(15, |img| spec::stop_signal(&img.config));
            let timeout = c.stop_timeout.map_or(DEFAULT_STOP_TIMEOUT, |s| Duration::from_secs(u64::from(s)));
            let ctr = ctr.clone();
            stops.push(async move { stop_container(&ctr, &id, signal, timeout).await });
        }
        futures::future::join_all(stops).await;
        // Collect the exits the watchers saw, then every container's final code.
        while self.phases.contains(&Phase::Running) {
            match tokio::time::timeout(Duration::from_secs(10), self.events_rx.recv()).await {
                Ok(Some(Event::Exited { index, exit_code, oom })) => {
                    self.phases[index] = Phase::Exited { exit_code, oom }
                }
                Ok(Some(Event::Health { .. } | Event::Restart { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let stopped_at = time::OffsetDateTime::now_utc();
        for (_, w) in self.watchers.drain(..) {
            w.abort();
        }
        for i in 0..task.containers.len() {
            let id = container_id(&task.task_id, i);
            if let Err(e) = remove_container(&ctr, &id, false).await {
                tracing::warn!(container = %id, error = %e, "could not remove a container");
            }
        }
        if let Some(net) = &self.record.network
            && let Err(e) =
                network::tear_down(&self.inner.config.network, &task.task_id, net, &task.port_bindings).await
        {
            tracing::warn!(task = %task.task_id, error = %e, "could not tear the task's network down");
        }
        // Everything is stopped now, including containers that never started.
        let mut containers = self.container_states();
        let failure = ending.reason.clone().filter(|_| ending.stop_code == Some(StopCode::TaskFailedToStart));
        for (i, c) in containers.iter_mut().enumerate() {
            c.last_status = TaskStatus::Stopped;
            if self.phases[i] == Phase::Waiting && c.reason.is_none() {
                c.reason = failure.clone();
            }
        }
        let done = FinalState { containers, stop_code: ending.stop_code, reason: ending.reason, stopped_at };
        self.record.finished = Some(done.clone());
        if let Err(e) = write_record(&self.inner.config, &self.record) {
            tracing::warn!(task = %task.task_id, error = %e, "could not record the task's end");
        }
        self.report_final(done);
    }

    fn report_final(&self, done: FinalState) {
        self.set_status(TaskStatus::Stopped);
        let health_status = self.task_health(&done.containers);
        self.inner.updates.push(TaskUpdate {
            observed_at: done.stopped_at,
            task_id: self.task_id(),
            last_status: TaskStatus::Stopped,
            containers: done.containers,
            stop_code: done.stop_code,
            reason: done.reason,
            health_status,
        });
    }
}

/// The container's exit code, waiting as long as it runs. A broken wait
/// (containerd restarting) is retried; a task that is gone counts as killed.
async fn wait_exit(ctr: &Containerd, id: &str) -> i32 {
    loop {
        let waited =
            ctr.tasks().wait(ctr.req(WaitRequest { container_id: id.to_owned(), exec_id: String::new() })).await;
        match waited {
            Ok(r) => return i32::try_from(r.into_inner().exit_status).unwrap_or(i32::MAX),
            Err(status) if status.code() == Code::NotFound => return 137,
            Err(status) => {
                tracing::debug!(container = %id, error = %status, "wait broke; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Whether the kernel's OOM killer killed a process of the container,
/// from its memory cgroup (which outlives the process until the task is deleted).
fn oom_killed(namespace: &str, id: &str) -> bool {
    let candidates = [
        format!("/sys/fs/cgroup/memory/{namespace}/{id}/memory.oom_control"),
        format!("/sys/fs/cgroup/{namespace}/{id}/memory.events"),
    ];
    candidates.iter().filter_map(|p| std::fs::read_to_string(p).ok()).any(|text| {
        text.lines()
            .any(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse::<u64>().ok()).is_some_and(|n| n > 0))
    })
}

/// Sends the stop signal, waits up to `timeout`, then kills every process of the container.
async fn stop_container(ctr: &Containerd, id: &str, signal: u32, timeout: Duration) {
    let kill = |signal: u32, all: bool| {
        let ctr = ctr.clone();
        let id = id.to_owned();
        async move {
            call_idempotent(
                "kill task",
                ctr.tasks().kill(ctr.req(KillRequest { container_id: id, exec_id: String::new(), signal, all })),
            )
            .await
        }
    };
    if let Err(e) = kill(signal, false).await {
        tracing::debug!(container = %id, error = %e, "stop signal failed");
    }
    let exited = tokio::time::timeout(timeout, wait_exit(ctr, id)).await.is_ok();
    if !exited && let Err(e) = kill(9, true).await {
        tracing::warn!(container = %id, error = %e, "SIGKILL failed");
    }
}

/// Removes a container's task, record and snapshot; what is gone is fine.
async fn remove_container(ctr: &Containerd, id: &str, kill_first: bool) -> Result<(), RuntimeError> {
    if kill_first {
        let _ = call_idempotent(
            "kill task",
            ctr.tasks().kill(ctr.req(KillRequest {
                container_id: id.to_owned(),
                exec_id: String::new(),
                signal: 9,
                all: true,
            })),
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), wait_exit(ctr, id)).await;
    }
    call_idempotent("delete task", ctr.tasks().delete(ctr.req(DeleteTaskRequest { container_id: id.to_owned() })))
        .await?;
    call_idempotent("delete container", ctr.containers().delete(ctr.req(DeleteContainerRequest { id: id.to_owned() })))
        .await?;
    call_idempotent(
        "remove snapshot",
        ctr.snapshots()
            .remove(ctr.req(RemoveSnapshotRequest { snapshotter: ctr.snapshotter.clone(), key: id.to_owned() })),
    )
    .await
}
