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
 * - exclusive's wait is bounded by that connection's lock_timeout (waitMs; LockTimeoutError
 *   beyond); tryExclusive does not wait.
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

export class PgSessionLocks {
  #pool: pg.Pool | undefined;

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
    const held = await this.#holding(fn, async (client) => {
      try {
        await client.query("SELECT set_config('lock_timeout', $1, false)", [`${Math.max(1, Math.ceil(waitMs))}ms`]);
        await client.query('SELECT pg_advisory_lock(CAST($1 AS BIGINT))', [lockKey(name)]);
        return true;
      } catch (err) {
        if ((err as { code?: unknown }).code === '55P03') throw new LockTimeoutError(name, waitMs);
        throw err;
      }
    });
    return (held as { value: T }).value;
  }

  async tryExclusive<T>(name: string, fn: () => Promise<T>): Promise<Held<T>> {
    return await this.#holding(fn, async (client) => {
      const { rows } = await client.query<{ ok: number }>('SELECT CASE WHEN pg_try_advisory_lock(CAST($1 AS BIGINT)) THEN 1 ELSE 0 END AS ok', [lockKey(name)]);
      return rows[0]?.ok === 1;
    });
  }

  /** fn while holding the lock that `acquire` takes on a lock-pool connection (when it does). */
  async #holding<T>(fn: () => Promise<T>, acquire: (client: pg.PoolClient) => Promise<boolean>): Promise<Held<T>> {
    const client = await this.#connect();
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
    }
  }

  async close(): Promise<void> {
    await this.#pool?.end();
  }
}
