-- Message priority (0 to 9, 4 when not given). Claims take the highest priority first,
-- oldest first within a priority, through this index of the unclaimed messages.
ALTER TABLE messages ADD COLUMN priority smallint NOT NULL DEFAULT 4;
CREATE INDEX messages_unclaimed_by_priority ON messages (queue_id, priority DESC, seq)
    WHERE claimed_by IS NULL;
