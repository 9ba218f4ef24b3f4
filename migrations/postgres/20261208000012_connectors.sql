-- Connectors as data. An organization's own connectors (installed through the API), each with
-- its current version; every version a flow may name, the organization's and snapshots of the
-- catalogue's and the instance's, kept for as long as flows may run them.
CREATE TABLE connectors (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id),
    key         TEXT NOT NULL,
    -- The current version (a row of connector_versions).
    version_id  TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE UNIQUE INDEX connectors_live_key ON connectors (org_id, key) WHERE deleted_at IS NULL;
CREATE INDEX connectors_created ON connectors (org_id, created_at, id);

CREATE TABLE connector_versions (
    -- Derived from the document and who owns it: the same document is the same version.
    id          TEXT PRIMARY KEY,
    -- None for a catalogue or instance connector.
    org_id      TEXT,
    key         TEXT NOT NULL,
    version     TEXT NOT NULL,
    -- The document, as JSON.
    document    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- The enabled webhook flows, which the subscriber looks through for connectors' triggers.
CREATE INDEX flows_enabled_webhooks ON flows (id) WHERE trigger_type = 'webhook' AND is_enabled = 1 AND deleted_at IS NULL;

-- The connector a connection was made for (none: a connection by type, as before).
ALTER TABLE connections ADD COLUMN connector TEXT;

-- A connector's webhook trigger subscribed at the system it watches: one row per flow while a
-- subscription exists (or is being made), with the trigger it was made for.
CREATE TABLE trigger_subscriptions (
    flow_id         TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    connection_id   TEXT NOT NULL,
    -- The flow's trigger as subscribed (its source, input and connector version).
    trigger         TEXT NOT NULL,
    -- The system's id of the subscription, once made.
    remote_id       TEXT,
    -- 'pending' (being made), 'active', 'failed' (made again at next_attempt_at) or 'ending'
    -- (being ended, or ended again at next_attempt_at).
    status          TEXT NOT NULL,
    failures        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    updated_at      BIGINT NOT NULL
);
