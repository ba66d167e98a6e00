/**
 * A small in-memory cache for the gateway's per-request reads (the token's row, the consent, the
 * sealed upstream token), valid only while the gateway generation stands still: a counter that
 * database triggers move when an access token is updated or deleted, a consent or upstream token
 * changes, or a client is disabled or enabled, by any process or replica
 * (migrations/0008-gateway-generation.sql, 0013; read by src/store/gateway-generation.ts
 * through src/gateway/generation.ts). It is read once per request, so a
 * revocation — by this server or by the CLI — fails the very next request (GW-01); what the
 * cache saves is the repeated lookups and decryption in between, and writes that cannot change
 * a cached fact (audit rows, a consent's last_used_at) do not clear it. It holds the current
 * generation's entries only: when the generation moves, every entry is dropped.
 */
import { after, type Maybe } from '../db/sql.js';

/** Entries kept at most; the oldest is dropped first. */
export const GATEWAY_CACHE_ENTRIES = 10_000;

/**
 * `get` answers from the cache while the generation stands still, else loads; a load (and the
 * generation read, when the caller did not pass the one it read for this request) may answer now
 * or later (src/db/sql.ts `Maybe`): a hit or a synchronous load makes no promise.
 */
export function createGenerationCache<V>(generation: () => Maybe<number>, options: { max?: number; keep?: (value: V) => boolean } = {}) {
  const max = options.max ?? GATEWAY_CACHE_ENTRIES;
  const entries = new Map<string, { generation: number; value: V }>();
  let held: number | undefined; // the generation of every entry held
  const store = (key: string, current: number, value: V): V => {
    // A load that finished after the generation moved on is not kept (it may be stale).
    if (current !== held) return value;
    entries.delete(key);
    if (options.keep && !options.keep(value)) return value;
    entries.set(key, { generation: current, value });
    if (entries.size > max) entries.delete(entries.keys().next().value as string);
    return value;
  };
  const lookup = (key: string, load: () => Maybe<V>, current: number): Maybe<V> => {
    // An entry of another generation can never be served again: drop them all at once, rather
    // than keep every grant and token ever looked up until `max` (the soak's finding, issue 13).
    if (current !== held) {
      entries.clear();
      held = current;
    }
    const hit = entries.get(key);
    if (hit && hit.generation === current) return hit.value;
    return after(load(), (value) => store(key, current, value));
  };
  return {
    get(key: string, load: () => Maybe<V>, current?: number): Maybe<V> {
      return current === undefined ? after(generation(), (g) => lookup(key, load, g)) : lookup(key, load, current);
    },
    /** entries held (tests) */
    size(): number {
      return entries.size;
    },
  };
}
