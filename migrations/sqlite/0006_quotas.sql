-- Per-account quotas and rate limits.
--
-- quota_usage holds one counter per account and quota, changed in the same
-- transaction as what it counts; enforcement locks the row, so concurrent
-- requests at the edge of a limit queue on it and exactly the limit is
-- admitted. A periodic check recomputes the counters from the rows they
-- count and repairs any drift.
CREATE TABLE quota_usage (
    account_id BLOB NOT NULL REFERENCES accounts (id),
    name       TEXT NOT NULL,
    used       INTEGER NOT NULL,
    -- For per-minute quotas: the minute (Unix seconds / 60) that `used` counts.
    window_minute INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, name)
) STRICT;

-- Limits the operator set for one account; absent means the configured default.
CREATE TABLE quota_limits (
    account_id BLOB NOT NULL REFERENCES accounts (id),
    name       TEXT NOT NULL,
    max_value  INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) STRICT;

-- Rate limits the operator set for one account and action class.
CREATE TABLE rate_limit_overrides (
    account_id BLOB NOT NULL REFERENCES accounts (id),
    class      TEXT NOT NULL,
    per_second INTEGER NOT NULL,
    burst      INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account_id, class)
) STRICT;

-- Control-plane replicas that are alive, so each takes its share of a rate limit.
CREATE TABLE replicas (
    id           BLOB PRIMARY KEY,
    started_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
) STRICT;
