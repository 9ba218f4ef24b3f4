-- Organizations, their users and API keys, the work hierarchy and the event log.
-- Instants are Unix milliseconds, money integer minor units, flags 0/1.

CREATE TABLE organizations (
    id              TEXT COLLATE "C" PRIMARY KEY,
    name            TEXT COLLATE "C" NOT NULL,
    plan            TEXT NOT NULL,
    billing_state   TEXT NOT NULL,
    currency        TEXT NOT NULL,
    timezone        TEXT NOT NULL,
    week_starts_on  TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE holiday_profiles (
    id              TEXT COLLATE "C" PRIMARY KEY,
    org_id          TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    name            TEXT COLLATE "C" NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);

CREATE TABLE org_users (
    id                      TEXT COLLATE "C" PRIMARY KEY,
    org_id                  TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    email                   TEXT COLLATE "C" NOT NULL,
    name                    TEXT COLLATE "C" NOT NULL,
    role                    TEXT NOT NULL,
    is_active               SMALLINT NOT NULL,
    weekly_capacity_seconds BIGINT,
    cost_rate               BIGINT,
    billable_rate           BIGINT,
    holiday_profile_id      TEXT COLLATE "C" REFERENCES holiday_profiles (id),
    password_hash           TEXT,
    external_id             TEXT COLLATE "C",
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    deleted_at              BIGINT
);
CREATE UNIQUE INDEX org_users_email ON org_users (org_id, email) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX org_users_external_id ON org_users (org_id, external_id) WHERE external_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX org_users_created ON org_users (org_id, created_at, id);
CREATE INDEX org_users_updated ON org_users (org_id, updated_at, id);

CREATE TABLE api_keys (
    id            TEXT COLLATE "C" PRIMARY KEY,
    org_id        TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    user_id       TEXT COLLATE "C" NOT NULL REFERENCES org_users (id),
    name          TEXT COLLATE "C" NOT NULL,
    prefix        TEXT NOT NULL,
    key_hash      TEXT COLLATE "C" NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX api_keys_created ON api_keys (org_id, created_at, id);
CREATE INDEX api_keys_updated ON api_keys (org_id, updated_at, id);

CREATE TABLE customers (
    id           TEXT COLLATE "C" PRIMARY KEY,
    org_id       TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    name         TEXT COLLATE "C" NOT NULL,
    email        TEXT COLLATE "C",
    phone        TEXT,
    address      TEXT,
    currency     TEXT NOT NULL,
    hourly_rate  BIGINT,
    notes        TEXT,
    external_id  TEXT COLLATE "C",
    is_archived  SMALLINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    deleted_at   BIGINT
);
CREATE UNIQUE INDEX customers_external_id ON customers (org_id, external_id) WHERE external_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX customers_created ON customers (org_id, created_at, id);
CREATE INDEX customers_updated ON customers (org_id, updated_at, id);

CREATE TABLE projects (
    id              TEXT COLLATE "C" PRIMARY KEY,
    org_id          TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    customer_id     TEXT COLLATE "C" NOT NULL REFERENCES customers (id),
    name            TEXT COLLATE "C" NOT NULL,
    code            TEXT COLLATE "C",
    billing_method  TEXT NOT NULL,
    currency        TEXT NOT NULL,
    hourly_rate     BIGINT,
    fixed_fee       BIGINT,
    budget_seconds  BIGINT,
    budget_amount   BIGINT,
    starts_on       TEXT,
    ends_on         TEXT,
    notes           TEXT,
    external_id     TEXT COLLATE "C",
    is_archived     SMALLINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);
CREATE UNIQUE INDEX projects_external_id ON projects (org_id, external_id) WHERE external_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX projects_created ON projects (org_id, created_at, id);
CREATE INDEX projects_updated ON projects (org_id, updated_at, id);
CREATE INDEX projects_customer ON projects (customer_id);

CREATE TABLE tasks (
    id                TEXT COLLATE "C" PRIMARY KEY,
    org_id            TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    project_id        TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    name              TEXT COLLATE "C" NOT NULL,
    description       TEXT,
    status            TEXT NOT NULL,
    billable          SMALLINT NOT NULL,
    currency          TEXT NOT NULL,
    hourly_rate       BIGINT,
    estimate_seconds  BIGINT,
    assignee_id       TEXT COLLATE "C" REFERENCES org_users (id),
    external_id       TEXT COLLATE "C",
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    deleted_at        BIGINT
);
CREATE UNIQUE INDEX tasks_external_id ON tasks (org_id, external_id) WHERE external_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX tasks_created ON tasks (org_id, created_at, id);
CREATE INDEX tasks_updated ON tasks (org_id, updated_at, id);
CREATE INDEX tasks_project ON tasks (project_id);

CREATE TABLE subtasks (
    id                TEXT COLLATE "C" PRIMARY KEY,
    org_id            TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    task_id           TEXT COLLATE "C" NOT NULL REFERENCES tasks (id),
    project_id        TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    name              TEXT COLLATE "C" NOT NULL,
    status            TEXT NOT NULL,
    estimate_seconds  BIGINT,
    assignee_id       TEXT COLLATE "C" REFERENCES org_users (id),
    external_id       TEXT COLLATE "C",
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    deleted_at        BIGINT
);
CREATE UNIQUE INDEX subtasks_external_id ON subtasks (org_id, external_id) WHERE external_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX subtasks_created ON subtasks (org_id, created_at, id);
CREATE INDEX subtasks_updated ON subtasks (org_id, updated_at, id);
CREATE INDEX subtasks_task ON subtasks (task_id);

-- The append-only change log. `seq` orders it; appends are serialised so that seq order is
-- commit order and a reader that saw seq N never later finds a smaller one.
CREATE TABLE events (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT COLLATE "C" NOT NULL UNIQUE,
    org_id          TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    type            TEXT NOT NULL,
    occurred_at     BIGINT NOT NULL,
    resource_id     TEXT COLLATE "C" NOT NULL,
    data            TEXT NOT NULL,
    changed_fields  TEXT,
    previous        TEXT
);
CREATE INDEX events_org_seq ON events (org_id, seq);
