//! What a service's scheduler should do next: a pure function from the
//! service's settings and its tasks' observed state to a plan (tasks to
//! start, tasks to stop and why). No I/O and no clock: the caller passes
//! `now`, so every rule here is tested directly.
//!
//! The rules, as ECS's service scheduler applies them:
//! - Tasks count while they are meant to run (desired RUNNING) and not STOPPED.
//!   At most `maximum_percent` of the desired count may count at once
//!   (rounded down), and at least `minimum_healthy_percent` (rounded up) must
//!   stay healthy while old tasks are replaced.
//! - A task is healthy when it is RUNNING and its essential containers'
//!   health checks pass, or, without health checks, after RUNNING for
//!   `min_healthy_time`.
//! - Keepers are the primary deployment's tasks on hosts that are not
//!   draining; every other counted task is retired once enough keepers are
//!   healthy. A task that fails its health checks after the grace period is
//!   stopped at once.

use std::time::Duration;

use berth_api::tasks::{HealthStatus, StopCode, TaskStatus};
use berth_api::{DeploymentId, HostId, TaskId};
use time::OffsetDateTime;

/// The service's settings, with defaults filled in.
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    pub desired: u32,
    pub minimum_healthy_percent: u32,
    pub maximum_percent: u32,
    pub min_healthy_time: Duration,
    pub grace: Duration,
    pub primary: DeploymentId,
    /// False while the restart backoff holds launches back.
    pub launch_allowed: bool,
}

/// What the scheduler knows of one task.
#[derive(Clone, Debug)]
pub struct TaskFacts {
    pub id: TaskId,
    pub deployment: Option<DeploymentId>,
    pub status: TaskStatus,
    pub desired_running: bool,
    pub host: Option<HostId>,
    /// Its host is draining: replace the task elsewhere.
    pub host_draining: bool,
    pub running_at: Option<OffsetDateTime>,
    pub health: Option<HealthStatus>,
    pub created_at: OffsetDateTime,
}

impl TaskFacts {
    /// Meant to run and not stopped: it counts against `maximum_percent`.
    pub fn counts(&self) -> bool {
        self.desired_running && self.status != TaskStatus::Stopped
    }

    pub fn healthy(&self, now: OffsetDateTime, min_healthy_time: Duration) -> bool {
        if !self.counts() || self.status != TaskStatus::Running {
            return false;
        }
        match self.health {
            Some(h) => h == HealthStatus::Healthy,
            None => self.running_at.is_some_and(|r| elapsed(r, now) >= min_healthy_time),
        }
    }

    fn failing_health_checks(&self, now: OffsetDateTime, grace: Duration) -> bool {
        self.counts()
            && self.status == TaskStatus::Running
            && self.health == Some(HealthStatus::Unhealthy)
            && self.running_at.is_some_and(|r| elapsed(r, now) >= grace)
    }
}

fn elapsed(since: OffsetDateTime, now: OffsetDateTime) -> Duration {
    Duration::try_from(now - since).unwrap_or(Duration::ZERO)
}

/// Why the scheduler stops a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopWhy {
    FailedHealthChecks,
    ScaleDown,
    /// Replaced by the primary deployment's tasks.
    Replaced,
    HostDrained,
    /// A daemon task on a host that is no longer eligible.
    HostIneligible,
}

impl StopWhy {
    pub fn stop_code(self) -> StopCode {
        match self {
            StopWhy::HostDrained => StopCode::HostDrained,
            _ => StopCode::ServiceSchedulerInitiated,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            StopWhy::FailedHealthChecks => "Task failed container health checks",
            StopWhy::ScaleDown => "Scaling down: more tasks ran than desired",
            StopWhy::Replaced => "Replaced by a task of the service's current deployment",
            StopWhy::HostDrained => "The host is draining; a replacement runs elsewhere",
            StopWhy::HostIneligible => "The host no longer matches the daemon service's constraints",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Replica services: how many primary tasks to place, anywhere.
    pub start: u32,
    /// Daemon services: the hosts to start a primary task on.
    pub start_on: Vec<HostId>,
    pub stops: Vec<(TaskId, StopWhy)>,
    /// Every desired task is a healthy keeper and nothing else runs.
    pub steady: bool,
}

/// At most this many tasks may count at once.
pub fn maximum_tasks(desired: u32, maximum_percent: u32) -> u32 {
    let max = (u64::from(desired) * u64::from(maximum_percent) / 100) as u32;
    max.max(desired)
}

/// At least this many tasks must stay healthy while tasks are replaced. When
/// both bounds leave no room at all (100% and 100%, or a rounding that
/// amounts to it), one task at a time may be replaced, else a deployment
/// could never progress.
pub fn minimum_healthy(desired: u32, minimum_percent: u32, maximum_percent: u32) -> u32 {
    let min = (u64::from(desired) * u64::from(minimum_percent)).div_ceil(100) as u32;
    let min = min.min(desired);
    if min == desired && maximum_tasks(desired, maximum_percent) == desired { desired.saturating_sub(1) } else { min }
}

/// The plan for a replica service.
pub fn plan_replica(spec: &ServiceSpec, tasks: &[TaskFacts], now: OffsetDateTime) -> Plan {
    let mut plan = Plan::default();
    let healthy = |t: &TaskFacts| t.healthy(now, spec.min_healthy_time);
    let mut live: Vec<&TaskFacts> = tasks.iter().filter(|t| t.counts()).collect();

    // Failing health checks past the grace period: replaced whatever the bounds,
    // as a crashed container would be.
    live.retain(|t| {
        let failing = t.failing_health_checks(now, spec.grace);
        if failing {
            plan.stops.push((t.id, StopWhy::FailedHealthChecks));
        }
        !failing
    });

    let (mut keepers, mut retirees): (Vec<&TaskFacts>, Vec<&TaskFacts>) =
        live.iter().partition(|t| t.deployment == Some(spec.primary) && !t.host_draining);

    // Too many keepers: stop those that help least first (not healthy, not
    // yet running), newest first.
    if keepers.len() > spec.desired as usize {
        keepers.sort_by_key(|t| (healthy(t), t.status == TaskStatus::Running, std::cmp::Reverse(t.created_at)));
        let excess = keepers.len() - spec.desired as usize;
        for t in keepers.drain(..excess) {
            plan.stops.push((t.id, StopWhy::ScaleDown));
        }
    }

    let counted = (keepers.len() + retirees.len()) as u32;
    let missing = spec.desired.saturating_sub(keepers.len() as u32);
    let room = maximum_tasks(spec.desired, spec.maximum_percent).saturating_sub(counted);
    if spec.launch_allowed {
        plan.start = missing.min(room);
    }

    // Retire old tasks while enough stay healthy. Those not healthy cost
    // nothing to stop; draining hosts' tasks and the oldest go first.
    let floor = minimum_healthy(spec.desired, spec.minimum_healthy_percent, spec.maximum_percent);
    let healthy_now = keepers.iter().chain(&retirees).filter(|t| healthy(t)).count() as u32;
    let mut budget = healthy_now.saturating_sub(floor);
    retirees.sort_by_key(|t| (healthy(t), !t.host_draining, t.created_at));
    for t in &retirees {
        let why = if t.host_draining { StopWhy::HostDrained } else { StopWhy::Replaced };
        if !healthy(t) {
            plan.stops.push((t.id, why));
        } else if budget > 0 {
            budget -= 1;
            plan.stops.push((t.id, why));
        }
    }
    plan.steady = plan.stops.is_empty()
        && plan.start == 0
        && retirees.is_empty()
        && keepers.len() == spec.desired as usize
        && keepers.iter().all(|t| healthy(t));
    plan
}

/// A host as a daemon service sees it.
#[derive(Clone, Debug)]
pub struct DaemonHost {
    pub id: HostId,
    /// ACTIVE (or only briefly disconnected) and matching the service's constraints.
    pub eligible: bool,
    pub draining: bool,
}

/// The plan for a daemon service: one primary task on every eligible host.
/// `spec.desired` is the number of eligible hosts.
pub fn plan_daemon(spec: &ServiceSpec, hosts: &[DaemonHost], tasks: &[TaskFacts], now: OffsetDateTime) -> Plan {
    let mut plan = Plan::default();
    let healthy = |t: &TaskFacts| t.healthy(now, spec.min_healthy_time);
    let mut live: Vec<&TaskFacts> = tasks.iter().filter(|t| t.counts()).collect();
    live.retain(|t| {
        let failing = t.failing_health_checks(now, spec.grace);
        if failing {
            plan.stops.push((t.id, StopWhy::FailedHealthChecks));
        }
        !failing
    });
    let floor = minimum_healthy(spec.desired, spec.minimum_healthy_percent, spec.maximum_percent);
    let healthy_now = live.iter().filter(|t| healthy(t)).count() as u32;
    let mut budget = healthy_now.saturating_sub(floor);
    let mut steady = plan.stops.is_empty();

    for t in &live {
        let host = t.host.and_then(|h| hosts.iter().find(|x| x.id == h));
        match host {
            Some(h) if h.draining => plan.stops.push((t.id, StopWhy::HostDrained)),
            Some(h) if !h.eligible => plan.stops.push((t.id, StopWhy::HostIneligible)),
            // Not placed (or its host deregistered): it has no place in a daemon service.
            None => plan.stops.push((t.id, StopWhy::HostIneligible)),
            Some(_) => continue,
        }
        steady = false;
    }
    for h in hosts.iter().filter(|h| h.eligible && !h.draining) {
        let mut on_host: Vec<&&TaskFacts> = live.iter().filter(|t| t.host == Some(h.id)).collect();
        // The primary's tasks first, healthy and older first: the first is the one to keep.
        on_host.sort_by_key(|t| (t.deployment != Some(spec.primary), !healthy(t), t.created_at));
        match on_host.split_first() {
            None => {
                steady = false;
                if spec.launch_allowed {
                    plan.start_on.push(h.id);
                }
            }
            Some((first, rest)) => {
                for t in rest {
                    plan.stops.push((t.id, StopWhy::ScaleDown));
                    steady = false;
                }
                if first.deployment != Some(spec.primary) {
                    // The old task goes first (a host runs one), within the healthy floor.
                    steady = false;
                    if !healthy(first) {
                        plan.stops.push((first.id, StopWhy::Replaced));
                    } else if budget > 0 {
                        budget -= 1;
                        plan.stops.push((first.id, StopWhy::Replaced));
                    }
                } else if !healthy(first) {
                    steady = false;
                }
            }
        }
    }
    plan.steady = steady && plan.stops.is_empty() && plan.start_on.is_empty();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
    }

    fn spec(desired: u32, min: u32, max: u32, primary: DeploymentId) -> ServiceSpec {
        ServiceSpec {
            desired,
            minimum_healthy_percent: min,
            maximum_percent: max,
            min_healthy_time: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            primary,
            launch_allowed: true,
        }
    }

    fn running(deployment: DeploymentId, age_s: i64) -> TaskFacts {
        TaskFacts {
            id: TaskId::generate(),
            deployment: Some(deployment),
            status: TaskStatus::Running,
            desired_running: true,
            host: Some(HostId::generate()),
            host_draining: false,
            running_at: Some(t0() - time::Duration::seconds(age_s)),
            health: None,
            created_at: t0() - time::Duration::seconds(age_s + 1),
        }
    }

    #[test]
    fn bounds_round_like_ecs() {
        assert_eq!(maximum_tasks(4, 150), 6);
        assert_eq!(maximum_tasks(3, 150), 4);
        assert_eq!(maximum_tasks(1, 150), 1);
        assert_eq!(minimum_healthy(4, 50, 150), 2);
        assert_eq!(minimum_healthy(3, 50, 200), 2);
        // 100/100 would deadlock a rollout: one at a time instead.
        assert_eq!(minimum_healthy(4, 100, 100), 3);
        assert_eq!(minimum_healthy(1, 100, 150), 0);
    }

    #[test]
    fn scale_up_from_nothing_starts_the_desired_count() {
        let d = DeploymentId::generate();
        let plan = plan_replica(&spec(3, 100, 200, d), &[], t0());
        assert_eq!(plan.start, 3);
        assert!(plan.stops.is_empty());
        assert!(!plan.steady);
    }

    #[test]
    fn backoff_holds_launches() {
        let d = DeploymentId::generate();
        let mut s = spec(3, 100, 200, d);
        s.launch_allowed = false;
        assert_eq!(plan_replica(&s, &[], t0()).start, 0);
    }

    #[test]
    fn healthy_keepers_at_the_desired_count_are_steady() {
        let d = DeploymentId::generate();
        let tasks = vec![running(d, 60), running(d, 60)];
        let plan = plan_replica(&spec(2, 100, 200, d), &tasks, t0());
        assert_eq!(plan, Plan { steady: true, ..Plan::default() });
        // Not yet healthy (RUNNING for less than min_healthy_time): not steady.
        let young = vec![running(d, 60), running(d, 2)];
        assert!(!plan_replica(&spec(2, 100, 200, d), &young, t0()).steady);
    }

    #[test]
    fn scale_down_stops_the_least_useful_first() {
        let d = DeploymentId::generate();
        let mut pending = running(d, 0);
        pending.status = TaskStatus::Pending;
        pending.running_at = None;
        let old = running(d, 100);
        let newer = running(d, 50);
        let tasks = vec![old.clone(), newer.clone(), pending.clone()];
        let plan = plan_replica(&spec(1, 100, 200, d), &tasks, t0());
        assert_eq!(plan.start, 0);
        assert_eq!(plan.stops, vec![(pending.id, StopWhy::ScaleDown), (newer.id, StopWhy::ScaleDown)]);
    }

    #[test]
    fn a_rollout_stays_within_both_bounds() {
        let old = DeploymentId::generate();
        let new = DeploymentId::generate();
        let s = spec(4, 50, 150, new);
        let tasks: Vec<TaskFacts> = (0..4).map(|_| running(old, 100)).collect();
        // Room for two more, and two old ones may go while two stay healthy.
        let plan = plan_replica(&s, &tasks, t0());
        assert_eq!(plan.start, 2);
        assert_eq!(plan.stops.len(), 2);
        assert!(plan.stops.iter().all(|(_, w)| *w == StopWhy::Replaced));
    }

    #[test]
    fn old_tasks_wait_until_new_ones_are_healthy_at_100_percent() {
        let old = DeploymentId::generate();
        let new = DeploymentId::generate();
        let s = spec(2, 100, 200, new);
        let mut tasks: Vec<TaskFacts> = (0..2).map(|_| running(old, 100)).collect();
        let plan = plan_replica(&s, &tasks, t0());
        assert_eq!((plan.start, plan.stops.len()), (2, 0));
        // The new ones are RUNNING but not yet healthy: still nothing stops.
        tasks.extend((0..2).map(|_| running(new, 1)));
        let plan = plan_replica(&s, &tasks, t0());
        assert_eq!((plan.start, plan.stops.len()), (0, 0));
        // Healthy: both old ones go.
        for t in tasks.iter_mut().filter(|t| t.deployment == Some(new)) {
            t.running_at = Some(t0() - time::Duration::seconds(30));
        }
        let plan = plan_replica(&s, &tasks, t0());
        assert_eq!((plan.start, plan.stops.len()), (0, 2));
    }

    #[test]
    fn drained_tasks_are_replaced_before_they_stop() {
        let d = DeploymentId::generate();
        let s = spec(2, 100, 200, d);
        let mut tasks = vec![running(d, 100), running(d, 100)];
        tasks[0].host_draining = true;
        let plan = plan_replica(&s, &tasks, t0());
        assert_eq!(plan.start, 1);
        assert!(plan.stops.is_empty(), "the drained task stays until its replacement is healthy");
        let mut replacement = running(d, 30);
        replacement.host = Some(HostId::generate());
        tasks.push(replacement);
        let plan = plan_replica(&s, &tasks, t0());
        assert_eq!(plan.start, 0);
        assert_eq!(plan.stops, vec![(tasks[0].id, StopWhy::HostDrained)]);
    }

    #[test]
    fn failing_health_checks_stop_a_task_after_the_grace_period() {
        let d = DeploymentId::generate();
        let s = spec(1, 100, 200, d);
        let mut t = running(d, 10);
        t.health = Some(HealthStatus::Unhealthy);
        assert!(plan_replica(&s, std::slice::from_ref(&t), t0()).stops.is_empty(), "within the grace period");
        t.running_at = Some(t0() - time::Duration::seconds(60));
        let plan = plan_replica(&s, std::slice::from_ref(&t), t0());
        assert_eq!(plan.stops, vec![(t.id, StopWhy::FailedHealthChecks)]);
        assert_eq!(plan.start, 1);
    }

    #[test]
    fn stopped_and_stopping_tasks_do_not_count() {
        let d = DeploymentId::generate();
        let mut stopping = running(d, 100);
        stopping.desired_running = false;
        stopping.status = TaskStatus::Stopping;
        let mut stopped = running(d, 100);
        stopped.status = TaskStatus::Stopped;
        let plan = plan_replica(&spec(1, 100, 200, d), &[stopping, stopped], t0());
        assert_eq!(plan.start, 1);
    }

    #[test]
    fn a_daemon_fills_eligible_hosts_and_leaves_others() {
        let d = DeploymentId::generate();
        let hosts = vec![
            DaemonHost { id: HostId::generate(), eligible: true, draining: false },
            DaemonHost { id: HostId::generate(), eligible: true, draining: false },
            DaemonHost { id: HostId::generate(), eligible: false, draining: false },
            DaemonHost { id: HostId::generate(), eligible: false, draining: true },
        ];
        let mut on_first = running(d, 100);
        on_first.host = Some(hosts[0].id);
        let mut on_drained = running(d, 100);
        on_drained.host = Some(hosts[3].id);
        let plan = plan_daemon(&spec(2, 0, 100, d), &hosts, &[on_first, on_drained.clone()], t0());
        assert_eq!(plan.start_on, vec![hosts[1].id]);
        assert_eq!(plan.stops, vec![(on_drained.id, StopWhy::HostDrained)]);
        assert!(!plan.steady);
    }

    #[test]
    fn a_daemon_rollout_replaces_within_the_floor() {
        let old = DeploymentId::generate();
        let new = DeploymentId::generate();
        let hosts: Vec<DaemonHost> =
            (0..3).map(|_| DaemonHost { id: HostId::generate(), eligible: true, draining: false }).collect();
        let tasks: Vec<TaskFacts> = hosts
            .iter()
            .map(|h| {
                let mut t = running(old, 100);
                t.host = Some(h.id);
                t
            })
            .collect();
        // Floor of 2 out of 3 healthy: one host at a time.
        let plan = plan_daemon(&spec(3, 60, 100, new), &hosts, &tasks, t0());
        assert_eq!(plan.stops.len(), 1);
        assert!(plan.start_on.is_empty(), "a host's old task goes before its new one starts");
    }
}
