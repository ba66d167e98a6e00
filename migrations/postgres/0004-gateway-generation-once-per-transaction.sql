-- PostgreSQL only, no SQLite counterpart (found by review, 2026-12-06): the gateway's generation
-- counter (0001, "0008 gateway_generation") moves once per transaction instead of once per changed
-- row. A statement that changes many rows — housekeeping's purge of expired access tokens, a
-- client's deletion, a grant's revocation cascade — updated the one gateway_generation row once per
-- row, and PostgreSQL makes each update of a row the same transaction already updated walk the
-- versions before it: 10,000 expired access tokens took 0.7 s, 30,000 took 6.5 s, holding that
-- row's lock against every consent approval, revocation and upstream token save meanwhile. Once is
-- enough: readers compare the counter with the one their cache was filled under, and the new value
-- becomes visible with the commit of the changes, as before (GW-01). The mark is a transaction-local
-- setting (set_config(…, true)): gone at commit or rollback, and undone with a savepoint rolled back
-- to, as the update it stands for is. Its value is the transaction's id, so a session that sets the
-- name itself (SET, ALTER DATABASE … SET, a pooler carrying a SET) cannot make a change skip the
-- bump: only this transaction's own mark does. Read the counter outside writing transactions: inside
-- one, a read between two changes already sees the value its commit keeps. SQLite has no such cost
-- (no row versions): its triggers stay.
CREATE OR REPLACE FUNCTION gateway_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  me TEXT := CAST(txid_current() AS TEXT);
BEGIN
  IF current_setting('mcp_consent_proxy.generation_bumped', true) IS DISTINCT FROM me THEN
    UPDATE gateway_generation SET n = n + 1 WHERE id = 1;
    PERFORM set_config('mcp_consent_proxy.generation_bumped', me, true);
  END IF;
  RETURN NULL;
END
$$;
