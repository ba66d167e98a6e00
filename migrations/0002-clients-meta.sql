-- clients_meta: provenance of each dynamically registered client (REG-11, CONS-19): who
-- registered it from where, when it was last used, whether an admin disabled it. The client's
-- own metadata lives in oidc_models (model 'Client').
CREATE TABLE clients_meta (
  client_id     TEXT PRIMARY KEY,
  registered_at INTEGER NOT NULL,  -- ms since epoch
  ip            TEXT,
  user_agent    TEXT,
  client_name   TEXT,
  redirect_hosts TEXT NOT NULL,    -- space-separated hosts (or schemes) of the redirect URIs
  last_used_at  INTEGER,           -- ms since epoch; NULL = never used
  disabled_at   INTEGER
) STRICT;

CREATE INDEX clients_meta_last_used ON clients_meta (coalesce(last_used_at, registered_at));
