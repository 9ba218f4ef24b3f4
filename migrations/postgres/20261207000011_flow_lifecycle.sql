-- Flow lifecycle. Every change of a flow's trigger, steps or settings is a version; runs keep
-- the version they started with.
CREATE TABLE flow_versions (
    flow_id     TEXT COLLATE "C" NOT NULL,
    version     BIGINT NOT NULL,
    trigger     TEXT NOT NULL,
    steps       TEXT NOT NULL,
    settings    TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (flow_id, version)
);
ALTER TABLE flows ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
-- A change being prepared, not live: {name?, trigger?, steps?, settings?} as given.
ALTER TABLE flows ADD COLUMN draft TEXT;
ALTER TABLE flows ADD COLUMN draft_updated_at BIGINT;
-- Until then, inbound calls of a webhook flow are kept as samples instead of starting runs.
ALTER TABLE flows ADD COLUMN listen_until BIGINT;
-- A webhook secret is the flow's own, never a version's (a flow saved before secrets were sealed
-- still holds one in its trigger until the start that seals it).
INSERT INTO flow_versions (flow_id, version, trigger, steps, settings, created_by, created_at)
    SELECT id, 1, (trigger::jsonb - 'secret')::text, steps, settings, created_by, updated_at FROM flows;

ALTER TABLE runs ADD COLUMN flow_version BIGINT;
-- 'live', or 'test' for a run someone started to try the flow.
ALTER TABLE runs ADD COLUMN mode TEXT NOT NULL DEFAULT 'live';
-- A test run's options: {dryRun, pinned}.
ALTER TABLE runs ADD COLUMN test TEXT;
-- The record that started it (the trigger's id), to find a record's runs.
ALTER TABLE runs ADD COLUMN resource_id TEXT;
-- When the flow last began a live run (written at most once a minute per flow and process).
ALTER TABLE flows ADD COLUMN last_triggered_at BIGINT;
UPDATE flows SET last_triggered_at = (SELECT MAX(created_at) FROM runs WHERE runs.flow_id = flows.id);

-- The last inbound calls or polled items of a flow, kept for tests and the builder.
CREATE TABLE flow_samples (
    id          TEXT COLLATE "C" PRIMARY KEY,
    flow_id     TEXT COLLATE "C" NOT NULL,
    source      TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX flow_samples_flow ON flow_samples (flow_id, created_at);
