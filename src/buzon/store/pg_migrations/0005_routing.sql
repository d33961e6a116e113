-- Channels that route: a channel's type (fanout, direct or topic; queues keep 'fanout'),
-- and queues bound to channels (see the SQLite migration 0008).
ALTER TABLE destinations ADD COLUMN channel_type text NOT NULL DEFAULT 'fanout';

CREATE TABLE bindings (
    channel_id    text NOT NULL,
    queue_id      text NOT NULL,
    key           text NOT NULL,
    owner_id      text NOT NULL,
    created_at    double precision NOT NULL,
    channel_grant text,
    queue_grant   text,
    PRIMARY KEY (channel_id, queue_id, key)
);

CREATE INDEX bindings_by_queue ON bindings (queue_id);
