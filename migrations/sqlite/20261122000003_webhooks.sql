-- Webhooks and REST hooks (one table, by kind), the dispatcher's cursor, deliveries and attempts.

CREATE TABLE subscriptions (
    id                      TEXT PRIMARY KEY,
    org_id                  TEXT NOT NULL REFERENCES organizations (id),
    kind                    TEXT NOT NULL,
    url                     TEXT NOT NULL,
    events                  TEXT NOT NULL,
    description             TEXT,
    filters                 TEXT,
    is_enabled              INTEGER NOT NULL,
    disabled_reason         TEXT,
    secret                  TEXT NOT NULL,
    previous_secret         TEXT,
    previous_secret_until   INTEGER,
    failing_since           INTEGER,
    created_by              TEXT NOT NULL,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    deleted_at              INTEGER
);
CREATE INDEX subscriptions_org ON subscriptions (org_id, created_at, id);
CREATE INDEX subscriptions_updated ON subscriptions (org_id, updated_at, id);

-- One row per worker group: how far it has read the event log, and who holds it.
CREATE TABLE dispatcher_state (
    name         TEXT PRIMARY KEY,
    last_seq     INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER NOT NULL
);

CREATE TABLE deliveries (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES organizations (id),
    subscription_id   TEXT NOT NULL REFERENCES subscriptions (id),
    event_id          TEXT NOT NULL,
    event_seq         INTEGER NOT NULL,
    event_type        TEXT NOT NULL,
    status            TEXT NOT NULL,
    attempts          INTEGER NOT NULL,
    next_attempt_at   INTEGER,
    last_status_code  INTEGER,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, created_at, id);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);

CREATE TABLE delivery_attempts (
    id                TEXT PRIMARY KEY,
    delivery_id       TEXT NOT NULL REFERENCES deliveries (id),
    number            INTEGER NOT NULL,
    started_at        INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    status_code       INTEGER,
    response_excerpt  TEXT,
    error             TEXT
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, number);
