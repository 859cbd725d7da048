-- Authentication: the operator account, access keys (secrets encrypted under
-- a master key, since SigV4 verification needs the plaintext), JWT signing
-- keys, per-cluster registration tokens, host credentials, and the audit log.

ALTER TABLE accounts ADD COLUMN is_operator INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN status_reason TEXT;

CREATE TABLE access_keys (
    id                BLOB PRIMARY KEY,
    account_id        BLOB NOT NULL REFERENCES accounts (id),
    access_key_id     TEXT NOT NULL UNIQUE,
    -- AES-256-GCM: base64(nonce || ciphertext) under master key master_key_id.
    secret_ciphertext TEXT NOT NULL,
    master_key_id     TEXT NOT NULL,
    role              TEXT NOT NULL,
    -- NULL: every cluster of the account; else a JSON array of cluster names.
    cluster_scope     TEXT,
    status            TEXT NOT NULL,
    description       TEXT,
    created_at        TEXT NOT NULL,
    last_used_at      TEXT,
    last_used_ip      TEXT,
    version           INTEGER NOT NULL
) STRICT;
CREATE INDEX access_keys_account_idx ON access_keys (account_id, id);

-- Not tenant data: the control plane's own token-signing keys.
CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    algorithm          TEXT NOT NULL,
    private_ciphertext TEXT NOT NULL,
    master_key_id      TEXT NOT NULL,
    public_key         TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    -- Tokens signed by this key stop verifying at this time.
    retire_at          TEXT NOT NULL
) STRICT;

CREATE TABLE registration_tokens (
    id            BLOB PRIMARY KEY,
    account_id    BLOB NOT NULL REFERENCES accounts (id),
    cluster_id    BLOB NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    -- sha256 of the token: the token itself is shown once and never stored.
    token_hash    TEXT NOT NULL UNIQUE,
    description   TEXT,
    expires_at    TEXT NOT NULL,
    max_uses      INTEGER NOT NULL,
    uses          INTEGER NOT NULL,
    status        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    version       INTEGER NOT NULL
) STRICT;
CREATE INDEX registration_tokens_account_cluster_idx ON registration_tokens (account_id, cluster_id, id);

CREATE TABLE hosts (
    id                    BLOB PRIMARY KEY,
    account_id            BLOB NOT NULL REFERENCES accounts (id),
    cluster_id            BLOB NOT NULL REFERENCES clusters (id),
    registration_token_id BLOB,
    -- sha256 of the host credential's secret.
    credential_hash       TEXT NOT NULL,
    hostname              TEXT NOT NULL,
    status                TEXT NOT NULL,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    version               INTEGER NOT NULL
) STRICT;
CREATE INDEX hosts_account_cluster_idx ON hosts (account_id, cluster_id, id);

CREATE TABLE audit_events (
    id             BLOB NOT NULL,
    account_id     BLOB NOT NULL REFERENCES accounts (id),
    access_key_id  TEXT,
    action         TEXT NOT NULL,
    resource       TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    status_code    INTEGER NOT NULL,
    source_ip      TEXT,
    request_id     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
) STRICT;
CREATE INDEX audit_events_account_action_idx ON audit_events (account_id, action, id);
