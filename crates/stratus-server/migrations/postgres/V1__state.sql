-- Cluster state (issue 11): what state.db holds on a single node, shared by every
-- node of a cluster. Names sort by bytes (COLLATE "C"), as in state.db, whatever
-- the database's locale. JSON is kept as TEXT (as in state.db): the server decodes it,
-- and a row it cannot decode is reported as corrupt, never half-read.
-- Function environments (in config) and deployment requests are sealed under the
-- cluster's shared data keys (table cluster_keys, V2).

CREATE TABLE functions (
    name TEXT COLLATE "C" PRIMARY KEY,
    config TEXT NOT NULL,
    code_hex TEXT NOT NULL,
    -- The last version number handed out; only ever raised (see put_version).
    version_counter BIGINT NOT NULL DEFAULT 0 CHECK (version_counter >= 0),
    reserved INTEGER
);

CREATE TABLE versions (
    name TEXT COLLATE "C" NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    config TEXT NOT NULL,
    code_hex TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE aliases (
    name TEXT COLLATE "C" NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    alias TEXT COLLATE "C" NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (name, alias)
);

CREATE TABLE provisioned (
    name TEXT COLLATE "C" NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    qualifier TEXT COLLATE "C" NOT NULL,
    requested INTEGER NOT NULL,
    last_modified TEXT NOT NULL,
    PRIMARY KEY (name, qualifier)
);

CREATE TABLE event_invoke_config (
    name TEXT COLLATE "C" NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    qualifier TEXT COLLATE "C" NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (name, qualifier)
);

CREATE TABLE tags (
    name TEXT COLLATE "C" NOT NULL REFERENCES functions (name) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);

CREATE TABLE service_functions (
    service TEXT COLLATE "C" NOT NULL,
    stage TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    function_name TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (service, stage, key)
);
CREATE INDEX service_functions_by_function ON service_functions (function_name);

CREATE TABLE deployments (
    service TEXT COLLATE "C" NOT NULL,
    stage TEXT COLLATE "C" NOT NULL,
    timestamp BIGINT NOT NULL,
    request BYTEA NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (service, stage, timestamp)
);

CREATE TABLE function_events (
    function_name TEXT COLLATE "C" PRIMARY KEY,
    events TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE event_source_mappings (
    uuid TEXT COLLATE "C" PRIMARY KEY,
    function_name TEXT COLLATE "C" NOT NULL,
    config TEXT NOT NULL
);
CREATE INDEX event_source_mappings_by_function ON event_source_mappings (function_name);

CREATE TABLE access_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    secret BYTEA NOT NULL,
    policies TEXT NOT NULL,
    created TEXT COLLATE "C" NOT NULL
);
