-- The cluster's leader (cluster/leader.rs). The leader is the node whose session
-- holds the leader advisory lock; `epoch` is raised by one each time a node becomes
-- leader (its fencing token), and `node`/`since` say who and when.
CREATE TABLE cluster_leader (
    id    int PRIMARY KEY CHECK (id = 1),
    epoch bigint NOT NULL,
    node  text,
    since timestamptz
);
INSERT INTO cluster_leader (id, epoch) VALUES (1, 0);

-- One row per schedule period fired, written by the leader in the transaction that
-- checks its epoch is still the current one: a period is fired at most once
-- cluster-wide, and never by a deposed leader. `enqueued` turns true once the event
-- is in the async queue; a new leader re-sends the recent ones still false under
-- the same request id (JetStream stores a message id once). Old rows are pruned by
-- the leader.
CREATE TABLE schedule_firings (
    function_name text COLLATE "C" NOT NULL,
    rule          text COLLATE "C" NOT NULL,
    due_ms        bigint NOT NULL,
    epoch         bigint NOT NULL,
    node          text NOT NULL,
    request_id    text NOT NULL,
    enqueued      boolean NOT NULL DEFAULT false,
    fired_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (function_name, rule, due_ms)
);
CREATE INDEX schedule_firings_fired_at ON schedule_firings (fired_at);
