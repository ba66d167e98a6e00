-- admin_sessions: sessions of the admin pages (/admin), opened by an upstream sign-in of a subject
-- listed in ADMIN_SUBJECTS. Kept apart from browser_sessions so an admin session has its own
-- idle and absolute timeouts. Only SHA-256 of the session id is stored.
CREATE TABLE admin_sessions (
  id_hash      TEXT    PRIMARY KEY,
  subject      TEXT    NOT NULL,
  display_name TEXT,
  created_at   INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL        -- absolute end (ADMIN_SESSION_TTL after sign-in)
) STRICT;

CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);
