-- Managed capacity (the ACI / Fargate model). A capacity pool is a cluster of
-- the operator's account with a pool priority (lowest first); its hosts are
-- `shared`: they run MANAGED tasks of every account, which is why a tenant's
-- scope reaches a shared host's resources and assignment stream, and never
-- its listing.
ALTER TABLE clusters ADD COLUMN pool_priority BIGINT;
ALTER TABLE hosts ADD COLUMN shared BOOLEAN NOT NULL DEFAULT false;

ALTER TABLE tasks ADD COLUMN launch_type TEXT NOT NULL DEFAULT 'EXTERNAL';
-- What a MANAGED task asked for, before rounding up to an allowed size.
ALTER TABLE tasks ADD COLUMN requested_cpu BIGINT;
ALTER TABLE tasks ADD COLUMN requested_memory BIGINT;
CREATE INDEX tasks_managed_queue_idx ON tasks (account_id, id)
    WHERE queued AND launch_type = 'MANAGED';
-- The live tasks on a host, for the agent's views of a shared host (its
-- tasks belong to many accounts).
CREATE INDEX tasks_host_live_idx ON tasks (host_id) WHERE last_status <> 'STOPPED';

ALTER TABLE services ADD COLUMN launch_type TEXT NOT NULL DEFAULT 'EXTERNAL';

-- One row per MANAGED task that ran: what a bill is built on. Written when
-- the agent reports the task RUNNING and closed when it stops, in the same
-- transaction; kept past the task's own retention, and not tied to its
-- cluster, which may be deleted.
CREATE TABLE managed_usage (
    task_id         UUID PRIMARY KEY,
    account_id      UUID NOT NULL REFERENCES accounts (id),
    cluster_name    TEXT NOT NULL,
    task_definition TEXT NOT NULL,
    cpu             BIGINT NOT NULL,
    memory          BIGINT NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    stopped_at      TIMESTAMPTZ
);
CREATE INDEX managed_usage_account_idx ON managed_usage (account_id, started_at);
CREATE INDEX managed_usage_started_idx ON managed_usage (started_at);
