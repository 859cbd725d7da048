-- Placement: what each host has and has given out, and the decision that put
-- each task where it is. Reserving resources is a conditional update of the
-- host row (used + need <= total - reserved, at the version that was read), so
-- concurrent placements on any number of replicas can never over-commit.

ALTER TABLE hosts ADD COLUMN cpu_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN memory_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN cpu_reserved INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN memory_reserved INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN cpu_used INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN memory_used INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN port_range_start INTEGER NOT NULL DEFAULT 32768;
ALTER TABLE hosts ADD COLUMN port_range_end INTEGER NOT NULL DEFAULT 60999;
-- Host ports taken by placed tasks (a JSON array of numbers).
ALTER TABLE hosts ADD COLUMN ports_used TEXT NOT NULL DEFAULT '[]';
ALTER TABLE hosts ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE hosts ADD COLUMN agent_version TEXT NOT NULL DEFAULT '';
ALTER TABLE hosts ADD COLUMN last_heartbeat_at TEXT;

ALTER TABLE tasks ADD COLUMN placement TEXT;
-- Waiting in PROVISIONING for capacity (RunTask with queue: true).
ALTER TABLE tasks ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;
-- The host ports the task holds, to give back when it stops.
ALTER TABLE tasks ADD COLUMN host_ports TEXT NOT NULL DEFAULT '[]';
CREATE INDEX tasks_account_host_idx ON tasks (account_id, host_id);
