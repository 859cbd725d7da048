-- Events are first written to an outbox, in the transaction of the change
-- they describe, without taking any lock. A sequencer (on any replica, one
-- at a time) then moves them to `events` with the account's next sequence
-- numbers. Before this, every writer of an account bumped the account row's
-- counter and held its lock until commit, so all of an account's writes ran
-- one at a time.
CREATE TABLE event_outbox (
    id          BIGSERIAL PRIMARY KEY,
    account_id  UUID NOT NULL REFERENCES accounts (id),
    event_type  TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    detail      JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX event_outbox_account_idx ON event_outbox (account_id);
