-- The single-server registry (kiln serve, issue 12). IF NOT EXISTS: a data directory made
-- before migrations were tracked already has these tables.
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    rows BIGINT NOT NULL,
    sample_shape TEXT NOT NULL,
    header BIGINT NOT NULL,
    label_column TEXT,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    dataset TEXT,
    tags TEXT NOT NULL,
    progress TEXT,
    result TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
