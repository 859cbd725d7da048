//! A task's container logs, read from the agent of the host it ran on.
//! Logs live on hosts (written by each container's logger); the control
//! plane checks who may read them and passes the agent's answer through, so
//! any replica can serve them and the agent is never exposed to tenants.

use std::sync::OnceLock;
use std::time::Duration;

use berth_api::tasks::TaskLogsQuery;

use super::{App, AppError, AppResult, validate};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::store;

/// The longest wait for an agent to start answering.
const AGENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a follower looks again for a new host's logs endpoint.
const ENDPOINT_POLL: Duration = Duration::from_millis(100);

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder().connect_timeout(AGENT_TIMEOUT).build().unwrap_or_else(|_| reqwest::Client::new())
    })
}

impl App {
    /// The agent's response with the task's logs, ready to stream to the caller.
    pub async fn task_logs(
        &self,
        principal: &Principal,
        cluster: &str,
        task: &str,
        query: &TaskLogsQuery,
    ) -> AppResult<reqwest::Response> {
        authorize(principal, Action::ReadTask, None)?;
        if let Some(c) = &query.container {
            validate::name("container", c)?;
        }
        if let Some(t) = query.tail
            && !(1..=100_000).contains(&t)
        {
            return Err(AppError::validation("tail", "tail must be 1-100000"));
        }
        if let Some(s) = &query.since
            && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_err()
        {
            return Err(AppError::validation("since", "since must be an RFC 3339 time, like 2026-01-02T15:04:05Z"));
        }
        let scope = principal.scope();
        let mut tx = self.db().begin_read().await?;
        let row = super::tasks::resolve_task(&mut tx, scope, cluster, task).await?;
        authorize(principal, Action::ReadTask, Some(&row.cluster_name))?;
        let Some(host) = row.host_id else {
            tx.rollback().await?;
            return Err(AppError::not_found("logs of task", task));
        };
        let mut endpoint = store::hosts::logs_endpoint(&mut tx, scope, berth_api::HostId(host)).await?;
        tx.rollback().await?;
        // An agent sends its endpoint with its first heartbeat, so a task can
        // be placed on a host that just registered before the control plane
        // knows where its logs are. A follower waits for it, as the agent
        // waits for a log that does not exist yet.
        let deadline = tokio::time::Instant::now() + AGENT_TIMEOUT;
        while endpoint.is_none() && query.follow == Some(true) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(ENDPOINT_POLL).await;
            let mut tx = self.db().begin_read().await?;
            endpoint = store::hosts::logs_endpoint(&mut tx, scope, berth_api::HostId(host)).await?;
            tx.rollback().await?;
        }
        let endpoint = endpoint.ok_or_else(|| {
            AppError::HostUnreachable(format!("host {host} has no logs endpoint (its agent runs no containers)"))
        })?;
        let token = self
            .auth()
            .keyring
            .decrypt(&endpoint.token_key_id, &endpoint.token_ciphertext)
            .map_err(|e| AppError::Internal(format!("host {host} logs token: {e}")))?;
        let token = String::from_utf8(token).map_err(|e| AppError::Internal(e.to_string()))?;
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(c) = &query.container {
            params.push(("container", c.clone()));
        }
        if let Some(t) = query.tail {
            params.push(("tail", t.to_string()));
        }
        if let Some(s) = &query.since {
            params.push(("since", s.clone()));
        }
        if query.follow == Some(true) {
            params.push(("follow", "true".into()));
        }
        if query.timestamps == Some(true) {
            params.push(("timestamps", "true".into()));
        }
        let mut url = reqwest::Url::parse(&format!("{}/v1/tasks/{}/logs", endpoint.url, row.id))
            .map_err(|e| AppError::HostUnreachable(format!("host {host} sent a bad logs endpoint: {e}")))?;
        for (k, v) in &params {
            url.query_pairs_mut().append_pair(k, v);
        }
        let resp = tokio::time::timeout(AGENT_TIMEOUT, http().get(url).bearer_auth(token).send())
            .await
            .map_err(|_| AppError::HostUnreachable(format!("host {host} did not answer for the logs in time")))?
            .map_err(|e| AppError::HostUnreachable(format!("cannot reach host {host} for the logs: {e}")))?;
        match resp.status() {
            s if s.is_success() => Ok(resp),
            reqwest::StatusCode::NOT_FOUND => {
                let detail = resp.text().await.unwrap_or_default();
                Err(AppError::not_found("logs of task", format!("{task} ({})", detail.trim())))
            }
            s => Err(AppError::HostUnreachable(format!("host {host} answered {s} for the logs"))),
        }
    }
}
