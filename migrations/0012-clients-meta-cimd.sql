-- clients_meta for Client ID Metadata Document clients (issue 12, DESIGN §10; PostgreSQL:
-- migrations/postgres/0002-clients-meta-cimd.sql). `kind` says how the client came to exist:
-- 'dcr' (POST /register) or 'cimd' (an https client_id whose document P fetched). For 'cimd'
-- rows: the document URL, the last fetch, until when the cached document is used, and the
-- consecutive failed fetches with the last failure's reason (the admin console's CIMD list).
ALTER TABLE clients_meta ADD COLUMN kind TEXT NOT NULL DEFAULT 'dcr';
ALTER TABLE clients_meta ADD COLUMN cimd_url TEXT;
ALTER TABLE clients_meta ADD COLUMN cimd_fetched_at INTEGER;   -- ms since epoch
ALTER TABLE clients_meta ADD COLUMN cimd_expires_at INTEGER;   -- ms since epoch
ALTER TABLE clients_meta ADD COLUMN cimd_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients_meta ADD COLUMN cimd_last_error TEXT;
