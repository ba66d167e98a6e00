-- upstream_revocations (PostgreSQL: migrations/postgres/0006-upstream-revocations.sql): the
-- upstream tokens P has let go of — a revoked, superseded or expired consent's — that U has not yet
-- confirmed revoking (UP-08, RFC 7009). A revocation cascade moves the sealed row of
-- upstream_tokens here in its own transaction, so the revocation at U is recorded exactly when P's
-- revocation commits; the process asks U after the commit and deletes the row once U answered, and
-- housekeeping asks again for what is left (U unreachable, the process gone, a COMMIT's answer lost,
-- the token sealed under a SECRET_KEY this process does not have): src/consent/upstream-revocations.ts.
-- The sealed values are upstream_tokens' own (bound to the grant id), never opened to be moved.
-- No reference to consents: a consent deleted with its client must not take its pending revocation.
CREATE TABLE upstream_revocations (
  id             INTEGER PRIMARY KEY,
  grant_id       TEXT    NOT NULL,
  subject        TEXT    NOT NULL,
  client_id      TEXT,
  sealed_access  TEXT    NOT NULL,
  sealed_refresh TEXT,
  expires_at     INTEGER,               -- the access token's, ms since epoch; NULL = unknown
  created_at     INTEGER NOT NULL,      -- ms since epoch: when P let the token go
  attempts       INTEGER NOT NULL,      -- requests to U so far
  next_at        INTEGER NOT NULL,      -- ms since epoch: due from then (a claim moves it on)
  last_error     TEXT
) STRICT;

CREATE INDEX upstream_revocations_grant ON upstream_revocations (grant_id);
CREATE INDEX upstream_revocations_next ON upstream_revocations (next_at);
