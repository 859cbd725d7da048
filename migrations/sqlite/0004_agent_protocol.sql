-- The agent protocol: a per-host stream of desired-state changes with a cursor,
-- the agent's acknowledged position in it, and per-task report sequence numbers
-- so stale or repeated reports change nothing.

ALTER TABLE hosts ADD COLUMN assignment_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN assignment_acked INTEGER NOT NULL DEFAULT 0;

CREATE TABLE host_assignments (
    host_id        BLOB NOT NULL REFERENCES hosts (id),
    seq            INTEGER NOT NULL,
    account_id     BLOB NOT NULL REFERENCES accounts (id),
    task_id        BLOB NOT NULL,
    desired_status TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (host_id, seq)
) STRICT;

ALTER TABLE tasks ADD COLUMN report_seq INTEGER NOT NULL DEFAULT 0;
-- What placement was asked for (strategies, constraints), so a queued task is
-- placed later under the same rules.
ALTER TABLE tasks ADD COLUMN placement_spec TEXT;
CREATE INDEX hosts_heartbeat_idx ON hosts (status, last_heartbeat_at);
