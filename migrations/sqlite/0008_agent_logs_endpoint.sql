-- Where the control plane reads a host's container logs: the agent's logs
-- endpoint and its bearer token, encrypted under the master keyring (the
-- token is a credential to the host's logs). Sent by the agent when it starts.
ALTER TABLE hosts ADD COLUMN logs_url TEXT;
ALTER TABLE hosts ADD COLUMN logs_token_key_id TEXT;
ALTER TABLE hosts ADD COLUMN logs_token_ciphertext TEXT;
