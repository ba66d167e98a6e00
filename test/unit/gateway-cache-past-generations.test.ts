/**
 * Finding of the soak (test/soak, issue 13 §4): in ten minutes of steady traffic P's heap after a
 * full GC grew 18 % (38 → 45 MB) and RSS 23 %. Heap snapshots (test/soak/heap-diff.ts) showed
 * the growth in the gateway's generation caches (src/gateway/cache.ts): every grant, and every
 * access token, that was ever looked up kept its entry — with U's tokens compiled into Buffers
 * for the GW-13 scrubber, each able to pin an 8 KiB pool slab — until 10,000 entries had
 * accumulated, although an entry of a past generation can never be served again (a hit needs
 * the current generation). Now the entries of a past generation are dropped when the generation
 * moves: the cache holds only what the current generation has looked up.
 */
import { describe, expect, it } from 'vitest';
import { createGenerationCache } from '../../src/gateway/cache.js';

describe('gateway cache: entries of past generations', () => {
  it('are dropped when the generation moves; the current generation is served from the cache', () => {
    let generation = 1;
    let loads = 0;
    const cache = createGenerationCache<{ grant: string }>(() => generation);
    const load = (grant: string) => () => {
      loads += 1;
      return { grant };
    };
    // A long run: each generation (a consent recorded, a token refreshed…) looks up new grants.
    for (let g = 1; g <= 2_000; g++) {
      generation = g;
      cache.get(`grant-${g}`, load(`grant-${g}`));
      cache.get(`grant-${g}-b`, load(`grant-${g}-b`));
    }
    expect(cache.size()).toBe(2);
    // Within a generation, a hit is still a hit.
    loads = 0;
    expect(cache.get('grant-2000', load('x'))).toEqual({ grant: 'grant-2000' });
    expect(loads).toBe(0);
    // A generation read by the caller for this request counts the same way.
    expect(cache.get('grant-2000', load('grant-2000'), 2_001)).toEqual({ grant: 'grant-2000' });
    expect(loads).toBe(1);
    expect(cache.size()).toBe(1);
  });

  it('still keeps at most `max` entries within one generation', () => {
    const cache = createGenerationCache<number>(() => 7, { max: 3 });
    for (let i = 0; i < 10; i++) cache.get(`k${i}`, () => i);
    expect(cache.size()).toBe(3);
  });
});
