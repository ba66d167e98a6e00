-- The gateway generation also moves when a client is disabled or enabled (SQLite:
-- migrations/0013-gateway-generation-client-disabled.sql). The gateway's token check reads the
-- client's disabled flag with the token's consent and caches it under the generation
-- (src/gateway/token-check.ts), so a client's tokens fail the next request once the flag commits —
-- before, they worked until the disabling's cascade (or housekeeping, for a cascade cut short)
-- revoked each consent. Once per transaction, as every bump (0004).
CREATE TRIGGER gateway_generation_client_disabled
  AFTER UPDATE OF disabled_at ON clients_meta
  FOR EACH ROW WHEN (OLD.disabled_at IS DISTINCT FROM NEW.disabled_at) EXECUTE FUNCTION gateway_generation_bump();
