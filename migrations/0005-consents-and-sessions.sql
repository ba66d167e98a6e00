-- consents: what a user approved at P's consent page (CONS-02, CONS-13): for one subject (the
-- upstream account), one client, one exact redirect URI and one resource, the granted scopes,
-- until expires_at unless revoked. At most one active row per key; a newer approval supersedes
-- the older one. grant_id names the oidc-provider grant (and the upstream token) it produced.
CREATE TABLE consents (
  id             INTEGER PRIMARY KEY,
  subject        TEXT    NOT NULL,
  client_id      TEXT    NOT NULL,
  redirect_uri   TEXT    NOT NULL,
  resource       TEXT    NOT NULL,
  scopes         TEXT    NOT NULL,      -- space-separated, sorted
  upstream_scopes TEXT   NOT NULL,      -- what P asked U for, as shown on the page
  granted_at     INTEGER NOT NULL,      -- ms since epoch
  expires_at     INTEGER NOT NULL,
  revoked_at     INTEGER,
  revoked_reason TEXT,
  grant_id       TEXT    NOT NULL UNIQUE,
  last_used_at   INTEGER
) STRICT;

CREATE UNIQUE INDEX consents_active_key ON consents (subject, client_id, redirect_uri, resource) WHERE revoked_at IS NULL;
CREATE INDEX consents_client ON consents (client_id);
CREATE INDEX consents_subject ON consents (subject);

-- browser_sessions: P's own browser session, opened after the upstream login (CONS-04). The
-- cookie holds a signed random id; only its SHA-256 is stored.
CREATE TABLE browser_sessions (
  id_hash      TEXT    PRIMARY KEY,
  subject      TEXT    NOT NULL,
  display_name TEXT,
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL
) STRICT;

CREATE INDEX browser_sessions_expires ON browser_sessions (expires_at);

-- upstream_transactions: one upstream authorization, created only after the user approved
-- (STATE-02), single-use (consumed_at) and short-lived (STATE-05/06). Looked up by SHA-256 of
-- the upstream `state`; the nonce, PKCE verifier and interaction are sealed.
CREATE TABLE upstream_transactions (
  state_hash  TEXT    PRIMARY KEY,
  sealed      TEXT    NOT NULL,
  client_id   TEXT    NOT NULL,
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  consumed_at INTEGER
) STRICT;

CREATE INDEX upstream_transactions_expires ON upstream_transactions (expires_at);

-- upstream_tokens: the user's upstream tokens for one grant (UP-07, UP-08), sealed with
-- AES-256-GCM (the sealed value names its key id for SECRET_KEY rotation).
CREATE TABLE upstream_tokens (
  grant_id       TEXT    PRIMARY KEY REFERENCES consents (grant_id) ON DELETE CASCADE,
  subject        TEXT    NOT NULL,
  sealed_access  TEXT    NOT NULL,
  sealed_refresh TEXT,
  expires_at     INTEGER,               -- ms since epoch; NULL = unknown
  scopes         TEXT,
  updated_at     INTEGER NOT NULL
) STRICT;
