-- sealed_secrets: long-lived secrets the server generates once (the JWKS that signs ID tokens),
-- sealed with AES-256-GCM under a key derived from SECRET_KEY (src/crypto/keys.ts). `kid` names
-- the sealing key so SECRET_KEY rotation can re-seal.
CREATE TABLE sealed_secrets (
  name       TEXT PRIMARY KEY,
  sealed     TEXT NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;
