//! Runtimes run tasks on the host. The containerd runtime is the containerd
//! issue's; [`SimulatedRuntime`] is a test double.

use std::collections::HashMap;
use std::sync::Mutex;

use berth_api::TaskId;
use berth_api::agent::AgentTask;
use berth_api::tasks::{ContainerState, StopCode, TaskStatus};
use tokio::sync::mpsc;

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A task transition the agent must report.
#[derive(Clone, Debug)]
pub struct TaskUpdate {
    pub task_id: TaskId,
    pub last_status: TaskStatus,
    pub containers: Vec<ContainerState>,
    pub stop_code: Option<StopCode>,
    pub reason: Option<String>,
}

/// What runs tasks. Calls are idempotent: starting a task that runs, or
/// stopping one that is gone, does nothing.
pub trait Runtime: Send + Sync {
    fn start(&self, task: AgentTask) -> BoxFuture<'_, ()>;
    fn stop(&self, task: TaskId) -> BoxFuture<'_, ()>;
    /// Every task the runtime holds and its state.
    fn observed(&self) -> BoxFuture<'_, Vec<(TaskId, TaskStatus)>>;
    /// The next transitions to report (waiting for the first, then taking up
    /// to `max` that are ready), so they go out in one request; None when
    /// the runtime shuts down.
    fn next_updates(&self, max: usize) -> BoxFuture<'_, Option<Vec<TaskUpdate>>>;
    /// Drops a stopped task once its end was reported.
    fn forget(&self, task: TaskId) -> BoxFuture<'_, ()>;
}

/// A test double: tasks go RUNNING at once and STOPPED when asked (exit code
/// 0), with nothing actually run. For tests and benchmarks of the protocol
/// and the control plane, never for workloads.
pub struct SimulatedRuntime {
    tasks: Mutex<HashMap<TaskId, (TaskStatus, Vec<String>)>>,
    tx: mpsc::UnboundedSender<TaskUpdate>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<TaskUpdate>>,
}

impl Default for SimulatedRuntime {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self { tasks: Mutex::new(HashMap::new()), tx, rx: tokio::sync::Mutex::new(rx) }
    }
}

fn containers(names: &[String], image: &str, status: TaskStatus, exit: Option<i32>) -> Vec<ContainerState> {
    names
        .iter()
        .map(|n| ContainerState {
            name: n.clone(),
            image: image.to_owned(),
            last_status: status,
            exit_code: exit,
            reason: None,
        })
        .collect()
}

impl Runtime for SimulatedRuntime {
    fn start(&self, task: AgentTask) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let names: Vec<String> = task.containers.iter().map(|c| c.name.clone()).collect();
            let image = task.containers.first().map(|c| c.image.clone()).unwrap_or_default();
            let fresh = match self.tasks.lock() {
                Ok(mut t) if !t.contains_key(&task.task_id) => {
                    t.insert(task.task_id, (TaskStatus::Running, names.clone()));
                    true
                }
                _ => false,
            };
            if fresh {
                let _ = self.tx.send(TaskUpdate {
                    task_id: task.task_id,
                    last_status: TaskStatus::Running,
                    containers: containers(&names, &image, TaskStatus::Running, None),
                    stop_code: None,
                    reason: None,
                });
            }
        })
    }

    fn stop(&self, task: TaskId) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let names = match self.tasks.lock() {
                Ok(mut t) => match t.get_mut(&task) {
                    Some((status, names)) if *status != TaskStatus::Stopped => {
                        *status = TaskStatus::Stopped;
                        Some(names.clone())
                    }
                    _ => None,
                },
                Err(_) => None,
            };
            if let Some(names) = names {
                let _ = self.tx.send(TaskUpdate {
                    task_id: task,
                    last_status: TaskStatus::Stopped,
                    containers: containers(&names, "", TaskStatus::Stopped, Some(0)),
                    stop_code: None,
                    reason: Some("stopped by the simulated runtime".into()),
                });
            }
        })
    }

    fn observed(&self) -> BoxFuture<'_, Vec<(TaskId, TaskStatus)>> {
        Box::pin(
            async move { self.tasks.lock().map(|t| t.iter().map(|(k, v)| (*k, v.0)).collect()).unwrap_or_default() },
        )
    }

    fn next_updates(&self, max: usize) -> BoxFuture<'_, Option<Vec<TaskUpdate>>> {
        Box::pin(async move {
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
        })
    }

    fn forget(&self, task: TaskId) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Ok(mut t) = self.tasks.lock() {
                t.remove(&task);
            }
        })
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
