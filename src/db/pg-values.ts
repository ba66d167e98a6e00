/** Small helpers of the PostgreSQL engine (src/db/pg-sql.ts): BIGINT values and stale plans. */

/** A BIGINT (INT8) as a JS number; a value beyond 2^53 fails the query rather than lose precision. */
export function parseInt8(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`BIGINT value ${value} is beyond JavaScript's safe integers`);
  return n;
}

/** A prepared plan whose result columns changed under it (ALTER TABLE by a newer replica). */
export function isStalePlan(err: unknown): boolean {
  return (err as { code?: unknown }).code === '0A000' && /cached plan must not change result type/.test((err as Error).message);
}
