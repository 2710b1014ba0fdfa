-- Application Auto Scaling in a cluster (autoscale/postgres.rs): the same tables as
-- the single node's state.db (each row the model type as JSON), shared by every
-- node. Writes notify `stratus_changes` with kind `autoscale`; the other nodes then
-- re-read these tables.
CREATE TABLE autoscale_targets (
    resource_id text COLLATE "C" PRIMARY KEY,
    body        text NOT NULL
);
CREATE TABLE autoscale_policies (
    resource_id text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    body        text NOT NULL,
    PRIMARY KEY (resource_id, name)
);
CREATE TABLE autoscale_scheduled (
    resource_id text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    body        text NOT NULL,
    PRIMARY KEY (resource_id, name)
);
CREATE TABLE autoscale_activities (
    seq         bigserial PRIMARY KEY,
    resource_id text COLLATE "C" NOT NULL,
    body        text NOT NULL
);
CREATE INDEX autoscale_activities_resource ON autoscale_activities (resource_id, seq);

-- One row per run of a scheduled action, written by the leader in the transaction
-- that checks its epoch (cluster_leader) is still the current one: an occurrence
-- runs at most once cluster-wide, and never by a deposed leader. Pruned by the
-- leader after a day.
CREATE TABLE autoscale_firings (
    resource_id text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    due_ms      bigint NOT NULL,
    epoch       bigint NOT NULL,
    node        text NOT NULL,
    fired_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resource_id, name, due_ms)
);
CREATE INDEX autoscale_firings_fired_at ON autoscale_firings (fired_at);
