-- audit_log: append-only, hash-chained record of every security decision (DESIGN §3).
-- hash = SHA-256(prev_hash || canonical row); see src/audit/chain.ts. Triggers abort every
-- UPDATE and DELETE; `mcp-consent-proxy audit verify` recomputes the chain. Nothing secret is
-- ever written here: tokens and codes appear at most as digests.
CREATE TABLE audit_log (
  seq        INTEGER PRIMARY KEY,
  ts         TEXT NOT NULL,        -- ISO 8601, ms, UTC
  event      TEXT NOT NULL,        -- area.outcome from src/audit/events.ts
  outcome    TEXT NOT NULL,        -- allow | deny | error | info
  reason     TEXT,                 -- stable reason code
  subject    TEXT,
  client_id  TEXT,
  ip         TEXT,
  request_id TEXT,
  details    TEXT,                 -- canonical JSON object or NULL
  prev_hash  TEXT NOT NULL,
  hash       TEXT NOT NULL
) STRICT;

CREATE INDEX audit_log_ts      ON audit_log (ts);
CREATE INDEX audit_log_event   ON audit_log (event, seq);
CREATE INDEX audit_log_subject ON audit_log (subject, seq) WHERE subject IS NOT NULL;
CREATE INDEX audit_log_client  ON audit_log (client_id, seq) WHERE client_id IS NOT NULL;
CREATE INDEX audit_log_request ON audit_log (request_id) WHERE request_id IS NOT NULL;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'audit_log is append-only');
END;
