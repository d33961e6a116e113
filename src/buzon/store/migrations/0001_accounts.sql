-- Users, bearer tokens and the records of queues and channels.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL
) STRICT;

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
) STRICT;
CREATE INDEX tokens_by_user ON tokens(user_id);
CREATE INDEX tokens_by_expiry ON tokens(expires_at);

CREATE TABLE destinations (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    key_hash   TEXT,
    created_at REAL NOT NULL,
    UNIQUE (kind, name)
) STRICT;
