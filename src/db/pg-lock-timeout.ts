/**
 * Bounded lock waits on PostgreSQL (the counterpart of SQLite's busy timeout, src/db/open.ts):
 * without a bound, a lock another session holds — an `ALTER TABLE`, `VACUUM FULL`, `LOCK TABLE`
 * or a transaction left open by hand — made every request touching that table wait for as long as
 * it lasted. The server's pool (not the CLI's: an operator's command may wait) sets
 * `lock_timeout` on each new connection before handing it out (pg-pool's `onConnect`), so a wait
 * ends with SQLSTATE 55P03, answered 503 with Retry-After like any unavailable database
 * (src/errors/database-unavailable.ts).
 *
 * Only when the session has none: a `lock_timeout` the operator set — the URL's
 * `options=-c lock_timeout=…`, PGOPTIONS, `ALTER ROLE … SET`, `ALTER DATABASE … SET` — is kept
 * (one that means "no bound" is any long one, e.g. `1d`). A SET after connecting, not a startup
 * parameter, so a pooler that refuses unknown startup parameters still connects.
 *
 * Waits that must not fail for waiting lift it: migrations (src/db/migrate-pg.ts) and the first
 * start's key creation (Sql.lock's `unbounded`, src/runtime/jwks.ts). exclusive() has its own
 * bound (src/db/pg-locks.ts).
 */
import type pg from 'pg';

/** The server's bound on a lock wait, as SQLite's busy timeout. */
export const LOCK_TIMEOUT_MS = 5_000;

/**
 * How soon PostgreSQL notices a client that gave up on a statement — a gateway read past its
 * client-side bound (PgSqlOptions.hotReadTimeoutMs), whose connection pg then closes — and cancels
 * it (`client_connection_check_interval`, PostgreSQL 14+; older servers skip it). Without it that
 * statement keeps a server process waiting (on a lock: as long as the session's lock_timeout,
 * which may be the operator's and long), one more for each read that timed out.
 */
export const CLIENT_CHECK_INTERVAL_MS = 1_000;

// Each only when the session has none (a missing setting — PostgreSQL < 14 — reads as NULL).
const BOUND_UNLESS_SET = `SELECT
  CASE WHEN current_setting('lock_timeout') = '0' THEN set_config('lock_timeout', $1, false) END,
  CASE WHEN current_setting('client_connection_check_interval', true) = '0' THEN set_config('client_connection_check_interval', $2, false) END`;

/**
 * pg-pool's `onConnect`: bound the new connection's lock waits, and set how soon the server
 * notices a client that gave up, before it is handed out (a failure
 * fails the checkout), the SET itself bounded by `queryTimeoutMs` (pg-pool's connect timeout has
 * ended by then). Not `verify`: pg-pool runs that after removing its 'error' listener, so a
 * connection breaking during the SET would raise an unheard 'error' and end the process.
 */
export function boundSessionWaits(ms: number, queryTimeoutMs: number): (client: pg.ClientBase) => Promise<void> {
  const values = [`${Math.max(1, Math.round(ms))}ms`, `${CLIENT_CHECK_INTERVAL_MS}ms`];
  const config: pg.QueryConfig & { query_timeout: number } = { text: BOUND_UNLESS_SET, values, query_timeout: queryTimeoutMs };
  return async (client) => {
    await client.query(config);
  };
}
