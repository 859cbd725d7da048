-- Services and their deployments. A service is reconciled by one replica at a
-- time: the one holding its lease (lease_owner until lease_expires_at), which
-- every reconciling transaction re-checks under the row's lock.
CREATE TABLE services (
    id                                BLOB PRIMARY KEY,
    account_id                        BLOB NOT NULL REFERENCES accounts (id),
    cluster_id                        BLOB NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    name                              TEXT NOT NULL,
    status                            TEXT NOT NULL,
    scheduling_strategy               TEXT NOT NULL,
    task_definition_id                BLOB NOT NULL,
    family                            TEXT NOT NULL,
    revision                          INTEGER NOT NULL,
    desired_count                     INTEGER NOT NULL,
    placement_spec                    TEXT NOT NULL,
    deployment_configuration          TEXT NOT NULL,
    health_check_grace_period_seconds INTEGER NOT NULL,
    tags                              TEXT NOT NULL,
    primary_deployment_id             BLOB NOT NULL,
    -- Task failures since the service was last steady, and when the next
    -- launch may happen (exponential backoff against crash loops).
    failure_streak                    INTEGER NOT NULL DEFAULT 0,
    next_launch_at                    TEXT,
    -- The scheduler's latest messages (newest first, bounded).
    recent_events                     TEXT NOT NULL,
    lease_owner                       BLOB,
    lease_expires_at                  TEXT,
    created_at                        TEXT NOT NULL,
    updated_at                        TEXT NOT NULL,
    version                           INTEGER NOT NULL
) STRICT;
-- A name is taken while the service is not INACTIVE.
CREATE UNIQUE INDEX services_live_name_key ON services (account_id, cluster_id, name) WHERE status <> 'INACTIVE';
CREATE INDEX services_account_cluster_idx ON services (account_id, cluster_id, id);
CREATE INDEX services_live_idx ON services (lease_expires_at) WHERE status <> 'INACTIVE';

CREATE TABLE deployments (
    id                 BLOB PRIMARY KEY,
    account_id         BLOB NOT NULL REFERENCES accounts (id),
    service_id         BLOB NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    task_definition_id BLOB NOT NULL,
    family             TEXT NOT NULL,
    revision           INTEGER NOT NULL,
    state              TEXT NOT NULL,
    failed_tasks       INTEGER NOT NULL DEFAULT 0,
    failure_threshold  INTEGER NOT NULL,
    cause              TEXT NOT NULL,
    reason             TEXT,
    rollback_of        BLOB,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    finished_at        TEXT
) STRICT;
CREATE INDEX deployments_service_idx ON deployments (account_id, service_id, id);

-- Which service and deployment started a task. `service_counted` marks a
-- stopped service task whose stop the scheduler has accounted for (failure
-- counts, backoff), so each stop is counted exactly once.
ALTER TABLE tasks ADD COLUMN service_id BLOB;
ALTER TABLE tasks ADD COLUMN deployment_id BLOB;
ALTER TABLE tasks ADD COLUMN service_counted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_service_pending_idx ON tasks (service_id, id)
    WHERE service_id IS NOT NULL AND (last_status <> 'STOPPED' OR NOT service_counted);
