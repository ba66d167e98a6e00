/**
 * sealed_secrets table: named secrets generated once by the server (the provider's signing
 * JWKS), stored sealed. A value sealed under SECRET_KEY_PREVIOUS is re-sealed under the current
 * SECRET_KEY the first time it is read.
 */
import type { Sql } from '../db/sql.js';
import type { KeyRing } from '../crypto/keys.js';

export function createSealedSecretStore(sql: Sql, keys: KeyRing) {
  const put = async (name: string, value: string): Promise<void> => {
    await sql.run('INSERT INTO sealed_secrets (name, sealed, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed', [
      name,
      keys.seal(value, `secret:${name}`),
      Date.now(),
    ]);
  };
  const read = (name: string) => sql.one<{ sealed: string }>('SELECT sealed FROM sealed_secrets WHERE name = ?', [name]);
  return {
    async get(name: string): Promise<string | undefined> {
      const row = await read(name);
      if (!row) return undefined;
      const value = keys.unseal(row.sealed, `secret:${name}`);
      if (keys.isStale(row.sealed)) await put(name, value);
      return value;
    },
    /** Whether `name` is absent or opens with this key ring — read only, never re-sealed (the CLI's key check, src/runtime/core.ts). */
    async opens(name: string): Promise<boolean> {
      const row = await read(name);
      if (!row) return true;
      try {
        keys.unseal(row.sealed, `secret:${name}`);
        return true;
      } catch {
        return false;
      }
    },
    put,
  };
}

export type SealedSecretStore = ReturnType<typeof createSealedSecretStore>;
