-- Fleets: leases (worker, attempt, expiry), required labels, the latest recorded checkpoint,
-- cancel requests across servers, and the workers themselves.
ALTER TABLE jobs ADD COLUMN worker_id TEXT;
ALTER TABLE jobs ADD COLUMN attempt BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lease_until BIGINT;
ALTER TABLE jobs ADD COLUMN requires TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN checkpoint TEXT;
ALTER TABLE jobs ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN attempt BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    addr TEXT NOT NULL,
    backend TEXT NOT NULL,
    labels TEXT NOT NULL,
    capacity BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    draining BIGINT NOT NULL DEFAULT 0,
    stopped_at BIGINT
);
