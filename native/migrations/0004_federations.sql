-- Federations (issue 36): rounds of local training on many clients, aggregated on the server.
-- A federation's global models and client updates are objects; these tables say which round is
-- open, who takes part in it, which updates arrived and what each closed round measured.
CREATE TABLE IF NOT EXISTS federations (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    rounds BIGINT NOT NULL,
    round BIGINT NOT NULL DEFAULT 0,
    round_opened_at BIGINT,
    round_tries BIGINT NOT NULL DEFAULT 0,
    closing_until BIGINT,
    tags TEXT NOT NULL,
    error TEXT,
    result TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX IF NOT EXISTS federations_by_status ON federations (status, created_at);
CREATE TABLE IF NOT EXISTS federation_members (
    federation_id TEXT NOT NULL,
    round BIGINT NOT NULL,
    participant TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (federation_id, round, participant)
);
CREATE TABLE IF NOT EXISTS federation_updates (
    federation_id TEXT NOT NULL,
    round BIGINT NOT NULL,
    participant TEXT NOT NULL,
    examples BIGINT NOT NULL,
    metrics TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (federation_id, round, participant)
);
CREATE TABLE IF NOT EXISTS federation_rounds (
    federation_id TEXT NOT NULL,
    round BIGINT NOT NULL,
    participants BIGINT NOT NULL,
    examples BIGINT NOT NULL,
    metrics TEXT NOT NULL,
    closed_at BIGINT NOT NULL,
    PRIMARY KEY (federation_id, round)
);
-- Join tokens: scoped to one federation's client calls, stored as SHA-256 digests.
CREATE TABLE IF NOT EXISTS federation_invites (
    id TEXT PRIMARY KEY,
    federation_id TEXT NOT NULL,
    token_digest TEXT NOT NULL UNIQUE,
    expires_at BIGINT,
    max_uses BIGINT,
    uses BIGINT NOT NULL DEFAULT 0,
    revoked BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
