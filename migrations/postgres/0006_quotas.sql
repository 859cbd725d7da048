-- Per-account quotas and rate limits.
--
-- quota_usage holds one counter per account and quota, changed in the same
-- transaction as what it counts; enforcement locks the row, so concurrent
-- requests at the edge of a limit queue on it and exactly the limit is
-- admitted. A periodic check recomputes the counters from the rows they
-- count and repairs any drift.
CREATE TABLE quota_usage (
    account_id UUID NOT NULL REFERENCES accounts (id),
    name       TEXT NOT NULL,
    used       BIGINT NOT NULL,
    -- For per-minute quotas: the minute (Unix seconds / 60) that `used` counts.
    window_minute BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, name)
);

-- Limits the operator set for one account; absent means the configured default.
CREATE TABLE quota_limits (
    account_id UUID NOT NULL REFERENCES accounts (id),
    name       TEXT NOT NULL,
    max_value  BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, name)
);

-- Rate limits the operator set for one account and action class.
CREATE TABLE rate_limit_overrides (
    account_id UUID NOT NULL REFERENCES accounts (id),
    class      TEXT NOT NULL,
    per_second BIGINT NOT NULL,
    burst      BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, class)
);

-- Control-plane replicas that are alive, so each takes its share of a rate limit.
CREATE TABLE replicas (
    id           UUID PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL
);
