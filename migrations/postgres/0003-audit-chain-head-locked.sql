-- PostgreSQL only, no SQLite counterpart (issue 11: /token and /register on PostgreSQL; each
-- statement is a round trip and a socket write). The audit chain's head read under the chain lock
-- in one statement instead of two: the advisory lock every appender takes (src/store/audit-log.ts,
-- AUDIT_CHAIN_LOCK), then the head. A VOLATILE function takes a fresh snapshot for each query it
-- runs, so in READ COMMITTED the SELECT after the lock sees every append committed before the lock
-- was granted — what the two statements did. SQLite needs no such thing: BEGIN IMMEDIATE already
-- serializes appenders, and a statement there is a function call, not a round trip.
CREATE FUNCTION audit_chain_head_locked(lock_key BIGINT) RETURNS TABLE (seq BIGINT, hash TEXT, key_id TEXT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(lock_key);
  RETURN QUERY SELECT a.seq, a.hash, a.key_id FROM audit_log a ORDER BY a.seq DESC LIMIT 1;
END
$$;
