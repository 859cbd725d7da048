-- Placement counts, per host, the tasks of a family that are not STOPPED (for
-- spread, distinct_host and max_per). Without this index that count read every
-- task the cluster ever ran; with it, only the live ones.
CREATE INDEX tasks_live_by_family_idx ON tasks (account_id, cluster_id, family, host_id)
    WHERE last_status <> 'STOPPED';
