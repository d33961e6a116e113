-- Channels that route: a channel's type (fanout, direct or topic; queues keep 'fanout'),
-- and queues bound to channels. A binding is named by its channel, queue and key; the
-- grants are the proofs its maker held of the right to read the channel and to publish into
-- the queue (NULL when none was needed). Deleting either destination deletes its bindings.
ALTER TABLE destinations ADD COLUMN channel_type TEXT NOT NULL DEFAULT 'fanout';

CREATE TABLE bindings (
    channel_id    TEXT NOT NULL,
    queue_id      TEXT NOT NULL,
    key           TEXT NOT NULL,
    owner_id      TEXT NOT NULL,
    created_at    REAL NOT NULL,
    channel_grant TEXT,
    queue_grant   TEXT,
    PRIMARY KEY (channel_id, queue_id, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX bindings_by_queue ON bindings(queue_id);
