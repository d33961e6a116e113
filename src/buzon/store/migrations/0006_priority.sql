-- Message priority (0 to 9, 4 when not given). A queue with messages of several priorities
-- pages each priority on its own, reading its tail by (queue, priority, seq). Only messages
-- of another priority than the default are indexed: a queue without priorities writes no
-- more than before, and the default priority's reads use the primary key.
ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 4;
ALTER TABLE spilled ADD COLUMN priority INTEGER NOT NULL DEFAULT 4;
CREATE INDEX messages_by_priority ON messages(queue_id, priority, seq) WHERE priority <> 4;
CREATE INDEX spilled_by_priority ON spilled(queue_id, priority, seq) WHERE priority <> 4;
