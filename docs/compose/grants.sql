-- The application role (mcp_app, what every replica connects as) reads and writes the data but owns
-- nothing: on audit_log it may only SELECT and INSERT, and as it does not own the table it cannot
-- drop or disable the append-only triggers either. Run as the database owner (the role that ran
-- `mcp-consent-proxy migrate`) after every `migrate`: an upgrade may add tables. Idempotent. The
-- function takes the audit chain's lock and reads its head (PUBLIC may execute it by default;
-- granted here for databases that revoke that).
-- README "Running several replicas"; proved by test/security/audit-log-insert-only-role.pg.test.ts.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO mcp_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO mcp_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM mcp_app;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM mcp_app;
GRANT EXECUTE ON FUNCTION audit_chain_head_locked(BIGINT) TO mcp_app;
