//! Runtimes run tasks on the host: [`crate::containerd::ContainerdRuntime`]
//! for real workloads, [`SimulatedRuntime`] as a test double.

mod simulated;

use berth_api::TaskId;
use berth_api::agent::AgentTask;
use berth_api::tasks::{ContainerState, HealthStatus, ResourceUsage, StopCode, TaskStatus};

pub use simulated::SimulatedRuntime;
use tokio::sync::mpsc;

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A task transition the agent must report.
#[derive(Clone, Debug)]
pub struct TaskUpdate {
    pub task_id: TaskId,
    pub last_status: TaskStatus,
    pub containers: Vec<ContainerState>,
    pub stop_code: Option<StopCode>,
    pub reason: Option<String>,
    /// The task's health from its essential containers' checks.
    pub health_status: Option<HealthStatus>,
    /// When the runtime saw it: the start and stop times of usage records.
    pub observed_at: time::OffsetDateTime,
}

/// What runs tasks. Calls are idempotent: starting a task that runs, or
/// stopping one that is gone, does nothing.
pub trait Runtime: Send + Sync {
    fn start(&self, task: AgentTask) -> BoxFuture<'_, ()>;
    fn stop(&self, task: TaskId) -> BoxFuture<'_, ()>;
    /// Every task the runtime holds and its state.
    fn observed(&self) -> BoxFuture<'_, Vec<(TaskId, TaskStatus)>>;
    /// What each running task uses now; empty where the runtime cannot tell.
    fn usage(&self) -> BoxFuture<'_, std::collections::HashMap<TaskId, ResourceUsage>> {
        Box::pin(async { std::collections::HashMap::new() })
    }
    /// The next transitions to report (waiting for the first, then taking up
    /// to `max` that are ready), so they go out in one request; None when
    /// the runtime shuts down.
    fn next_updates(&self, max: usize) -> BoxFuture<'_, Option<Vec<TaskUpdate>>>;
    /// Drops a stopped task once its end was reported.
    fn forget(&self, task: TaskId) -> BoxFuture<'_, ()>;
}

/// A runtime's transitions waiting to be reported, handed out in batches
/// ([`Runtime::next_updates`]).
pub struct UpdateQueue {
    tx: mpsc::UnboundedSender<TaskUpdate>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<TaskUpdate>>,
}

impl Default for UpdateQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        UpdateQueue { tx, rx: tokio::sync::Mutex::new(rx) }
    }
}

impl UpdateQueue {
    pub fn push(&self, update: TaskUpdate) {
        let _ = self.tx.send(update);
    }

    /// Waits for the first transition, then takes up to `max` that are ready.
    pub async fn next_batch(&self, max: usize) -> Option<Vec<TaskUpdate>> {
        let mut rx = self.rx.lock().await;
        let first = rx.recv().await?;
        let mut batch = vec![first];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(u) => batch.push(u),
                Err(_) => break,
            }
        }
        Some(batch)
    }
}

/// Report sequence numbers that keep increasing across restarts: the larger
/// of the previous one plus one and the current time in microseconds.
#[derive(Default)]
pub struct Sequencer {
    last: i64,
}

impl Sequencer {
    pub fn next_seq(&mut self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.last = (self.last + 1).max(now);
        self.last
    }
}
