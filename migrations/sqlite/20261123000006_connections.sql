-- Connections (credentials to this instance, another instance, or any HTTP API) and the state of
-- poll triggers.

CREATE TABLE connections (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    name            TEXT NOT NULL,
    type            TEXT NOT NULL,
    base_url        TEXT,
    -- What is not secret, as JSON: the key's header, OAuth2 endpoints, client id, scopes.
    settings        TEXT NOT NULL,
    -- The credentials, AES-256-GCM sealed (nonce and ciphertext, base64); the id is the AAD.
    secret          TEXT,
    status          TEXT NOT NULL,
    last_error      TEXT,
    last_tested_at  INTEGER,
    -- OAuth2: the `state` of an authorization under way (its PKCE verifier is sealed in `secret`).
    oauth_state     TEXT UNIQUE,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    deleted_at      INTEGER
);
CREATE INDEX connections_created ON connections (org_id, created_at, id);
CREATE INDEX connections_updated ON connections (org_id, updated_at, id);

-- One row per poll flow: where its source was read up to, and who polls it now.
CREATE TABLE poll_state (
    flow_id         TEXT PRIMARY KEY REFERENCES flows (id),
    -- What the cursor belongs to (the trigger and when the flow was enabled): a new basis
    -- starts the cursor again.
    basis           TEXT NOT NULL,
    -- When the basis began: a trigger manifest source reads what changed from then on.
    basis_at        INTEGER NOT NULL,
    cursor          TEXT,
    next_poll_at    INTEGER NOT NULL,
    lease_until     INTEGER,
    lease_token     TEXT,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    last_polled_at  INTEGER
);
CREATE INDEX poll_state_due ON poll_state (next_poll_at);

-- The items a poll flow has seen (id, or id and version): each starts at most one run.
CREATE TABLE poll_seen (
    flow_id   TEXT NOT NULL,
    item_key  TEXT NOT NULL,
    seen_at   INTEGER NOT NULL,
    PRIMARY KEY (flow_id, item_key)
);

-- A value sealed with the key credentials are sealed with: a process started with another key
-- refuses to start instead of failing every connection.
CREATE TABLE vault_check (
    id      INTEGER PRIMARY KEY,
    sealed  TEXT NOT NULL
);
