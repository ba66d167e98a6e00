/**
 * "At most once per interval per key", in bounded memory: the gateway writes a grant's
 * last_used_at (consents, clients_meta) at most once a minute per grant. A key last written
 * longer than the interval ago is due anyway, so its entry is useless and is pruned; and at most
 * `max` entries are kept (oldest first out — dropping a recent one early costs one extra write,
 * never a missed one). Entries are kept in write order, so pruning only looks at the oldest.
 */

/** Keys remembered at most, per throttle. */
export const MAX_THROTTLED_KEYS = 10_000;

export function createTouchThrottle(intervalMs: number, max = MAX_THROTTLED_KEYS) {
  const last = new Map<string, number>();
  return {
    /** true (and remembered as written at `now`) when `key` was not written within the interval */
    due(key: string, now: number): boolean {
      const previous = last.get(key);
      if (previous !== undefined && now - previous < intervalMs) return false;
      last.delete(key);
      last.set(key, now);
      for (const [oldest, at] of last) {
        if (last.size <= max && now - at < intervalMs) break;
        last.delete(oldest);
      }
      return true;
    },
    /** entries held (tests) */
    size(): number {
      return last.size;
    },
  };
}
