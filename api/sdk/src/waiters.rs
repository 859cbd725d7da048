//! Waiting for a resource to reach a state, by polling.

use std::time::Duration;

use berth_api::services::{Deployment, DeploymentState, Service};
use berth_api::tasks::{Task, TaskStatus};

use crate::{Client, Error};

/// How long and how often a waiter polls.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    pub timeout: Duration,
    pub interval: Duration,
}

impl Default for Wait {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(300), interval: Duration::from_secs(1) }
    }
}

impl Wait {
    pub fn timeout(timeout: Duration) -> Wait {
        Wait { timeout, ..Wait::default() }
    }
}

/// A service is stable when its primary deployment completed and every
/// desired task runs healthy, with no other deployment left.
pub fn service_is_stable(s: &Service) -> bool {
    s.deployments.len() == 1
        && s.deployments[0].primary
        && s.deployments[0].state == DeploymentState::Completed
        && s.running_count == s.desired_count
        && s.healthy_count == s.desired_count
        && s.pending_count == 0
}

impl Client {
    async fn poll<T, F, Fut>(&self, what: &str, wait: Wait, mut check: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, Error>>,
    {
        let deadline = tokio::time::Instant::now() + wait.timeout;
        loop {
            if let Some(done) = check().await? {
                return Ok(done);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout { what: what.to_owned(), seconds: wait.timeout.as_secs() });
            }
            tokio::time::sleep(wait.interval).await;
        }
    }

    /// Waits until the task is RUNNING; fails if it stops first.
    pub async fn wait_task_running(&self, cluster: &str, task: &str, wait: Wait) -> Result<Task, Error> {
        self.wait_task(cluster, task, wait, |t| t.last_status == TaskStatus::Running).await
    }

    /// Waits until the task is STOPPED.
    pub async fn wait_task_stopped(&self, cluster: &str, task: &str, wait: Wait) -> Result<Task, Error> {
        self.wait_task(cluster, task, wait, |t| t.last_status == TaskStatus::Stopped).await
    }

    /// Waits until `done` holds for the task; a task that stops before that
    /// is a [`Error::Failed`] naming its stop code and reason.
    pub async fn wait_task(
        &self,
        cluster: &str,
        task: &str,
        wait: Wait,
        done: impl Fn(&Task) -> bool,
    ) -> Result<Task, Error> {
        self.poll(&format!("task {task}"), wait, || async {
            let t = self.get_task(cluster, task).await?;
            if done(&t) {
                return Ok(Some(t));
            }
            if t.last_status == TaskStatus::Stopped {
                return Err(Error::Failed(format!(
                    "task {task} stopped: {}{}",
                    t.stop_code.map_or("", |c| c.as_str()),
                    t.stopped_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                )));
            }
            Ok(None)
        })
        .await
    }

    /// Waits until the service is stable (see [`service_is_stable`]).
    pub async fn wait_service_stable(&self, cluster: &str, service: &str, wait: Wait) -> Result<Service, Error> {
        self.poll(&format!("service {service} to be stable"), wait, || async {
            let s = self.get_service(cluster, service).await?;
            Ok(service_is_stable(&s).then_some(s))
        })
        .await
    }

    /// Waits until a deployment of the service has finished: COMPLETED is
    /// success; FAILED, ROLLED_BACK or STOPPED are [`Error::Failed`].
    pub async fn wait_deployment(
        &self,
        cluster: &str,
        service: &str,
        deployment: berth_api::DeploymentId,
        wait: Wait,
    ) -> Result<Deployment, Error> {
        self.poll(&format!("deployment {deployment}"), wait, || async {
            let page = self.list_service_deployments(cluster, service, &berth_api::Page::default()).await?;
            let Some(d) = page.deployments.into_iter().find(|d| d.id == deployment) else {
                return Err(Error::Failed(format!("service {service} has no deployment {deployment}")));
            };
            match d.state {
                DeploymentState::InProgress => Ok(None),
                DeploymentState::Completed => Ok(Some(d)),
                other => Err(Error::Failed(format!(
                    "deployment {deployment} ended {}{}",
                    other.as_str(),
                    d.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
                ))),
            }
        })
        .await
    }
}
