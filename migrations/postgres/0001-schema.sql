-- The PostgreSQL schema (DESIGN §3, §8): the end state of the SQLite migrations 0001–0011 in one
-- file, with the same tables, columns, column order, index and trigger names, so one SQL text in a
-- store runs on both engines (src/db/sql.ts lists the portable subset). Why one file and how later
-- changes are numbered: migrations/postgres/README.md. Comments on what each table holds are in
-- the SQLite files named after each table below.
--
-- Type mapping: SQLite INTEGER (ms since the epoch, counters, ids) → BIGINT, read back as JS
-- numbers by src/db/pg-sql.ts; TEXT → TEXT COLLATE "C", so comparisons, ORDER BY and lower() work
-- as in SQLite (byte order; lower() folds ASCII letters only) whatever the database's locale.
-- SQLite's STRICT, WITHOUT ROWID and rowid aliases have no PostgreSQL counterpart; consents.id is
-- an identity column instead of a rowid alias.

-- 0001 oidc_models: every oidc-provider model; `key` is SHA-256(id) for bearer-like models.
CREATE TABLE oidc_models (
  model       TEXT COLLATE "C" NOT NULL,
  key         TEXT COLLATE "C" NOT NULL,
  payload     TEXT COLLATE "C" NOT NULL,
  grant_id    TEXT COLLATE "C",
  uid         TEXT COLLATE "C",
  expires_at  BIGINT,            -- ms since epoch; NULL = no expiry
  consumed_at BIGINT,            -- ms since epoch
  PRIMARY KEY (model, key)
);

CREATE INDEX oidc_models_grant   ON oidc_models (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX oidc_models_uid     ON oidc_models (model, uid) WHERE uid IS NOT NULL;
CREATE INDEX oidc_models_expires ON oidc_models (expires_at) WHERE expires_at IS NOT NULL;

-- 0002 clients_meta: provenance of each registered client (REG-11, CONS-19).
CREATE TABLE clients_meta (
  client_id      TEXT COLLATE "C" PRIMARY KEY,
  registered_at  BIGINT NOT NULL,
  ip             TEXT COLLATE "C",
  user_agent     TEXT COLLATE "C",
  client_name    TEXT COLLATE "C",
  redirect_hosts TEXT COLLATE "C" NOT NULL,
  last_used_at   BIGINT,
  disabled_at    BIGINT
);

CREATE INDEX clients_meta_last_used ON clients_meta ((coalesce(last_used_at, registered_at)));

-- 0003, 0007, 0011 audit_log: append-only, keyed hash chain (DESIGN §3, §9; src/audit/chain.ts).
CREATE TABLE audit_log (
  seq        BIGINT PRIMARY KEY,
  ts         TEXT COLLATE "C" NOT NULL,   -- ISO 8601, ms, UTC
  event      TEXT COLLATE "C" NOT NULL,
  outcome    TEXT COLLATE "C" NOT NULL,
  reason     TEXT COLLATE "C",
  subject    TEXT COLLATE "C",
  client_id  TEXT COLLATE "C",
  ip         TEXT COLLATE "C",
  request_id TEXT COLLATE "C",
  details    TEXT COLLATE "C",
  prev_hash  TEXT COLLATE "C" NOT NULL,
  hash       TEXT COLLATE "C" NOT NULL,
  key_id     TEXT COLLATE "C"
);

CREATE INDEX audit_log_ts      ON audit_log (ts);
CREATE INDEX audit_log_event   ON audit_log (event, seq);
CREATE INDEX audit_log_subject ON audit_log (subject, seq) WHERE subject IS NOT NULL;
CREATE INDEX audit_log_client  ON audit_log (client_id, seq) WHERE client_id IS NOT NULL;
CREATE INDEX audit_log_request ON audit_log (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX audit_log_outcome ON audit_log (outcome, seq);

-- Append-only (SQLite 0003 and 0011, with the same messages). UPDATE, DELETE and TRUNCATE are
-- refused per statement, so even one that would touch no row fails, and so does any
-- INSERT … ON CONFLICT DO UPDATE (PostgreSQL fires statement-level UPDATE triggers for it).
-- Every INSERT is checked row by row: seq exactly the head's + 1 (refuses an insert below the head,
-- over an existing seq, a gap, a NULL seq) and a key id (every row here is keyed: PostgreSQL has
-- no rows from before 0011). Two concurrent inserts of the same head + 1 meet at the primary key:
-- the second fails once the first commits. Triggers bind the table's owner too, but the owner can
-- drop them: the application's role must not own the table (README, "Running several replicas").
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END
$$;

CREATE FUNCTION audit_log_check_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.seq IS DISTINCT FROM (SELECT coalesce(max(seq), 0) + 1 FROM audit_log) THEN
    RAISE EXCEPTION 'audit_log is append-only: a new row must take the seq after the head';
  END IF;
  RETURN NEW;
END
$$;

CREATE FUNCTION audit_log_check_keyed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.key_id IS NULL THEN
    RAISE EXCEPTION 'audit_log is append-only: a new row must carry its key id';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_insert_at_head BEFORE INSERT ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_check_head();
CREATE TRIGGER audit_log_insert_keyed BEFORE INSERT ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_check_keyed();

-- 0004 sealed_secrets: long-lived generated secrets (the JWKS), sealed under SECRET_KEY.
CREATE TABLE sealed_secrets (
  name       TEXT COLLATE "C" PRIMARY KEY,
  sealed     TEXT COLLATE "C" NOT NULL,
  created_at BIGINT NOT NULL
);

-- 0005, 0009 consents: what a user approved (CONS-02, CONS-13, CONS-16).
CREATE TABLE consents (
  id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  subject         TEXT COLLATE "C" NOT NULL,
  client_id       TEXT COLLATE "C" NOT NULL,
  redirect_uri    TEXT COLLATE "C" NOT NULL,
  resource        TEXT COLLATE "C" NOT NULL,
  scopes          TEXT COLLATE "C" NOT NULL,
  upstream_scopes TEXT COLLATE "C" NOT NULL,
  granted_at      BIGINT NOT NULL,
  expires_at      BIGINT NOT NULL,
  revoked_at      BIGINT,
  revoked_reason  TEXT COLLATE "C",
  grant_id        TEXT COLLATE "C" NOT NULL UNIQUE,
  last_used_at    BIGINT,
  browser_hash    TEXT COLLATE "C"
);

CREATE UNIQUE INDEX consents_active_key ON consents (subject, client_id, redirect_uri, resource) WHERE revoked_at IS NULL;
CREATE INDEX consents_client ON consents (client_id);
CREATE INDEX consents_subject ON consents (subject);

-- 0005 browser_sessions: P's own browser session (CONS-04); only SHA-256 of the id.
CREATE TABLE browser_sessions (
  id_hash      TEXT COLLATE "C" PRIMARY KEY,
  subject      TEXT COLLATE "C" NOT NULL,
  display_name TEXT COLLATE "C",
  created_at   BIGINT NOT NULL,
  expires_at   BIGINT NOT NULL,
  last_seen_at BIGINT NOT NULL
);

CREATE INDEX browser_sessions_expires ON browser_sessions (expires_at);

-- 0005 upstream_transactions: one upstream authorization, single-use, short-lived (STATE-02/05/06).
CREATE TABLE upstream_transactions (
  state_hash  TEXT COLLATE "C" PRIMARY KEY,
  sealed      TEXT COLLATE "C" NOT NULL,
  client_id   TEXT COLLATE "C" NOT NULL,
  created_at  BIGINT NOT NULL,
  expires_at  BIGINT NOT NULL,
  consumed_at BIGINT
);

CREATE INDEX upstream_transactions_expires ON upstream_transactions (expires_at);

-- 0005 upstream_tokens: the user's upstream tokens per grant, sealed (UP-07, UP-08).
CREATE TABLE upstream_tokens (
  grant_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES consents (grant_id) ON DELETE CASCADE,
  subject        TEXT COLLATE "C" NOT NULL,
  sealed_access  TEXT COLLATE "C" NOT NULL,
  sealed_refresh TEXT COLLATE "C",
  expires_at     BIGINT,
  scopes         TEXT COLLATE "C",
  updated_at     BIGINT NOT NULL
);

-- 0006 admin_sessions: /admin sessions; only SHA-256 of the id.
CREATE TABLE admin_sessions (
  id_hash      TEXT COLLATE "C" PRIMARY KEY,
  subject      TEXT COLLATE "C" NOT NULL,
  display_name TEXT COLLATE "C",
  created_at   BIGINT NOT NULL,
  last_seen_at BIGINT NOT NULL,
  expires_at   BIGINT NOT NULL
);

CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

-- 0008 gateway_generation: one counter that moves, in the same transaction, whenever something the
-- gateway caches may have changed (GW-01): an access token updated or deleted, a consent inserted,
-- changed (last_used_at and browser_hash aside, as in SQLite) or deleted, an upstream token
-- inserted, updated or deleted — row by row, on exactly the events of the SQLite triggers. It is a
-- row, not a sequence, on purpose: its new value becomes visible with the change's commit, never
-- before it (a sequence moves at once and would let a reader cache the old data under the new n).
CREATE TABLE gateway_generation (
  id BIGINT PRIMARY KEY CHECK (id = 1),
  n  BIGINT NOT NULL
);
INSERT INTO gateway_generation (id, n) VALUES (1, 0);

CREATE FUNCTION gateway_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE gateway_generation SET n = n + 1 WHERE id = 1;
  RETURN NULL;
END
$$;

CREATE TRIGGER gateway_generation_token_update AFTER UPDATE ON oidc_models
  FOR EACH ROW WHEN (OLD.model = 'AccessToken') EXECUTE FUNCTION gateway_generation_bump();
CREATE TRIGGER gateway_generation_token_delete AFTER DELETE ON oidc_models
  FOR EACH ROW WHEN (OLD.model = 'AccessToken') EXECUTE FUNCTION gateway_generation_bump();
CREATE TRIGGER gateway_generation_consent_insert AFTER INSERT ON consents
  FOR EACH ROW EXECUTE FUNCTION gateway_generation_bump();
CREATE TRIGGER gateway_generation_consent_update
  AFTER UPDATE OF id, subject, client_id, redirect_uri, resource, scopes, upstream_scopes, granted_at, expires_at, revoked_at, revoked_reason, grant_id ON consents
  FOR EACH ROW EXECUTE FUNCTION gateway_generation_bump();
CREATE TRIGGER gateway_generation_consent_delete AFTER DELETE ON consents
  FOR EACH ROW EXECUTE FUNCTION gateway_generation_bump();
CREATE TRIGGER gateway_generation_upstream_insert AFTER INSERT ON upstream_tokens
  FOR EACH ROW EXECUTE FUNCTION gateway_generation_bump();
CREATE TRIGGER gateway_generation_upstream_update AFTER UPDATE ON upstream_tokens
  FOR EACH ROW EXECUTE FUNCTION gateway_generation_bump();
CREATE TRIGGER gateway_generation_upstream_delete AFTER DELETE ON upstream_tokens
  FOR EACH ROW EXECUTE FUNCTION gateway_generation_bump();

-- 0010 mcp_sessions: which subject and client an MCP session id belongs to (GW-09, AT-15).
CREATE TABLE mcp_sessions (
  id_hash      TEXT COLLATE "C" PRIMARY KEY,
  subject      TEXT COLLATE "C" NOT NULL,
  client_id    TEXT COLLATE "C" NOT NULL,
  created_at   BIGINT NOT NULL,
  last_used_at BIGINT NOT NULL
);

CREATE INDEX mcp_sessions_last_used ON mcp_sessions (last_used_at);

-- PostgreSQL only. rate_limits: the express-rate-limit budget per key (limiter name + client IP)
-- shared by every replica (issue 11): a fixed window from window_start (ms), hits so far, advanced
-- by one atomic upsert per request. UNLOGGED: counters are not worth a WAL write per request; a
-- crash or a failover to a standby empties them, which only resets the current windows.
CREATE UNLOGGED TABLE rate_limits (
  key          TEXT COLLATE "C" PRIMARY KEY,
  window_start BIGINT NOT NULL,
  hits         INTEGER NOT NULL
);

CREATE INDEX rate_limits_window ON rate_limits (window_start);
