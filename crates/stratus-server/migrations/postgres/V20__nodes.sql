-- Cluster members (cluster/nodes.rs): one row per node id, its heartbeat written
-- every second; a node whose heartbeat is older than 5 s is dead.
CREATE TABLE nodes (
    id           text PRIMARY KEY,
    advertise    text NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    stopped_at   timestamptz,
    info         jsonb NOT NULL DEFAULT '{}'
);
