//! The agent's state dir: its identity survives restarts.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use berth_api::{ClusterId, HostId};
use serde::{Deserialize, Serialize};

/// Who this host is to the control plane. The credential is a secret: the
/// file is readable by its owner only.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Identity {
    pub server: String,
    pub host_id: HostId,
    pub cluster_id: ClusterId,
    pub host_credential: String,
}

pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn new(path: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(path)?;
        Ok(Self { path: path.to_owned() })
    }

    fn identity_path(&self) -> PathBuf {
        self.path.join("identity.json")
    }

    pub fn load_identity(&self) -> Result<Option<Identity>, crate::AgentError> {
        match std::fs::read(self.identity_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| crate::AgentError::StateFormat(format!("identity.json is unreadable: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Written to a temporary file and renamed, so a crash leaves the old identity or the new one.
    pub fn save_identity(&self, identity: &Identity) -> std::io::Result<()> {
        let tmp = self.path.join("identity.json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(identity).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.identity_path())
    }
}
