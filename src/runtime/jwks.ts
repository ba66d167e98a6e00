/**
 * Signing keys (P's own and the demo IdP's): generated once, stored sealed under SECRET_KEY
 * (sealed_secrets), loaded on every start.
 *
 * Replicas starting at once on an empty database (DESIGN §8, issue 11) must end with ONE key set
 * that all of them load — otherwise each signs ID tokens with keys the others do not publish at
 * /jwks. So the keys are created only under the lock `sealed-secret:<name>` (Sql.lock: on
 * PostgreSQL pg_advisory_xact_lock, released at commit; on SQLite BEGIN IMMEDIATE serializes), and
 * re-read after acquiring it: a replica that waited finds the set the first one committed and
 * loads that instead of creating its own.
 */
import type { Sql } from '../db/sql.js';
import { generateJwks } from '../provider/keys.js';
import type { SealedSecretStore } from '../store/sealed-secrets.js';

export async function loadOrCreateJwks(sql: Sql, sealed: SealedSecretStore, name: string): Promise<{ keys: Record<string, unknown>[] }> {
  const json =
    (await sealed.get(name)) ??
    (await sql.transaction(async () => {
      // Unbounded: the holder generates keys, which takes a while on a loaded machine; waiting is the point.
      await sql.lock(`sealed-secret:${name}`, { unbounded: true });
      const created = await sealed.get(name); // by another replica while this one waited
      if (created) return created;
      const fresh = JSON.stringify(await generateJwks());
      await sealed.put(name, fresh);
      return fresh;
    }));
  return JSON.parse(json) as { keys: Record<string, unknown>[] };
}
