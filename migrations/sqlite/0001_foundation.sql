-- Foundation: accounts, clusters, task definitions, tasks, the event log and
-- idempotency records. Every tenant-owned table carries account_id and every
-- lookup index starts with it, because every query is scoped to one account.

CREATE TABLE accounts (
    id            BLOB PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL,
    -- Last sequence number handed out in this account's event log. Bumped in
    -- the same transaction as the change it describes, so the row lock makes
    -- commit order equal sequence order within an account.
    event_seq     INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    version       INTEGER NOT NULL
) STRICT;

CREATE TABLE clusters (
    id            BLOB PRIMARY KEY,
    account_id    BLOB NOT NULL REFERENCES accounts (id),
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    tags          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    version       INTEGER NOT NULL,
    CONSTRAINT clusters_account_name_key UNIQUE (account_id, name)
) STRICT;
CREATE INDEX clusters_account_id_idx ON clusters (account_id, id);

CREATE TABLE task_definition_families (
    account_id      BLOB NOT NULL REFERENCES accounts (id),
    name            TEXT NOT NULL,
    latest_revision INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) STRICT;

CREATE TABLE task_definitions (
    id              BLOB PRIMARY KEY,
    account_id      BLOB NOT NULL REFERENCES accounts (id),
    family          TEXT NOT NULL,
    revision        INTEGER NOT NULL,
    status          TEXT NOT NULL,
    -- The whole registered definition (containers, network mode, ...): it is
    -- immutable, so it is stored as written and only the columns that are
    -- searched on are broken out.
    definition      TEXT NOT NULL,
    cpu             INTEGER,
    memory          INTEGER,
    tags            TEXT NOT NULL,
    registered_at   TEXT NOT NULL,
    deregistered_at TEXT,
    version         INTEGER NOT NULL,
    CONSTRAINT task_definitions_family_revision_key UNIQUE (account_id, family, revision),
    FOREIGN KEY (account_id, family) REFERENCES task_definition_families (account_id, name)
) STRICT;

CREATE TABLE tasks (
    id                  BLOB PRIMARY KEY,
    account_id          BLOB NOT NULL REFERENCES accounts (id),
    cluster_id          BLOB NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    task_definition_id  BLOB NOT NULL,
    family              TEXT NOT NULL,
    revision            INTEGER NOT NULL,
    desired_status      TEXT NOT NULL,
    last_status         TEXT NOT NULL,
    host_id             BLOB,
    started_by          TEXT,
    overrides           TEXT NOT NULL,
    -- Per-container name, image, status, exit code and reason.
    containers          TEXT NOT NULL,
    cpu                 INTEGER NOT NULL,
    memory              INTEGER NOT NULL,
    stop_code           TEXT,
    stopped_reason      TEXT,
    tags                TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    pending_at          TEXT,
    running_at          TEXT,
    stopping_at         TEXT,
    stopped_at          TEXT,
    updated_at          TEXT NOT NULL,
    version             INTEGER NOT NULL
) STRICT;
CREATE INDEX tasks_account_cluster_idx ON tasks (account_id, cluster_id, id);
CREATE INDEX tasks_account_cluster_status_idx ON tasks (account_id, cluster_id, last_status);
CREATE INDEX tasks_task_definition_idx ON tasks (account_id, task_definition_id);

CREATE TABLE events (
    account_id    BLOB NOT NULL REFERENCES accounts (id),
    sequence      INTEGER NOT NULL,
    event_type    TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    detail        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (account_id, sequence)
) STRICT;

CREATE TABLE idempotency_records (
    account_id      BLOB NOT NULL REFERENCES accounts (id),
    idempotency_key TEXT NOT NULL,
    -- sha256 over the operation (method and path) and the request body, so a
    -- reused key with another request is refused instead of replayed.
    request_hash    TEXT NOT NULL,
    response_status INTEGER NOT NULL,
    response_body   TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (account_id, idempotency_key)
) STRICT;
CREATE INDEX idempotency_records_created_idx ON idempotency_records (created_at);
