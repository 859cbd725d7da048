//! A runtime that runs nothing, for tests and benchmarks of the protocol.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{BoxFuture, Runtime, TaskUpdate, UpdateQueue};
use berth_api::TaskId;
use berth_api::agent::AgentTask;
use berth_api::tasks::{ContainerState, TaskStatus};

/// A test double: tasks go RUNNING at once and STOPPED when asked (exit code
/// 0), with nothing actually run. For tests and benchmarks of the protocol
/// and the control plane, never for workloads.
pub struct SimulatedRuntime {
    tasks: Mutex<HashMap<TaskId, (TaskStatus, Vec<String>)>>,
    updates: UpdateQueue,
}

impl Default for SimulatedRuntime {
    fn default() -> Self {
        Self { tasks: Mutex::new(HashMap::new()), updates: UpdateQueue::default() }
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
            essential: true,
            health_status: None,
            network_bindings: Vec::new(),
            restart_count: 0,
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
                self.updates.push(TaskUpdate {
                    observed_at: time::OffsetDateTime::now_utc(),
                    task_id: task.task_id,
                    last_status: TaskStatus::Running,
                    containers: containers(&names, &image, TaskStatus::Running, None),
                    stop_code: None,
                    reason: None,
                    health_status: None,
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
                self.updates.push(TaskUpdate {
                    observed_at: time::OffsetDateTime::now_utc(),
                    task_id: task,
                    last_status: TaskStatus::Stopped,
                    containers: containers(&names, "", TaskStatus::Stopped, Some(0)),
                    stop_code: None,
                    reason: Some("stopped by the simulated runtime".into()),
                    health_status: None,
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
        Box::pin(self.updates.next_batch(max))
    }

    fn forget(&self, task: TaskId) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Ok(mut t) = self.tasks.lock() {
                t.remove(&task);
            }
        })
    }
}
