-- Webhooks and REST hooks (one table, by kind), the dispatcher's cursor, deliveries and attempts.

CREATE TABLE subscriptions (
    id                      TEXT COLLATE "C" PRIMARY KEY,
    org_id                  TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    kind                    TEXT NOT NULL,
    url                     TEXT NOT NULL,
    events                  TEXT NOT NULL,
    description             TEXT,
    filters                 TEXT,
    is_enabled              SMALLINT NOT NULL,
    disabled_reason         TEXT,
    secret                  TEXT NOT NULL,
    previous_secret         TEXT,
    previous_secret_until   BIGINT,
    failing_since           BIGINT,
    created_by              TEXT COLLATE "C" NOT NULL,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    deleted_at              BIGINT
);
CREATE INDEX subscriptions_org ON subscriptions (org_id, created_at, id);
CREATE INDEX subscriptions_updated ON subscriptions (org_id, updated_at, id);

-- One row per worker group: how far it has read the event log, and who holds it.
CREATE TABLE dispatcher_state (
    name         TEXT COLLATE "C" PRIMARY KEY,
    last_seq     BIGINT NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT NOT NULL
);

CREATE TABLE deliveries (
    id                TEXT COLLATE "C" PRIMARY KEY,
    org_id            TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    subscription_id   TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id),
    event_id          TEXT COLLATE "C" NOT NULL,
    event_seq         BIGINT NOT NULL,
    event_type        TEXT NOT NULL,
    status            TEXT NOT NULL,
    attempts          BIGINT NOT NULL,
    next_attempt_at   BIGINT,
    last_status_code  BIGINT,
    last_error        TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, created_at, id);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);

CREATE TABLE delivery_attempts (
    id                TEXT COLLATE "C" PRIMARY KEY,
    delivery_id       TEXT COLLATE "C" NOT NULL REFERENCES deliveries (id),
    number            BIGINT NOT NULL,
    started_at        BIGINT NOT NULL,
    duration_ms       BIGINT NOT NULL,
    status_code       BIGINT,
    response_excerpt  TEXT,
    error             TEXT
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, number);
