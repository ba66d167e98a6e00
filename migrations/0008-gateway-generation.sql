-- gateway_generation: one counter that moves whenever something the gateway caches may have
-- changed — an access token updated or deleted (revoked, consumed, cleaned up), a consent
-- added, changed or removed (last_used_at aside), an upstream token saved or removed — in any
-- process (the server, the CLI). The gateway reads it once per request and reuses its cached
-- token, consent and upstream-token facts while it stands still (src/gateway/cache.ts), so a
-- revocation still applies to the very next request (GW-01) while unrelated writes (audit rows
-- above all, every group commit) leave the cache alone.
CREATE TABLE gateway_generation (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  n  INTEGER NOT NULL
) STRICT;
INSERT INTO gateway_generation (id, n) VALUES (1, 0);

CREATE TRIGGER gateway_generation_token_update AFTER UPDATE ON oidc_models
WHEN OLD.model = 'AccessToken'
BEGIN
  UPDATE gateway_generation SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER gateway_generation_token_delete AFTER DELETE ON oidc_models
WHEN OLD.model = 'AccessToken'
BEGIN
  UPDATE gateway_generation SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER gateway_generation_consent_insert AFTER INSERT ON consents
BEGIN
  UPDATE gateway_generation SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER gateway_generation_consent_update
AFTER UPDATE OF id, subject, client_id, redirect_uri, resource, scopes, upstream_scopes, granted_at, expires_at, revoked_at, revoked_reason, grant_id ON consents
BEGIN
  UPDATE gateway_generation SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER gateway_generation_consent_delete AFTER DELETE ON consents
BEGIN
  UPDATE gateway_generation SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER gateway_generation_upstream_insert AFTER INSERT ON upstream_tokens
BEGIN
  UPDATE gateway_generation SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER gateway_generation_upstream_update AFTER UPDATE ON upstream_tokens
BEGIN
  UPDATE gateway_generation SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER gateway_generation_upstream_delete AFTER DELETE ON upstream_tokens
BEGIN
  UPDATE gateway_generation SET n = n + 1 WHERE id = 1;
END;
