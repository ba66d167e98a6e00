/**
 * rate_limits table (PostgreSQL only, migrations/postgres/0001-schema.sql): the per-client-IP
 * budgets of /register, /authorize and /token (SEC-01, REG-11) shared by every replica (DESIGN §8,
 * issue 11) — an express-rate-limit Store, one per budget (`name`).
 *
 * - One fixed window per key, starting at the key's first hit; `hits` counts the requests in it.
 * - Every request is ONE atomic upsert (`INSERT … ON CONFLICT (key) DO UPDATE … RETURNING`):
 *   PostgreSQL locks the conflicting row for the update, so concurrent requests on any number of
 *   replicas each see a distinct count and no hit is lost (no read-modify-write to interleave).
 *   A window that has ended restarts at 1 in the same statement.
 * - Keys are bounded and carry no address: SHA-256 of the budget's name and the client key
 *   (express-rate-limit's: the client IP, IPv6 by /56), in hex.
 * - Times are this replica's clock (`Date.now()`, the portable subset of src/db/sql.ts): clock
 *   skew between replicas only moves a window's end by that much.
 * - Rows whose window ended are deleted by housekeeping (`purgeEnded`, src/runtime/maintenance.ts).
 * - A database error fails the request (express-rate-limit's default, passOnStoreError false):
 *   a budget that cannot be counted is not waived.
 * SQLite is one process: its budgets stay in express-rate-limit's memory store.
 */
import { createHash } from 'node:crypto';
import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import type { Sql } from '../db/sql.js';

const HIT = `INSERT INTO rate_limits (key, window_start, hits) VALUES (?, ?, 1)
  ON CONFLICT (key) DO UPDATE SET
    hits = CASE WHEN rate_limits.window_start <= ? THEN 1 ELSE rate_limits.hits + 1 END,
    window_start = CASE WHEN rate_limits.window_start <= ? THEN excluded.window_start ELSE rate_limits.window_start END
  RETURNING hits, window_start`;

export interface RateLimitStoreOptions {
  /** the clock (tests pass a fake one) */
  now?: () => number;
}

/** The express-rate-limit Store of budget `name` over the rate_limits table. */
export class SqlRateLimitStore implements Store {
  readonly localKeys = false;
  readonly prefix: string;
  #windowMs = 60_000;
  readonly #now: () => number;

  constructor(
    private readonly sql: Sql,
    name: string,
    options: RateLimitStoreOptions = {},
  ) {
    this.prefix = `${name}:`;
    this.#now = options.now ?? Date.now;
  }

  init(options: Options): void {
    this.#windowMs = options.windowMs;
  }

  /** The stored key of a client key: bounded, and no address in the table. */
  key(clientKey: string): string {
    return createHash('sha256').update(this.prefix).update(clientKey).digest('hex');
  }

  async increment(clientKey: string): Promise<ClientRateLimitInfo> {
    const now = this.#now();
    const ended = now - this.#windowMs;
    const row = (await this.sql.one<{ hits: number; window_start: number }>(HIT, [this.key(clientKey), now, ended, ended])) as { hits: number; window_start: number };
    return { totalHits: row.hits, resetTime: new Date(row.window_start + this.#windowMs) };
  }

  async get(clientKey: string): Promise<ClientRateLimitInfo | undefined> {
    const row = await this.sql.one<{ hits: number; window_start: number }>('SELECT hits, window_start FROM rate_limits WHERE key = ? AND window_start > ?', [
      this.key(clientKey),
      this.#now() - this.#windowMs,
    ]);
    return row && { totalHits: row.hits, resetTime: new Date(row.window_start + this.#windowMs) };
  }

  async decrement(clientKey: string): Promise<void> {
    await this.sql.run('UPDATE rate_limits SET hits = hits - 1 WHERE key = ? AND hits > 0', [this.key(clientKey)]);
  }

  async resetKey(clientKey: string): Promise<void> {
    await this.sql.run('DELETE FROM rate_limits WHERE key = ?', [this.key(clientKey)]);
  }
}

/** Delete the rows whose window started at or before `before` (ms); resolves with how many. */
export async function purgeEndedRateLimits(sql: Sql, before: number): Promise<number> {
  return (await sql.run('DELETE FROM rate_limits WHERE window_start <= ?', [before])).changes;
}
