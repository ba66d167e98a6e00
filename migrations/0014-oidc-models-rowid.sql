-- oidc_models is rebuilt as a rowid table (issue 14); a SQLite storage layout only, with no
-- PostgreSQL counterpart (its tables are heaps): the columns, primary key, indexes and triggers are
-- those of 0001 and 0008. Until now the table was WITHOUT ROWID, stored in (model, key) order, and
-- `key` is SHA-256 of the id for most models, so every new code or token landed on a random page of
-- the table, row and all (~500 bytes, about seven to a page): a /token refresh — two inserts and
-- the consumed refresh token's update — dirtied several random leaf pages and split one about every
-- other request, each page one more WAL frame in its commit and one more page for the checkpoint to
-- copy. Now rows are stored in rowid order (the implicit rowid, read by nothing): new rows land
-- together on the last page, and the refresh token consumed next was written a few requests before.
-- The primary key (model, key) becomes a separate unique index, whose entries carry no payload, so
-- its random inserts touch few pages; every lookup and the upsert's conflict target use it.
CREATE TABLE oidc_models_rowid (
  model       TEXT    NOT NULL,
  key         TEXT    NOT NULL,
  payload     TEXT    NOT NULL,
  grant_id    TEXT,
  uid         TEXT,
  expires_at  INTEGER,            -- ms since epoch; NULL = no expiry
  consumed_at INTEGER,            -- ms since epoch
  PRIMARY KEY (model, key)
) STRICT;

INSERT INTO oidc_models_rowid (model, key, payload, grant_id, uid, expires_at, consumed_at)
  SELECT model, key, payload, grant_id, uid, expires_at, consumed_at FROM oidc_models;

-- Drops its indexes and the two triggers of 0008 with it; both are made again below, unchanged.
DROP TABLE oidc_models;
ALTER TABLE oidc_models_rowid RENAME TO oidc_models;

CREATE INDEX oidc_models_grant   ON oidc_models (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX oidc_models_uid     ON oidc_models (model, uid) WHERE uid IS NOT NULL;
CREATE INDEX oidc_models_expires ON oidc_models (expires_at) WHERE expires_at IS NOT NULL;

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
