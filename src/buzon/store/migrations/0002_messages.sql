-- Persistent messages, queue policies, durable channel subscriptions, shutdown state.
ALTER TABLE destinations ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';

CREATE TABLE messages (
    queue_id    TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    message_id  TEXT NOT NULL,
    destination TEXT NOT NULL,
    headers     TEXT NOT NULL,
    body        BLOB NOT NULL,
    expires_at  REAL,
    redelivered INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE durable_subscriptions (
    id         TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (channel_id, owner_id, name)
) STRICT;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
