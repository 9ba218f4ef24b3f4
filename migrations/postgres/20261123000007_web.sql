-- The web UI: browser sessions, invitations of new users, and failed logins (for throttling).

CREATE TABLE web_sessions (
    -- SHA-256 of the cookie's value: a copy of the database opens no session.
    id_hash         TEXT COLLATE "C" PRIMARY KEY,
    org_id          TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    user_id         TEXT COLLATE "C" NOT NULL REFERENCES org_users (id),
    -- The token every form of this session carries.
    csrf_token      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

CREATE TABLE web_invites (
    token_hash      TEXT COLLATE "C" PRIMARY KEY,
    org_id          TEXT COLLATE "C" NOT NULL REFERENCES organizations (id),
    user_id         TEXT COLLATE "C" NOT NULL REFERENCES org_users (id),
    created_by      TEXT COLLATE "C" NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    accepted_at     BIGINT
);
CREATE INDEX web_invites_user ON web_invites (user_id);

-- One row per login attempt until it succeeds, by the address it came from and by the e-mail it
-- named: what is left counts as failed.
CREATE TABLE login_failures (
    subject         TEXT COLLATE "C" NOT NULL,
    -- The attempt, so that one attempt's rows can be taken back.
    attempt         TEXT COLLATE "C" NOT NULL,
    at              BIGINT NOT NULL
);
CREATE INDEX login_failures_subject ON login_failures (subject, at);
