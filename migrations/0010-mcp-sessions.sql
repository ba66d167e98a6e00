-- mcp_sessions: which user (subject) and which client an MCP session id that R issued belongs
-- to (GW-09, AT-15). A request to /mcp carrying an Mcp-Session-Id that is not here, or that is
-- bound to another subject or client, is answered 404 without contacting R. Only SHA-256 of the
-- session id is stored. A binding never changes owner; DELETE ends it; bindings unused for
-- MCP_SESSION_IDLE_MS (src/gateway/sessions.ts) are purged by housekeeping.
CREATE TABLE mcp_sessions (
  id_hash      TEXT    PRIMARY KEY,
  subject      TEXT    NOT NULL,
  client_id    TEXT    NOT NULL,
  created_at   INTEGER NOT NULL,
  last_used_at INTEGER NOT NULL
) STRICT;

CREATE INDEX mcp_sessions_last_used ON mcp_sessions (last_used_at);
