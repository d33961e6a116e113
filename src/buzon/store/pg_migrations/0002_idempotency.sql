-- Idempotency keys: which message a publisher's key published in a queue, until when.
-- Written in the same statement as the message; kept after the message is gone, until
-- the queue's dedup window ends (pruned by expiry, hence the index).
CREATE TABLE idempotency_keys (
    queue_id   text NOT NULL,
    key        text NOT NULL,
    message_id text NOT NULL,
    expires_at double precision NOT NULL,
    PRIMARY KEY (queue_id, key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
