//! Simulated agents (a test double: the real protocol, no containers) for
//! tests of the scheduler: each can be stopped on its own, as a host that
//! dies stops heartbeating.

use std::sync::Arc;

use berth_api::hosts::Resources;
use berth_host_agent::{AgentConfig, SimulatedRuntime};
use tokio::sync::watch;

use crate::Client;

/// One simulated host's agent, running in this process.
pub struct SimAgent {
    pub host_id: String,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl SimAgent {
    /// Registers a host in `cluster` (through a fresh registration token)
    /// and runs its agent against `server`.
    pub async fn start(
        c: &Client,
        server: &str,
        cluster: &str,
        state_dir: &std::path::Path,
        name: &str,
        total: Resources,
        attributes: &[(&str, &str)],
    ) -> SimAgent {
        let token = c
            .post(&format!("/v1/clusters/{cluster}/registration-tokens"), serde_json::json!({"max_uses": 1}))
            .await
            .expect(201);
        Self::join(server, token["token"].as_str().expect("token"), state_dir, name, total, attributes).await
    }

    /// Registers with a token made elsewhere (a capacity pool's, say) and runs.
    pub async fn join(
        server: &str,
        token: &str,
        state_dir: &std::path::Path,
        name: &str,
        total: Resources,
        attributes: &[(&str, &str)],
    ) -> SimAgent {
        let config = AgentConfig {
            server: server.to_owned(),
            registration_token: token.to_owned(),
            state_dir: state_dir.join(name),
            hostname: name.to_owned(),
            total,
            reserved: Resources::default(),
            dynamic_port_range: [32768, 60999],
            attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            runtime: berth_api::auth::RuntimeDetails { name: "simulated".into(), version: "test".into() },
        };
        let identity = berth_host_agent::identify(&config).await.expect("register the simulated host");
        let host_id = identity.host_id.to_string();
        let (stop, rx) = watch::channel(false);
        let handle = tokio::spawn(async move {
            if let Err(e) = berth_host_agent::run(identity, Arc::new(SimulatedRuntime::default()), None, rx).await {
                eprintln!("simulated agent ended: {e}");
            }
        });
        SimAgent { host_id, stop, handle }
    }

    /// Stops the agent: the host stops heartbeating, as if it died.
    pub async fn kill(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}
