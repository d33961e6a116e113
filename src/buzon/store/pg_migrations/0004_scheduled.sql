-- Scheduled messages: deliver_at, the Unix time before which a message must not be
-- delivered (NULL: ready). No node claims a scheduled row as a ready message and the
-- unclaimed counts, expiry and trims leave them out, so the partial indexes those use
-- leave them out too; an index of their own finds a queue's scheduled rows in their order
-- (deliver_at, then seq: a page of a schedule is one range of it).
ALTER TABLE messages ADD COLUMN deliver_at double precision;

DROP INDEX messages_unclaimed;
CREATE INDEX messages_unclaimed ON messages (queue_id, seq)
    WHERE claimed_by IS NULL AND deliver_at IS NULL;
DROP INDEX messages_by_expiry;
CREATE INDEX messages_by_expiry ON messages (queue_id, expires_at)
    WHERE expires_at IS NOT NULL AND deliver_at IS NULL;
CREATE INDEX messages_scheduled ON messages (queue_id, deliver_at, seq)
    WHERE deliver_at IS NOT NULL;
DROP INDEX messages_unclaimed_by_priority;
CREATE INDEX messages_unclaimed_by_priority ON messages (queue_id, priority DESC, seq)
    WHERE claimed_by IS NULL AND deliver_at IS NULL;
-- Scheduled rows no node holds (their node stopped, or buzon migrate wrote them): the nodes
-- look for them every second, so they have an index of their own, empty most of the time.
CREATE INDEX messages_unheld_scheduled ON messages (queue_id)
    WHERE claimed_by IS NULL AND deliver_at IS NOT NULL;
