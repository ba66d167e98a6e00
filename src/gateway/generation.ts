/**
 * The gateway's per-request read of the generation counter (src/store/gateway-generation.ts;
 * src/gateway/cache.ts keys every cached fact by it) — the read that makes a revocation committed
 * anywhere fail the next request (GW-01; DESIGN §8: "a revocation committed on one replica fails
 * the next gateway request on every replica that starts after the revoking response was
 * received").
 *
 * On SQLite the read is answered synchronously (no promise, no microtask). On PostgreSQL it is a
 * round trip, and concurrent requests share reads — but a request only ever uses a read ISSUED
 * AFTER it arrived, never one already in flight (that read may have been answered before a
 * revocation the request's client already saw committed):
 * - no read in flight: issue one now, the request uses it;
 * - read k in flight: the request waits for read k+1, issued as soon as k is answered and shared
 *   by every request that arrived while k was in flight.
 * So a revocation committed before a request arrived is in the snapshot of the read that request
 * uses, and at most two reads per replica are in flight or waiting at any time, whatever the load.
 */
import type { Maybe } from '../db/sql.js';

const ignore = () => undefined;

/** `read`, shared by concurrent callers under the rule above (synchronous answers pass straight through). */
export function coalescedReads<T>(read: () => Maybe<T>): () => Maybe<T> {
  /** the read issued last, until it is answered */
  let inflight: Promise<T> | undefined;
  /** the read to be issued when `inflight` is answered, shared by everyone who arrived meanwhile */
  let next: Promise<T> | undefined;

  const issue = (): Maybe<T> => {
    const value = read();
    if (!(value instanceof Promise)) return value;
    inflight = value;
    const answered = () => {
      if (inflight === value) inflight = undefined;
    };
    value.then(answered, answered);
    return value;
  };

  return () => {
    if (inflight === undefined) return issue();
    next ??= inflight.then(ignore, ignore).then(() => {
      next = undefined;
      return issue();
    });
    return next;
  };
}
