-- Time, timesheets, invoices and holiday profiles. Money is integer minor units of `currency`.

ALTER TABLE holiday_profiles ADD COLUMN country_code TEXT;
ALTER TABLE holiday_profiles ADD COLUMN holidays TEXT NOT NULL DEFAULT '[]';
ALTER TABLE holiday_profiles ADD COLUMN working_days TEXT NOT NULL DEFAULT '["monday","tuesday","wednesday","thursday","friday"]';
ALTER TABLE holiday_profiles ADD COLUMN seconds_per_day INTEGER NOT NULL DEFAULT 28800;
ALTER TABLE holiday_profiles ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX holiday_profiles_external_id ON holiday_profiles (org_id, external_id) WHERE external_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX holiday_profiles_created ON holiday_profiles (org_id, created_at, id);
CREATE INDEX holiday_profiles_updated ON holiday_profiles (org_id, updated_at, id);

-- The highest budget threshold (0, 80, 100) already announced for a project.
ALTER TABLE projects ADD COLUMN budget_alert_level INTEGER NOT NULL DEFAULT 0;

-- One per user and week, created with the week's first entry.
CREATE TABLE timesheets (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES organizations (id),
    user_id           TEXT NOT NULL REFERENCES org_users (id),
    period_start      TEXT NOT NULL,
    period_end        TEXT NOT NULL,
    status            TEXT NOT NULL,
    total_seconds     INTEGER NOT NULL,
    billable_seconds  INTEGER NOT NULL,
    expected_seconds  INTEGER NOT NULL,
    submitted_at      INTEGER,
    decided_at        INTEGER,
    decided_by        TEXT,
    rejection_reason  TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE UNIQUE INDEX timesheets_user_week ON timesheets (org_id, user_id, period_start);
CREATE INDEX timesheets_created ON timesheets (org_id, created_at, id);
CREATE INDEX timesheets_updated ON timesheets (org_id, updated_at, id);

CREATE TABLE invoices (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    customer_id     TEXT NOT NULL REFERENCES customers (id),
    number          TEXT,
    status          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    issue_date      TEXT,
    due_date        TEXT,
    period_from     TEXT,
    period_to       TEXT,
    tax_rate_bp     INTEGER NOT NULL,
    subtotal        INTEGER NOT NULL,
    tax_total       INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    amount_paid     INTEGER NOT NULL,
    -- Lines and payments as JSON arrays: read and written with their invoice.
    lines           TEXT NOT NULL,
    payments        TEXT NOT NULL,
    notes           TEXT,
    external_id     TEXT,
    issued_at       INTEGER,
    paid_at         INTEGER,
    voided_at       INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    deleted_at      INTEGER
);
CREATE UNIQUE INDEX invoices_number ON invoices (org_id, number) WHERE number IS NOT NULL;
CREATE UNIQUE INDEX invoices_external_id ON invoices (org_id, external_id) WHERE external_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX invoices_created ON invoices (org_id, created_at, id);
CREATE INDEX invoices_updated ON invoices (org_id, updated_at, id);
CREATE INDEX invoices_customer ON invoices (customer_id);

-- Gap-free counters per organization (invoice numbers), advanced inside the issuing transaction.
CREATE TABLE org_counters (
    org_id  TEXT NOT NULL REFERENCES organizations (id),
    name    TEXT NOT NULL,
    value   INTEGER NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE time_entries (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES organizations (id),
    user_id           TEXT NOT NULL REFERENCES org_users (id),
    subtask_id        TEXT NOT NULL REFERENCES subtasks (id),
    task_id           TEXT NOT NULL REFERENCES tasks (id),
    project_id        TEXT NOT NULL REFERENCES projects (id),
    customer_id       TEXT NOT NULL REFERENCES customers (id),
    timesheet_id      TEXT NOT NULL REFERENCES timesheets (id),
    date              TEXT NOT NULL,
    started_at        INTEGER,
    ended_at          INTEGER,
    duration_seconds  INTEGER NOT NULL,
    is_running        INTEGER NOT NULL,
    billable          INTEGER NOT NULL,
    -- What the entry asked for; `billable` is what applies (false on non-billable work).
    billable_requested INTEGER NOT NULL,
    currency          TEXT NOT NULL,
    billable_rate     INTEGER,
    billable_amount   INTEGER NOT NULL,
    notes             TEXT,
    approval_status   TEXT NOT NULL,
    invoice_id        TEXT REFERENCES invoices (id),
    invoice_line_id   TEXT,
    external_id       TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    deleted_at        INTEGER
);
CREATE UNIQUE INDEX time_entries_external_id ON time_entries (org_id, external_id) WHERE external_id IS NOT NULL AND deleted_at IS NULL;
-- One running timer per user, enforced by the store itself.
CREATE UNIQUE INDEX time_entries_running ON time_entries (org_id, user_id) WHERE is_running = 1 AND deleted_at IS NULL;
CREATE INDEX time_entries_created ON time_entries (org_id, created_at, id);
CREATE INDEX time_entries_updated ON time_entries (org_id, updated_at, id);
CREATE INDEX time_entries_date ON time_entries (org_id, date);
CREATE INDEX time_entries_project ON time_entries (project_id);
CREATE INDEX time_entries_subtask ON time_entries (subtask_id);
CREATE INDEX time_entries_timesheet ON time_entries (timesheet_id);
CREATE INDEX time_entries_invoice ON time_entries (invoice_id);
