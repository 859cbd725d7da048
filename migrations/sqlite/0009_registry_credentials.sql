-- Credentials for private registries, named by task definitions' containers.
-- The password is encrypted under the master keyring and never returned.
CREATE TABLE registry_credentials (
    account_id BLOB NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    registry TEXT NOT NULL,
    username TEXT NOT NULL,
    password_key_id TEXT NOT NULL,
    password_ciphertext TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (account_id, name)
) STRICT;
