-- Foundation: accounts, clusters, task definitions, tasks, the event log and
-- idempotency records. Every tenant-owned table carries account_id and every
-- lookup index starts with it, because every query is scoped to one account.

CREATE TABLE accounts (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL,
    -- Last sequence number handed out in this account's event log. Bumped in
    -- the same transaction as the change it describes, so the row lock makes
    -- commit order equal sequence order within an account.
    event_seq     BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    version       BIGINT NOT NULL
);

CREATE TABLE clusters (
    id            UUID PRIMARY KEY,
    account_id    UUID NOT NULL REFERENCES accounts (id),
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    tags          JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    version       BIGINT NOT NULL,
    CONSTRAINT clusters_account_name_key UNIQUE (account_id, name)
);
CREATE INDEX clusters_account_id_idx ON clusters (account_id, id);

CREATE TABLE task_definition_families (
    account_id      UUID NOT NULL REFERENCES accounts (id),
    name            TEXT NOT NULL,
    latest_revision BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, name)
);

CREATE TABLE task_definitions (
    id              UUID PRIMARY KEY,
    account_id      UUID NOT NULL REFERENCES accounts (id),
    family          TEXT NOT NULL,
    revision        BIGINT NOT NULL,
    status          TEXT NOT NULL,
    -- The whole registered definition (containers, network mode, ...): it is
    -- immutable, so it is stored as written and only the columns that are
    -- searched on are broken out.
    definition      JSONB NOT NULL,
    cpu             BIGINT,
    memory          BIGINT,
    tags            JSONB NOT NULL,
    registered_at   TIMESTAMPTZ NOT NULL,
    deregistered_at TIMESTAMPTZ,
    version         BIGINT NOT NULL,
    CONSTRAINT task_definitions_family_revision_key UNIQUE (account_id, family, revision),
    FOREIGN KEY (account_id, family) REFERENCES task_definition_families (account_id, name)
);

CREATE TABLE tasks (
    id                  UUID PRIMARY KEY,
    account_id          UUID NOT NULL REFERENCES accounts (id),
    cluster_id          UUID NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    task_definition_id  UUID NOT NULL,
    family              TEXT NOT NULL,
    revision            BIGINT NOT NULL,
    desired_status      TEXT NOT NULL,
    last_status         TEXT NOT NULL,
    host_id             UUID,
    started_by          TEXT,
    overrides           JSONB NOT NULL,
    -- Per-container name, image, status, exit code and reason.
    containers          JSONB NOT NULL,
    cpu                 BIGINT NOT NULL,
    memory              BIGINT NOT NULL,
    stop_code           TEXT,
    stopped_reason      TEXT,
    tags                JSONB NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    pending_at          TIMESTAMPTZ,
    running_at          TIMESTAMPTZ,
    stopping_at         TIMESTAMPTZ,
    stopped_at          TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL,
    version             BIGINT NOT NULL
);
CREATE INDEX tasks_account_cluster_idx ON tasks (account_id, cluster_id, id);
CREATE INDEX tasks_account_cluster_status_idx ON tasks (account_id, cluster_id, last_status);
CREATE INDEX tasks_task_definition_idx ON tasks (account_id, task_definition_id);

CREATE TABLE events (
    account_id    UUID NOT NULL REFERENCES accounts (id),
    sequence      BIGINT NOT NULL,
    event_type    TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    detail        JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, sequence)
);

CREATE TABLE idempotency_records (
    account_id      UUID NOT NULL REFERENCES accounts (id),
    idempotency_key TEXT NOT NULL,
    -- sha256 over the operation (method and path) and the request body, so a
    -- reused key with another request is refused instead of replayed.
    request_hash    TEXT NOT NULL,
    response_status BIGINT NOT NULL,
    response_body   JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, idempotency_key)
);
CREATE INDEX idempotency_records_created_idx ON idempotency_records (created_at);
