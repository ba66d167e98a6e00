/**
 * gateway_generation: one counter that database triggers move whenever something the gateway
 * caches may have changed — an access token updated or deleted, a consent added, changed or
 * removed (last_used_at aside), an upstream token saved or removed — in any process, on any
 * replica (migrations/0008-gateway-generation.sql; PostgreSQL: migrations/postgres/0001-schema.sql,
 * and 0004, which moves it once per transaction instead of once per changed row — so read it
 * outside writing transactions: inside one, a read between two changes already sees the value its
 * commit keeps).
 * The gateway reads it once per request (src/gateway/cache.ts, src/gateway/generation.ts), so a
 * revocation by anyone fails the very next request (GW-01, DESIGN §8).
 */
import type { Maybe, Sql } from '../db/sql.js';

export function createGenerationStore(sql: Sql) {
  return {
    /** The current generation: synchronous on SQLite when it can be, a round trip on PostgreSQL. */
    current(): Maybe<number> {
      const row = sql.oneNow<{ n: number }>('SELECT n FROM gateway_generation WHERE id = 1');
      return row instanceof Promise ? row.then((r) => r?.n ?? 0) : (row?.n ?? 0);
    },
  };
}

export type GenerationStore = ReturnType<typeof createGenerationStore>;
