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
  // Two plain statements: the pragma table-valued function in one query costs about 4.3 µs per
  // call, `SELECT total_changes()` plus `PRAGMA data_version` about 3 µs (hot path, once a request).
  const changes = db.prepare('SELECT total_changes()').pluck();
  const dataVersion = db.prepare('PRAGMA data_version').pluck();
  return () => `${changes.get() as number}:${dataVersion.get() as number}`;
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
