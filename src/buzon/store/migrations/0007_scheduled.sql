-- Scheduled messages: deliver_at, the Unix time before which a message must not be
-- delivered (NULL: ready). Scheduled rows are no part of a paged backlog's tail, so the
-- expiry index leaves them out (deliver_at, always NULL there, is in it so that expiry
-- reads the index alone), and an index of their own, in their order (deliver_at, then seq),
-- lets the start-up read and the pages of a schedule find a queue's scheduled rows without
-- reading its backlog. Spilled (transient) messages are never scheduled: the broker keeps
-- those in memory.
ALTER TABLE messages ADD COLUMN deliver_at REAL;

DROP INDEX messages_by_expiry;
CREATE INDEX messages_by_expiry ON messages(queue_id, expires_at, deliver_at)
    WHERE expires_at IS NOT NULL AND deliver_at IS NULL;
CREATE INDEX messages_scheduled ON messages(queue_id, deliver_at, seq)
    WHERE deliver_at IS NOT NULL;
