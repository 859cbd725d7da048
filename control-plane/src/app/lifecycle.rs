//! The task state machine. Tasks only move forward:
//! PROVISIONING -> PENDING -> RUNNING -> STOPPING -> STOPPED, possibly
//! skipping states (a task stopped before placement goes straight to
//! STOPPED), never back.

use berth_api::tasks::TaskStatus;

/// Whether a task may move from `from` to `to`.
pub fn can_transition(from: TaskStatus, to: TaskStatus) -> bool {
    from != TaskStatus::Stopped && to > from
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    #[test]
    fn forward_moves_only() {
        assert!(can_transition(Provisioning, Pending));
        assert!(can_transition(Provisioning, Stopped));
        assert!(can_transition(Pending, Running));
        assert!(can_transition(Running, Stopping));
        assert!(can_transition(Stopping, Stopped));
        assert!(!can_transition(Running, Pending));
        assert!(!can_transition(Running, Running));
        assert!(!can_transition(Stopped, Running));
        assert!(!can_transition(Stopped, Stopped));
    }
}
