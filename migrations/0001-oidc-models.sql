-- oidc_models: every oidc-provider model (Client, Grant, Session, Interaction, AuthorizationCode,
-- AccessToken, RefreshToken, ...) in one table, written only by src/store/oidc-models.ts.
-- `key` is the model id for Client and Grant (not bearer secrets) and SHA-256(id), base64url,
-- for every other model: codes, tokens, session and interaction ids are never stored raw. The
-- raw id (`jti`) is also removed from `payload`.
CREATE TABLE oidc_models (
  model       TEXT    NOT NULL,
  key         TEXT    NOT NULL,
  payload     TEXT    NOT NULL,
  grant_id    TEXT,
  uid         TEXT,
  expires_at  INTEGER,            -- ms since epoch; NULL = no expiry
  consumed_at INTEGER,            -- ms since epoch
  PRIMARY KEY (model, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX oidc_models_grant   ON oidc_models (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX oidc_models_uid     ON oidc_models (model, uid) WHERE uid IS NOT NULL;
CREATE INDEX oidc_models_expires ON oidc_models (expires_at) WHERE expires_at IS NOT NULL;
