//! Crash points for recovery tests: with `BERTH_AGENT_FAILPOINT=<name>` in
//! its environment, the agent aborts on the spot when it reaches that point,
//! as a SIGKILL would stop it there. Unset (always, outside tests), a check
//! costs one load of a cached value.

use std::sync::OnceLock;

pub const ENV: &str = "BERTH_AGENT_FAILPOINT";

/// After the first blob of an image pull is written, before the rest.
pub const MID_PULL: &str = "mid-pull";
/// After a container is created in containerd, before its task is started.
pub const MID_START: &str = "mid-start";

pub fn hit(name: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    if ARMED.get_or_init(|| std::env::var(ENV).ok()).as_deref() == Some(name) {
        eprintln!("berth agent: failpoint {name} reached; aborting");
        std::process::abort();
    }
}
