-- clients_meta for Client ID Metadata Document clients (issue 12, DESIGN §10; SQLite:
-- migrations/0012-clients-meta-cimd.sql). `kind`: 'dcr' or 'cimd'; for 'cimd' rows the document
-- URL, the last fetch, the cache expiry, consecutive failures and the last failure's reason.
ALTER TABLE clients_meta ADD COLUMN kind TEXT COLLATE "C" NOT NULL DEFAULT 'dcr';
ALTER TABLE clients_meta ADD COLUMN cimd_url TEXT COLLATE "C";
ALTER TABLE clients_meta ADD COLUMN cimd_fetched_at BIGINT;
ALTER TABLE clients_meta ADD COLUMN cimd_expires_at BIGINT;
ALTER TABLE clients_meta ADD COLUMN cimd_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE clients_meta ADD COLUMN cimd_last_error TEXT COLLATE "C";
