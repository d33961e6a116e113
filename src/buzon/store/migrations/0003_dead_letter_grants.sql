-- A queue's proof that its owner may dead-letter into someone else's protected queue.
ALTER TABLE destinations ADD COLUMN dead_letter_grant TEXT;
