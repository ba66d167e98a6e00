-- The gateway generation (0008) also moves when a client is disabled or enabled (PostgreSQL:
-- migrations/postgres/0005-gateway-generation-client-disabled.sql). The gateway's token check reads
-- the client's disabled flag with the token's consent and caches it under the generation
-- (src/gateway/token-check.ts), so a client's tokens fail the next request once the flag commits —
-- before, they worked until the disabling's cascade (or housekeeping, for a cascade cut short)
-- revoked each consent.
CREATE TRIGGER gateway_generation_client_disabled
AFTER UPDATE OF disabled_at ON clients_meta
WHEN OLD.disabled_at IS NOT NEW.disabled_at
BEGIN
  UPDATE gateway_generation SET n = n + 1 WHERE id = 1;
END;
