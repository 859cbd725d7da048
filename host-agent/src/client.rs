//! The agent's HTTP client for the control plane's agent endpoints.

use std::time::Duration;

use berth_api::agent::{
    AckRequest, AssignmentsResponse, HeartbeatRequest, HeartbeatResponse, TaskStatusReport, TaskStatusReportResponse,
};
use berth_api::auth::{RegisterHostRequest, RegisteredHost};
use berth_api::{ErrorBody, TaskId};
use serde::de::DeserializeOwned;

use crate::state::Identity;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the control plane: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("the control plane answered {status} {code}: {message}")]
    Api { status: u16, code: String, message: String },
}

#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: String,
    host: String,
    authorization: String,
}

async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp.json().await?);
    }
    let body: Option<ErrorBody> = resp.json().await.ok();
    Err(ClientError::Api {
        status: status.as_u16(),
        code: body.as_ref().map_or_else(|| "Unknown".into(), |b| b.code.to_string()),
        message: body.map_or_else(|| status.to_string(), |b| b.message),
    })
}

/// An HTTP client fit for the protocol.
pub fn http() -> Result<reqwest::Client, ClientError> {
    // Long-polls wait up to 30 s on the server; leave room above it.
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(45)).build()?)
}

/// One client for many simulated hosts. Each host's long-poll holds a
/// connection; heartbeats and reports borrow idle ones. Keeping few idle
/// connections stops a burst of heartbeats from leaving thousands open, which
/// would take the control plane past its open-file limit.
pub fn shared_http() -> Result<reqwest::Client, ClientError> {
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(45)).pool_max_idle_per_host(256).build()?)
}

impl AgentClient {
    pub fn new(identity: &Identity) -> Result<Self, ClientError> {
        Ok(Self::with_http(identity, http()?))
    }

    pub fn with_http(identity: &Identity, http: reqwest::Client) -> Self {
        Self {
            http,
            base: identity.server.trim_end_matches('/').to_owned(),
            host: identity.host_id.to_string(),
            authorization: format!("BerthHost {}", identity.host_credential),
        }
    }

    /// Exchanges a registration token for a host identity.
    pub async fn register(
        http: &reqwest::Client,
        server: &str,
        req: &RegisterHostRequest,
    ) -> Result<RegisteredHost, ClientError> {
        let url = format!("{}/v1/agent/register", server.trim_end_matches('/'));
        decode(http.post(url).json(req).send().await?).await
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v1/agent/hosts/{}{tail}", self.base, self.host)
    }

    pub async fn heartbeat(&self, req: &HeartbeatRequest) -> Result<HeartbeatResponse, ClientError> {
        let resp = self
            .http
            .post(self.url("/heartbeat"))
            .header("authorization", &self.authorization)
            .json(req)
            .send()
            .await?;
        decode(resp).await
    }

    /// Changes after `after` (default: after the acknowledged cursor), waiting
    /// up to `wait` seconds; `ack` first acknowledges the changes up to it.
    pub async fn assignments(
        &self,
        after: Option<i64>,
        ack: Option<i64>,
        wait: u32,
    ) -> Result<AssignmentsResponse, ClientError> {
        let mut url = format!("{}?wait={wait}", self.url("/assignments"));
        if let Some(a) = after {
            url.push_str(&format!("&after={a}"));
        }
        if let Some(a) = ack {
            url.push_str(&format!("&ack={a}"));
        }
        decode(self.http.get(url).header("authorization", &self.authorization).send().await?).await
    }

    pub async fn ack(&self, req: &AckRequest) -> Result<(), ClientError> {
        let resp = self
            .http
            .post(self.url("/assignments/ack"))
            .header("authorization", &self.authorization)
            .json(req)
            .send()
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        decode::<serde_json::Value>(resp).await.map(|_| ())
    }

    /// Several reports in one request; one result per report, in order.
    pub async fn report_batch(
        &self,
        batch: &berth_api::agent::TaskStatusReportBatch,
    ) -> Result<berth_api::agent::TaskStatusReportBatchResponse, ClientError> {
        let resp = self
            .http
            .post(self.url("/tasks/status"))
            .header("authorization", &self.authorization)
            .json(batch)
            .send()
            .await?;
        decode(resp).await
    }

    pub async fn report(
        &self,
        task: TaskId,
        report: &TaskStatusReport,
    ) -> Result<TaskStatusReportResponse, ClientError> {
        let resp = self
            .http
            .post(self.url(&format!("/tasks/{task}/status")))
            .header("authorization", &self.authorization)
            .json(report)
            .send()
            .await?;
        decode(resp).await
    }
}
