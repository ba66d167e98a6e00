/**
 * A small in-memory cache for the gateway's per-request reads (the token's row, the consent, the
 * sealed upstream token), valid only while the database is unchanged: every entry carries the
 * database generation — this connection's `total_changes()` and the file's `data_version` (which
 * moves when another process, such as the CLI, commits). Any write anywhere, a revocation above
 * all, makes every entry stale, so a revoked token still fails on the very next request (GW-01);
 * what the cache saves is the repeated lookups and decryption between writes.
 */
import type { Db } from '../db/open.js';

/** Entries kept at most; the oldest is dropped first. */
export const GATEWAY_CACHE_ENTRIES = 10_000;

export function createGeneration(db: Db): () => string {
  const stmt = db.prepare("SELECT total_changes() || ':' || (SELECT data_version FROM pragma_data_version()) AS g").pluck();
  return () => stmt.get() as string;
}

export function createGenerationCache<V>(generation: () => string, max = GATEWAY_CACHE_ENTRIES) {
  const entries = new Map<string, { generation: string; value: V }>();
  return {
    get(key: string, load: () => V, current: string = generation()): V {
      const hit = entries.get(key);
      if (hit && hit.generation === current) return hit.value;
      const value = load();
      if (hit) entries.delete(key);
      entries.set(key, { generation: current, value });
      if (entries.size > max) entries.delete(entries.keys().next().value as string);
      return value;
    },
  };
}
