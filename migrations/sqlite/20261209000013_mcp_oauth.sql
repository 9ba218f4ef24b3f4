-- OAuth 2.1 for /mcp (API.md section 11): clients that registered themselves, the grants users
-- gave them in the web UI, authorization codes, and access and refresh tokens. Secrets, codes
-- and tokens are kept as SHA-256 only.

CREATE TABLE oauth_clients (
    -- client_id: mcc_…
    id              TEXT PRIMARY KEY,
    -- client_name as registered, shown on the consent page.
    name            TEXT NOT NULL,
    -- JSON array of the redirect URIs, compared exactly.
    redirect_uris   TEXT NOT NULL,
    -- none | client_secret_post | client_secret_basic
    auth_method     TEXT NOT NULL,
    secret_hash     TEXT,
    created_at      INTEGER NOT NULL,
    -- The last consent or token request; none: never used (forgotten after an hour).
    last_used_at    INTEGER
);
CREATE INDEX oauth_clients_used ON oauth_clients (last_used_at, created_at);

-- One consent of a user to a client: every token refreshed from it belongs to it, and revoking
-- one of them revokes it.
CREATE TABLE oauth_grants (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES oauth_clients (id),
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    user_id         TEXT NOT NULL REFERENCES org_users (id),
    scope           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER,
    revoked_at      INTEGER
);
CREATE INDEX oauth_grants_client ON oauth_grants (client_id);
CREATE INDEX oauth_grants_user ON oauth_grants (user_id);

CREATE TABLE oauth_codes (
    code_hash       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES oauth_clients (id),
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    user_id         TEXT NOT NULL REFERENCES org_users (id),
    redirect_uri    TEXT NOT NULL,
    -- 1 when the authorization request named its redirect URI: the token request must then
    -- name it too (RFC 6749 section 4.1.3).
    redirect_uri_given INTEGER NOT NULL DEFAULT 0,
    -- PKCE: base64url of the SHA-256 of the verifier the token request must show.
    code_challenge  TEXT NOT NULL,
    scope           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER,
    -- The grant its exchange made, revoked when the code is presented again.
    grant_id        TEXT
);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);

CREATE TABLE oauth_tokens (
    token_hash      TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES oauth_grants (id),
    -- access | refresh
    kind            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    -- A refresh token's one use: presented again, it revokes its grant.
    used_at         INTEGER
);
CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id);
CREATE INDEX oauth_tokens_expires ON oauth_tokens (expires_at);
