-- Flows (a trigger and steps of action manifests) and their runs.

CREATE TABLE flows (
    id              TEXT COLLATE "C" PRIMARY KEY,
    org_id          TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    is_enabled      SMALLINT NOT NULL,
    trigger_type    TEXT NOT NULL,
    event_type      TEXT,
    trigger         TEXT NOT NULL,
    steps           TEXT NOT NULL,
    -- Inbound webhook triggers: the token of `/hooks/in/{token}` and the optional HMAC secret.
    webhook_token   TEXT COLLATE "C" UNIQUE,
    webhook_secret  TEXT,
    -- The user whose role the steps act with.
    created_by      TEXT COLLATE "C" NOT NULL REFERENCES org_users (id),
    enabled_at      BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);
CREATE INDEX flows_created ON flows (org_id, created_at, id);
CREATE INDEX flows_updated ON flows (org_id, updated_at, id);
CREATE INDEX flows_event ON flows (org_id, event_type) WHERE is_enabled = 1 AND deleted_at IS NULL;

-- Which flow's run made an event, and how deep in a chain of flows: a flow never starts on its
-- own events, and chains stop at a fixed depth.
ALTER TABLE events ADD COLUMN origin_flow TEXT COLLATE "C";
ALTER TABLE events ADD COLUMN origin_depth BIGINT NOT NULL DEFAULT 0;

CREATE TABLE runs (
    id               TEXT COLLATE "C" PRIMARY KEY,
    org_id           TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    flow_id          TEXT COLLATE "C" NOT NULL REFERENCES flows (id),
    -- What started it (an event id, an inbound webhook, a test): one run per flow and source.
    source_key       TEXT COLLATE "C" NOT NULL,
    status           TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    steps            TEXT NOT NULL,
    error            TEXT,
    -- 0 for a run started by a person's change; n + 1 for one started by a depth-n run's event.
    depth            BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    -- Who holds the run: set by each claim, required by every write of the holder.
    lease_token      TEXT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX runs_source ON runs (flow_id, source_key);
CREATE INDEX runs_created ON runs (org_id, created_at, id);
CREATE INDEX runs_updated ON runs (org_id, updated_at, id);
CREATE INDEX runs_due ON runs (status, next_attempt_at);
