//! Health checks: the check's command run inside the container by
//! containerd's exec, on the definition's interval, timeout, retries and
//! start period, as Docker and ECS run them.

use std::time::{Duration, Instant};

use berth_api::task_definitions::HealthCheck;
use berth_api::tasks::HealthStatus;
use containerd_client::services::v1::{
    DeleteProcessRequest, ExecProcessRequest, KillRequest, StartRequest, WaitRequest,
};
use oci_spec::runtime::{Process, User};

use super::client::{Containerd, call, call_idempotent};

/// Where the check runs: the container's own environment.
pub struct ExecContext {
    pub container_id: String,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: (u32, u32),
}

/// The check's arguments: `CMD` runs as given, `CMD-SHELL` through `/bin/sh -c`.
pub fn check_args(check: &HealthCheck) -> Vec<String> {
    match check.command.first().map(String::as_str) {
        Some("CMD-SHELL") => {
            vec!["/bin/sh".into(), "-c".into(), check.command.get(1).cloned().unwrap_or_default()]
        }
        _ => check.command.iter().skip(1).cloned().collect(),
    }
}

/// Runs the check until the task drops this future, calling `report` on every change of status.
pub async fn run(ctr: Containerd, exec: ExecContext, check: HealthCheck, report: impl Fn(HealthStatus)) {
    let interval = Duration::from_secs(u64::from(check.interval.unwrap_or(30)));
    let timeout = Duration::from_secs(u64::from(check.timeout.unwrap_or(5)));
    let retries = check.retries.unwrap_or(3);
    let start_period = Duration::from_secs(u64::from(check.start_period.unwrap_or(0)));
    let started = Instant::now();
    let mut status = HealthStatus::Unknown;
    report(status);
    let mut failures = 0;
    let mut attempt: u64 = 0;
    loop {
        // The first check comes at once, so a dependency on HEALTHY is not held back a whole interval.
        if attempt > 0 {
            tokio::time::sleep(interval).await;
        }
        attempt += 1;
        let passed = run_once(&ctr, &exec, &check, timeout, attempt).await;
        let next = if passed {
            failures = 0;
            HealthStatus::Healthy
        } else if started.elapsed() < start_period {
            // Failures in the start period do not count.
            status
        } else {
            failures += 1;
            if failures >= retries { HealthStatus::Unhealthy } else { status }
        };
        if next != status {
            status = next;
            report(status);
        }
    }
}

async fn run_once(ctr: &Containerd, exec: &ExecContext, check: &HealthCheck, timeout: Duration, attempt: u64) -> bool {
    let exec_id = format!("health-{attempt}");
    let mut process = Process::default();
    process.set_args(Some(check_args(check)));
    process.set_env(Some(exec.env.clone()));
    process.set_cwd(exec.cwd.clone().into());
    let mut user = User::default();
    user.set_uid(exec.user.0);
    user.set_gid(exec.user.1);
    process.set_user(user);
    let Ok(value) = serde_json::to_vec(&process) else { return false };
    let spec = prost_types::Any { type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(), value };
    let created = call(
        "exec health check",
        ctr.tasks().exec(ctr.req(ExecProcessRequest {
            container_id: exec.container_id.clone(),
            stdin: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            terminal: false,
            spec: Some(spec),
            exec_id: exec_id.clone(),
        })),
    )
    .await;
    if let Err(e) = created {
        tracing::debug!(container = %exec.container_id, error = %e, "health check exec failed");
        return false;
    }
    // An exec that exited stays waitable until it is deleted, so waiting after the start misses nothing.
    let started = call(
        "start health check",
        ctr.tasks().start(ctr.req(StartRequest { container_id: exec.container_id.clone(), exec_id: exec_id.clone() })),
    )
    .await;
    let passed = match started {
        Ok(_) => match tokio::time::timeout(
            timeout,
            ctr.tasks()
                .wait(ctr.req(WaitRequest { container_id: exec.container_id.clone(), exec_id: exec_id.clone() })),
        )
        .await
        {
            Ok(Ok(r)) => r.into_inner().exit_status == 0,
            Ok(Err(_)) => false,
            Err(_) => {
                let _ = call_idempotent(
                    "kill health check",
                    ctr.tasks().kill(ctr.req(KillRequest {
                        container_id: exec.container_id.clone(),
                        exec_id: exec_id.clone(),
                        signal: 9,
                        all: false,
                    })),
                )
                .await;
                false
            }
        },
        Err(_) => false,
    };
    let _ = call_idempotent(
        "delete health check",
        ctr.tasks().delete_process(ctr.req(DeleteProcessRequest { container_id: exec.container_id.clone(), exec_id })),
    )
    .await;
    passed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_commands_follow_docker() {
        let shell = HealthCheck {
            command: vec!["CMD-SHELL".into(), "test -f /ok".into()],
            interval: None,
            timeout: None,
            retries: None,
            start_period: None,
        };
        assert_eq!(check_args(&shell), ["/bin/sh", "-c", "test -f /ok"]);
        let direct = HealthCheck { command: vec!["CMD".into(), "/bin/true".into()], ..shell };
        assert_eq!(check_args(&direct), ["/bin/true"]);
    }
}
