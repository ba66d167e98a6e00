/**
 * A small in-memory cache for the gateway's per-request reads (the token's row, the consent, the
 * sealed upstream token), valid only while the gateway generation stands still: a counter that
 * database triggers move on every change to access tokens, consents and upstream tokens, made by
 * any process or replica (migrations/0008-gateway-generation.sql; read by src/store/gateway-generation.ts
 * through src/gateway/generation.ts). It is read once per request, so a
 * revocation — by this server or by the CLI — fails the very next request (GW-01); what the
 * cache saves is the repeated lookups and decryption in between, and writes that cannot change
 * a cached fact (audit rows, a consent's last_used_at) do not clear it.
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
  const store = (key: string, current: number, value: V): V => {
    entries.delete(key);
    if (options.keep && !options.keep(value)) return value;
    entries.set(key, { generation: current, value });
    if (entries.size > max) entries.delete(entries.keys().next().value as string);
    return value;
  };
  const lookup = (key: string, load: () => Maybe<V>, current: number): Maybe<V> => {
    const hit = entries.get(key);
    if (hit && hit.generation === current) return hit.value;
    return after(load(), (value) => store(key, current, value));
  };
  return {
    get(key: string, load: () => Maybe<V>, current?: number): Maybe<V> {
      return current === undefined ? after(generation(), (g) => lookup(key, load, g)) : lookup(key, load, current);
    },
  };
}
