-- Paged backlogs: transient messages spilled out of a full window (emptied at every start),
-- and the indexes that let expiry find what is due without scanning a backlog.
CREATE TABLE spilled (
    queue_id    TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    message_id  TEXT NOT NULL,
    destination TEXT NOT NULL,
    headers     TEXT NOT NULL,
    body        BLOB NOT NULL,
    expires_at  REAL,
    PRIMARY KEY (queue_id, seq)
) STRICT, WITHOUT ROWID;

CREATE INDEX messages_by_expiry ON messages(queue_id, expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX spilled_by_expiry ON spilled(queue_id, expires_at) WHERE expires_at IS NOT NULL;
