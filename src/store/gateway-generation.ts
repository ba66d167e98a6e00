/**
 * gateway_generation: one counter that database triggers move whenever something the gateway
 * caches may have changed — an access token updated or deleted, a consent added, changed or
 * removed (last_used_at aside), an upstream token saved or removed — in any process
 * (migrations/0008-gateway-generation.sql). The gateway reads it once per request
 * (src/gateway/cache.ts), so a revocation by anyone fails the very next request (GW-01).
 */
import type { Db } from '../db/open.js';

export function createGenerationStore(db: Db) {
  const read = db.prepare('SELECT n FROM gateway_generation WHERE id = 1').pluck();
  return {
    /** The current generation. */
    current(): number {
      return read.get() as number;
    },
  };
}

export type GenerationStore = ReturnType<typeof createGenerationStore>;
