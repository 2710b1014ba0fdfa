-- Cluster-wide concurrency limits (issue 11 part 3; docs/decisions.md
-- "Cluster-wide concurrency: slot grants leased from PostgreSQL").
-- Idempotent: `cluster/grants.rs` also applies it at start, under an advisory lock.

-- One row per pool: 'account' (the unreserved part of the account limit) and
-- 'function:{name}' per function with reserved concurrency. The row is the lock
-- every grant change of the pool takes first; `slot_limit` is the limit the last
-- node to ask saw in its configuration.
CREATE TABLE IF NOT EXISTS concurrency_pools (
    pool TEXT PRIMARY KEY,
    slot_limit INTEGER NOT NULL CHECK (slot_limit >= 0)
);

-- What each node holds of each pool, until `expires_at` (database clock). A node
-- counts its use locally and stops admitting before this expiry by its own clock,
-- so an expired row is free for the others whether or not its node is alive.
-- `wanted` is the node's recent demand: a row with `wanted > slots` is a node
-- going short, and holders above their fair share give back to it.
CREATE TABLE IF NOT EXISTS concurrency_grants (
    pool TEXT NOT NULL REFERENCES concurrency_pools (pool) ON DELETE CASCADE,
    node TEXT NOT NULL,
    slots INTEGER NOT NULL CHECK (slots >= 0),
    wanted INTEGER NOT NULL CHECK (wanted >= 0),
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (pool, node)
);
