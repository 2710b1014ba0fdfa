-- The cluster's shared data keys, each wrapped (AES-256-GCM) by the master key
-- every node is given (STRATUS_MASTER_KEY). The first node to start creates key 1;
-- a node whose master key does not unwrap them refuses to start. The wrapping is
-- authenticated, so it is also the check value of the master key.
CREATE TABLE cluster_keys (
    id INTEGER PRIMARY KEY CHECK (id > 0),
    wrapped BYTEA NOT NULL,
    created_ms BIGINT NOT NULL
);
