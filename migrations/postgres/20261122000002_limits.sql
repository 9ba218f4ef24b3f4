-- Idempotency keys, shared rate-limit state (used on Postgres) and daily request counts.

CREATE TABLE idempotency_keys (
    api_key_id    TEXT COLLATE "C" NOT NULL,
    idem_key      TEXT COLLATE "C" NOT NULL,
    request_hash  TEXT NOT NULL,
    state         TEXT NOT NULL,
    status        BIGINT,
    location      TEXT,
    body          TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE rate_limit_state (
    api_key_id  TEXT COLLATE "C" PRIMARY KEY,
    tat_us      BIGINT NOT NULL
);

CREATE TABLE api_usage_daily (
    org_id      TEXT COLLATE "C" NOT NULL,
    api_key_id  TEXT COLLATE "C" NOT NULL,
    day         TEXT COLLATE "C" NOT NULL,
    requests    BIGINT NOT NULL,
    PRIMARY KEY (org_id, api_key_id, day)
);
