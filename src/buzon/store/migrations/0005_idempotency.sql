-- Idempotency keys: which message a publisher's key published in a queue, until when.
-- Written in the same transaction as the message; kept after the message is gone, until
-- the queue's dedup window ends (pruned by expiry, hence the index).
CREATE TABLE idempotency_keys (
    queue_id   TEXT NOT NULL,
    key        TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (queue_id, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys(expires_at);
