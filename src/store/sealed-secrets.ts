/**
 * sealed_secrets table: named secrets generated once by the server (the provider's signing
 * JWKS), stored sealed. A value sealed under SECRET_KEY_PREVIOUS is re-sealed under the current
 * SECRET_KEY the first time it is read.
 */
import type { Db } from '../db/open.js';
import type { KeyRing } from '../crypto/keys.js';

export function createSealedSecretStore(db: Db, keys: KeyRing) {
  const select = db.prepare('SELECT sealed FROM sealed_secrets WHERE name = ?');
  const upsert = db.prepare(`INSERT INTO sealed_secrets (name, sealed, created_at) VALUES (?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed`);
  const put = (name: string, value: string) => upsert.run(name, keys.seal(value, `secret:${name}`), Date.now());
  return {
    get(name: string): string | undefined {
      const row = select.get(name) as { sealed: string } | undefined;
      if (!row) return undefined;
      const value = keys.unseal(row.sealed, `secret:${name}`);
      if (keys.isStale(row.sealed)) put(name, value);
      return value;
    },
    put,
  };
}

export type SealedSecretStore = ReturnType<typeof createSealedSecretStore>;
