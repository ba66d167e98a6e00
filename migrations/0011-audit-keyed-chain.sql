-- audit_log becomes a keyed chain (DESIGN §9): from now on each row's `hash` column holds
-- HMAC-SHA-256(audit key, prev_hash || canonical row), the audit key derived from SECRET_KEY
-- with its own HKDF label (src/crypto/keys.ts), and `key_id` names the SECRET_KEY generation
-- that made it, so SECRET_KEY_PREVIOUS still verifies rows from before a rotation. Rows written
-- before this migration keep key_id NULL and their plain SHA-256 hash; the first keyed row links
-- to the old head. See src/store/audit-chain.ts and src/audit/verify.ts.
ALTER TABLE audit_log ADD COLUMN key_id TEXT;

-- Appends only, at the head. The UPDATE and DELETE triggers of 0003 do not see
-- `INSERT OR REPLACE` / `REPLACE INTO` (SQLite deletes the conflicting row without firing DELETE
-- triggers unless recursive_triggers is on), so every INSERT is checked before it happens: its
-- seq must be exactly the head's + 1. That refuses a replace or an upsert
-- (`INSERT … ON CONFLICT DO UPDATE/NOTHING`) over an existing seq, `INSERT OR IGNORE` over one,
-- an insert below the head, a gap above it, and a NULL seq. It costs one rowid seek per row.
CREATE TRIGGER audit_log_insert_at_head BEFORE INSERT ON audit_log
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM audit_log)
BEGIN
  SELECT RAISE(ABORT, 'audit_log is append-only: a new row must take the seq after the head');
END;

-- Every row from now on is keyed; an unkeyed insert can only be a forgery.
CREATE TRIGGER audit_log_insert_keyed BEFORE INSERT ON audit_log
WHEN NEW.key_id IS NULL
BEGIN
  SELECT RAISE(ABORT, 'audit_log is append-only: a new row must carry its key id');
END;
