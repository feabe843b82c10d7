-- Each worker's own lease length, so that any server judges it "lost" by its lease, not by the
-- answering server's. Rows from before this migration get the default `--lease-secs`.
ALTER TABLE workers ADD COLUMN lease_ms BIGINT NOT NULL DEFAULT 30000;
