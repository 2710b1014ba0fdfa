-- SQS-compatible queues shared by every node of a cluster (stratus-queue's
-- PostgreSQL backend, src/postgres.rs). The same rows as queues.db, one for one;
-- receivers on several nodes take messages with FOR UPDATE SKIP LOCKED.
CREATE TABLE sqs_queues (
    id          bigserial PRIMARY KEY,
    name        text COLLATE "C" NOT NULL UNIQUE,
    config      text NOT NULL,
    tags        text NOT NULL DEFAULT '{}',
    created_ms  bigint NOT NULL,
    modified_ms bigint NOT NULL
);

CREATE TABLE sqs_messages (
    id                 bigserial PRIMARY KEY,
    queue_id           bigint NOT NULL REFERENCES sqs_queues (id) ON DELETE CASCADE,
    message_id         text NOT NULL,
    -- Sealed with the cluster's data keys, bound to the message id.
    body               bytea NOT NULL,
    attributes         bytea,
    system_attributes  text,
    sent_ms            bigint NOT NULL,
    -- When the message can next be received: sent + delay, or receive + visibility.
    visible_ms         bigint NOT NULL,
    receive_count      integer NOT NULL DEFAULT 0,
    first_receive_ms   bigint,
    last_receive_ms    bigint,
    -- The secret of the latest receipt handle; NULL before the first receive.
    receipt_token      text,
    group_id           text,
    dedup_id           text,
    dead_letter_source text
);
CREATE INDEX sqs_messages_ready ON sqs_messages (queue_id, visible_ms, id);
CREATE INDEX sqs_messages_age ON sqs_messages (queue_id, sent_ms);

CREATE TABLE sqs_dedup (
    queue_id   bigint NOT NULL REFERENCES sqs_queues (id) ON DELETE CASCADE,
    dedup_id   text NOT NULL,
    message_id text NOT NULL,
    sequence   bigint NOT NULL,
    expires_ms bigint NOT NULL,
    PRIMARY KEY (queue_id, dedup_id)
);
