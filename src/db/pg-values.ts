/** Small helpers of the PostgreSQL engine (src/db/pg-sql.ts): DATABASE_URL's scheme, BIGINT values and stale plans. */

export class DatabaseUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseUrlError';
  }
}

/** Whether DATABASE_URL names PostgreSQL. Only the scheme is looked at. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(url);
}

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
