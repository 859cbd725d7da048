-- Services and their deployments. A service is reconciled by one replica at a
-- time: the one holding its lease (lease_owner until lease_expires_at), which
-- every reconciling transaction re-checks under the row's lock.
CREATE TABLE services (
    id                                UUID PRIMARY KEY,
    account_id                        UUID NOT NULL REFERENCES accounts (id),
    cluster_id                        UUID NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    name                              TEXT NOT NULL,
    status                            TEXT NOT NULL,
    scheduling_strategy               TEXT NOT NULL,
    task_definition_id                UUID NOT NULL,
    family                            TEXT NOT NULL,
    revision                          BIGINT NOT NULL,
    desired_count                     BIGINT NOT NULL,
    placement_spec                    JSONB NOT NULL,
    deployment_configuration          JSONB NOT NULL,
    health_check_grace_period_seconds BIGINT NOT NULL,
    tags                              JSONB NOT NULL,
    primary_deployment_id             UUID NOT NULL,
    -- Task failures since the service was last steady, and when the next
    -- launch may happen (exponential backoff against crash loops).
    failure_streak                    BIGINT NOT NULL DEFAULT 0,
    next_launch_at                    TIMESTAMPTZ,
    -- The scheduler's latest messages (newest first, bounded).
    recent_events                     JSONB NOT NULL,
    lease_owner                       UUID,
    lease_expires_at                  TIMESTAMPTZ,
    created_at                        TIMESTAMPTZ NOT NULL,
    updated_at                        TIMESTAMPTZ NOT NULL,
    version                           BIGINT NOT NULL
);
-- A name is taken while the service is not INACTIVE.
CREATE UNIQUE INDEX services_live_name_key ON services (account_id, cluster_id, name) WHERE status <> 'INACTIVE';
CREATE INDEX services_account_cluster_idx ON services (account_id, cluster_id, id);
CREATE INDEX services_live_idx ON services (lease_expires_at) WHERE status <> 'INACTIVE';

CREATE TABLE deployments (
    id                 UUID PRIMARY KEY,
    account_id         UUID NOT NULL REFERENCES accounts (id),
    service_id         UUID NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    task_definition_id UUID NOT NULL,
    family             TEXT NOT NULL,
    revision           BIGINT NOT NULL,
    state              TEXT NOT NULL,
    failed_tasks       BIGINT NOT NULL DEFAULT 0,
    failure_threshold  BIGINT NOT NULL,
    cause              TEXT NOT NULL,
    reason             TEXT,
    rollback_of        UUID,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    finished_at        TIMESTAMPTZ
);
CREATE INDEX deployments_service_idx ON deployments (account_id, service_id, id);

-- Which service and deployment started a task. `service_counted` marks a
-- stopped service task whose stop the scheduler has accounted for (failure
-- counts, backoff), so each stop is counted exactly once.
ALTER TABLE tasks ADD COLUMN service_id UUID;
ALTER TABLE tasks ADD COLUMN deployment_id UUID;
ALTER TABLE tasks ADD COLUMN service_counted BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX tasks_service_pending_idx ON tasks (service_id, id)
    WHERE service_id IS NOT NULL AND (last_status <> 'STOPPED' OR NOT service_counted);
