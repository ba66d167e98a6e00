/**
 * A small in-memory cache for the gateway's per-request reads (the token's row, the consent, the
 * sealed upstream token), valid only while the gateway generation stands still: a counter that
 * database triggers move on every change to access tokens, consents and upstream tokens, made by
 * any process (migrations/0008-gateway-generation.sql; read by src/store/gateway-generation.ts). It is read once per request, so a
 * revocation — by this server or by the CLI — fails the very next request (GW-01); what the
 * cache saves is the repeated lookups and decryption in between, and writes that cannot change
 * a cached fact (audit rows, a consent's last_used_at) do not clear it. It holds the current
 * generation's entries only: when the generation moves, every entry is dropped.
 */
/** Entries kept at most; the oldest is dropped first. */
export const GATEWAY_CACHE_ENTRIES = 10_000;

export function createGenerationCache<V>(generation: () => number, options: { max?: number; keep?: (value: V) => boolean } = {}) {
  const max = options.max ?? GATEWAY_CACHE_ENTRIES;
  const entries = new Map<string, { generation: number; value: V }>();
  let held: number | undefined; // the generation of every entry held
  return {
    get(key: string, load: () => V, current: number = generation()): V {
      // An entry of another generation can never be served again: drop them all at once, rather
      // than keep every grant and token ever looked up until `max` (the soak's finding, issue 13).
      if (held !== current) {
        entries.clear();
        held = current;
      }
      const hit = entries.get(key);
      if (hit && hit.generation === current) return hit.value;
      const value = load();
      if (options.keep && !options.keep(value)) return value;
      entries.set(key, { generation: current, value });
      if (entries.size > max) entries.delete(entries.keys().next().value as string);
      return value;
    },
    /** entries held (tests) */
    size(): number {
      return entries.size;
    },
  };
}
