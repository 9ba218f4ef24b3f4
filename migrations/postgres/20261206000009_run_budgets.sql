-- The event or run a chain of flows began with: every run and event it led to carries it, so
-- the runs one root starts can be counted (the fan-out budget).
ALTER TABLE events ADD COLUMN origin_root TEXT COLLATE "C";
ALTER TABLE runs ADD COLUMN root_id TEXT COLLATE "C";
CREATE INDEX runs_root ON runs (root_id) WHERE root_id IS NOT NULL;
-- Times the run's lease ran out since it last made progress: a run that stopped its worker
-- twice is not taken again.
ALTER TABLE runs ADD COLUMN takeovers BIGINT NOT NULL DEFAULT 0;
