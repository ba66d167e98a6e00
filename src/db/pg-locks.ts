/**
 * Session-level advisory locks for PostgreSQL (Sql.exclusive / tryExclusive, src/db/sql.ts): a
 * lock across processes held over slow work that must not keep a transaction open — an upstream
 * token refresh (src/gateway/upstream-token.ts), a housekeeping run (src/runtime/maintenance.ts).
 *
 * - The lock is `pg_advisory_lock` / `pg_try_advisory_lock` on lockKey(name) (the same key space
 *   as Sql.lock's transaction-level locks), taken on a connection of a second, small pool (at most
 *   LOCK_POOL_MAX connections, opened on first use). A holder keeps that connection while fn runs;
 *   fn's own statements use the main pool, so holders can never take every main-pool connection
 *   and then wait for one (a deadlock until the connect timeout).
 * - So at most LOCK_POOL_MAX locks are held or awaited at once in this process. A further caller
 *   waits here, in arrival order, for one of those connections — never in pg-pool's queue, whose
 *   connect timeout would end it in an error that is not a lock timeout (found by review: a 5th
 *   concurrent refresh was answered 503 although the stored token was still valid).
 * - exclusive's wait is bounded by waitMs as a whole: the wait for a lock connection, then that
 *   connection's lock_timeout for what is left; LockTimeoutError beyond either. tryExclusive does
 *   not wait: the lock held elsewhere, or every lock connection in use, is `{ acquired: false }`.
 *   (A connection that cannot be opened — the database unreachable — is an error for both.)
 * - Released by pg_advisory_unlock_all after fn, whatever fn did (the connection holds no other
 *   lock); when that fails the connection is destroyed, which ends the session and its locks (as
 *   the death of the process does).
 */
import pg from 'pg';
import { lockKey, LockTimeoutError, type Held } from './sql.js';

/** connections of the lock pool: one per lock held or awaited at once by this process */
export const LOCK_POOL_MAX = 4;

export interface PgSessionLockOptions {
  url: string;
  connectTimeoutMs?: number;
  onError?: (err: Error) => void;
}

/** LOCK_POOL_MAX turns at the lock pool, handed out in arrival order; a waiter gives up at its bound. */
class Turns {
  #free = LOCK_POOL_MAX;
  readonly #waiting: { take: (got: boolean) => void; timer: NodeJS.Timeout }[] = [];

  /** true when a turn is had within waitMs (0: only if one is free now) */
  take(waitMs: number): boolean | Promise<boolean> {
    if (this.#free > 0 && this.#waiting.length === 0) {
      this.#free -= 1;
      return true;
    }
    if (waitMs <= 0) return false;
    return new Promise((resolve) => {
      const waiter = {
        take: resolve,
        timer: setTimeout(() => {
          this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
          resolve(false);
        }, waitMs),
      };
      this.#waiting.push(waiter);
    });
  }

  give(): void {
    const next = this.#waiting.shift();
    if (!next) {
      this.#free += 1;
      return;
    }
    clearTimeout(next.timer);
    next.take(true);
  }

  /** At close: nobody waits on. */
  close(): void {
    for (const waiter of this.#waiting.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.take(false);
    }
  }
}

export class PgSessionLocks {
  #pool: pg.Pool | undefined;
  readonly #turns = new Turns();

  constructor(private readonly options: PgSessionLockOptions) {}

  #connect(): Promise<pg.PoolClient> {
    if (this.#pool === undefined) {
      const { url, connectTimeoutMs, onError } = this.options;
      this.#pool = new pg.Pool({ connectionString: url, max: LOCK_POOL_MAX, connectionTimeoutMillis: connectTimeoutMs ?? 10_000, application_name: 'mcp-consent-proxy-locks' });
      this.#pool.on('error', (err) => onError?.(err));
    }
    return this.#pool.connect();
  }

  async exclusive<T>(name: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const held = await this.#holding(waitMs, fn, async (client) => {
      // What is left of waitMs after the wait for this connection (at least 1 ms: 0 would be no bound).
      const left = Math.max(1, Math.ceil(waitMs - (performance.now() - started)));
      try {
        await client.query("SELECT set_config('lock_timeout', $1, false)", [`${left}ms`]);
        await client.query('SELECT pg_advisory_lock(CAST($1 AS BIGINT))', [lockKey(name)]);
        return true;
      } catch (err) {
        if ((err as { code?: unknown }).code === '55P03') throw new LockTimeoutError(name, waitMs);
        throw err;
      }
    });
    if (!held.acquired) throw new LockTimeoutError(name, waitMs, `all ${LOCK_POOL_MAX} lock connections of this process stayed in use`);
    return held.value;
  }

  async tryExclusive<T>(name: string, fn: () => Promise<T>): Promise<Held<T>> {
    return await this.#holding(0, fn, async (client) => {
      const { rows } = await client.query<{ ok: number }>('SELECT CASE WHEN pg_try_advisory_lock(CAST($1 AS BIGINT)) THEN 1 ELSE 0 END AS ok', [lockKey(name)]);
      return rows[0]?.ok === 1;
    });
  }

  /**
   * fn while holding the lock that `acquire` takes on a lock-pool connection (when it does);
   * `{ acquired: false }` when no lock connection is free within waitMs.
   */
  async #holding<T>(waitMs: number, fn: () => Promise<T>, acquire: (client: pg.PoolClient) => Promise<boolean>): Promise<Held<T>> {
    if (!(await this.#turns.take(waitMs))) return { acquired: false };
    let client: pg.PoolClient;
    try {
      client = await this.#connect();
    } catch (err) {
      this.#turns.give();
      throw err;
    }
    let broken: Error | undefined;
    // Unheard, a checked-out client's 'error' event would crash the process.
    const onClientError = (err: Error) => {
      broken ??= err;
    };
    client.on('error', onClientError);
    try {
      if (!(await acquire(client))) return { acquired: false };
      try {
        return { acquired: true, value: await fn() };
      } finally {
        try {
          // Every session lock of this connection: it only ever holds this one.
          await client.query('SELECT pg_advisory_unlock_all()');
        } catch (err) {
          broken ??= err as Error; // destroyed on release: the session, and its lock, end
        }
      }
    } finally {
      client.off('error', onClientError);
      client.release(broken ?? false);
      this.#turns.give();
    }
  }

  async close(): Promise<void> {
    this.#turns.close();
    await this.#pool?.end();
  }
}
