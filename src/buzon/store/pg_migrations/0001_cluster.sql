-- The whole cluster state: accounts, destinations, messages with their claims, the nodes,
-- and the short-lived feed that carries channel messages between nodes.
CREATE TABLE users (
    id            text PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    role          text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    double precision NOT NULL
);

CREATE TABLE tokens (
    token_hash text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX tokens_by_user ON tokens(user_id);
CREATE INDEX tokens_by_expiry ON tokens(expires_at);

CREATE TABLE destinations (
    id                text PRIMARY KEY,
    kind              text NOT NULL,
    name              text NOT NULL,
    owner_id          text NOT NULL,
    key_hash          text,
    created_at        double precision NOT NULL,
    policy            text NOT NULL DEFAULT '{}',
    dead_letter_grant text,
    UNIQUE (kind, name)
);

CREATE TABLE durable_subscriptions (
    id         text PRIMARY KEY,
    channel_id text NOT NULL,
    owner_id   text NOT NULL,
    name       text NOT NULL,
    created_at double precision NOT NULL,
    UNIQUE (channel_id, owner_id, name)
);

-- claimed_by: the node run (nodes.id) that holds the message for its consumers; NULL
-- while it waits for any node to claim it. deliveries: how often it was delivered, as
-- last handed back by a node (a queue's max_deliveries counts across nodes).
CREATE TABLE messages (
    queue_id    text NOT NULL,
    seq         bigint NOT NULL,
    message_id  text NOT NULL,
    destination text NOT NULL,
    headers     text NOT NULL,
    body        bytea NOT NULL,
    expires_at  double precision,
    redelivered boolean NOT NULL DEFAULT false,
    persistent  boolean NOT NULL DEFAULT true,
    deliveries  integer NOT NULL DEFAULT 0,
    claimed_by  bigint,
    PRIMARY KEY (queue_id, seq)
);
CREATE INDEX messages_unclaimed ON messages (queue_id, seq) WHERE claimed_by IS NULL;
CREATE INDEX messages_by_claimer ON messages (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE INDEX messages_by_expiry ON messages (queue_id, expires_at) WHERE expires_at IS NOT NULL;

-- One row per node run. slot (0..1023) is unique among live runs: message seqs carry it.
CREATE TABLE nodes (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL,
    slot         integer NOT NULL,
    listeners    text NOT NULL DEFAULT '[]',
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    connections  integer NOT NULL DEFAULT 0,
    seq_high     bigint NOT NULL DEFAULT 0,
    stopped_at   timestamptz
);
CREATE INDEX nodes_live ON nodes (slot) WHERE stopped_at IS NULL;

-- Channel messages on their way to the other nodes' subscribers (kept for a minute).
CREATE TABLE channel_feed (
    id          bigserial PRIMARY KEY,
    origin      bigint NOT NULL,
    channel_id  text NOT NULL,
    message_id  text NOT NULL,
    destination text NOT NULL,
    headers     text NOT NULL,
    body        bytea NOT NULL,
    expires_at  double precision,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channel_feed_by_age ON channel_feed (created_at);
