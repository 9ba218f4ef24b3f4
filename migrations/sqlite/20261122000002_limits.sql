-- Idempotency keys, shared rate-limit state (used on Postgres) and daily request counts.

CREATE TABLE idempotency_keys (
    api_key_id    TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    state         TEXT NOT NULL,
    status        INTEGER,
    location      TEXT,
    body          TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE rate_limit_state (
    api_key_id  TEXT PRIMARY KEY,
    tat_us      INTEGER NOT NULL
);

CREATE TABLE api_usage_daily (
    org_id      TEXT NOT NULL,
    api_key_id  TEXT NOT NULL,
    day         TEXT NOT NULL,
    requests    INTEGER NOT NULL,
    PRIMARY KEY (org_id, api_key_id, day)
);
