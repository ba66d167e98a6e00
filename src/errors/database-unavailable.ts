/**
 * Whether a failure is the database being busy or unreachable for a moment (SQLite's write lock
 * held past busy_timeout, PostgreSQL restarting) rather than a bug: such requests are answered 503
 * with Retry-After (src/errors/render.ts), and such failures are logged at `warn`, not `error`.
 */
/**
 * SQLite could not take its write lock within busy_timeout (src/db/open.ts): another writer (the
 * CLI, a backup) held it; or PostgreSQL could not be reached (below). The service is busy, not broken — the request failed as a whole (its
 * transaction rolled back), so it is answered 503 with Retry-After, not a 500 (issue 13 §3).
 */
export function isDatabaseBusy(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; name?: unknown; cause?: unknown } | undefined;
  // A statement refused because an earlier one failed (src/db/sql.ts TransactionAbortedError): what that one was.
  if (e?.name === 'TransactionAbortedError' && e.cause !== undefined) return isDatabaseBusy(e.cause);
  const code = e?.code;
  if (typeof code === 'string' && (/^SQLITE_(BUSY|LOCKED)/.test(code) || PG_UNAVAILABLE.has(code))) return true;
  return typeof e?.message === 'string' && PG_UNAVAILABLE_MESSAGES.some((m) => (e.message as string).startsWith(m));
}

/**
 * The log level of a failure: `warn` when the database is busy or unavailable — expected while
 * PostgreSQL restarts or another writer holds SQLite's lock, answered 503, and over by itself —
 * else `error` (a bug or a broken deployment someone must look at).
 */
export function failureLevel(err: unknown): 'warn' | 'error' {
  return isDatabaseBusy(err) ? 'warn' : 'error';
}

/**
 * node-postgres' errors without a code that mean the same: the pool's connect timeout (the server
 * restarting), and a connection lost under a statement — PostgreSQL stopped or killed mid-query
 * (`pg_ctl stop -m immediate`: no SQLSTATE reaches the client; found by
 * test/faults/postgres-restart.pg.test.ts, it was a 500). Not 'Connection terminated' alone: that is
 * P closing its own pool.
 */
const PG_UNAVAILABLE_MESSAGES = [
  'Query read timeout', // a gateway read past its bound (PgSqlOptions.hotReadTimeoutMs): the server or network stopped answering
  'timeout exceeded when trying to connect',
  'Connection terminated due to connection timeout',
  'Connection terminated unexpectedly',
  'Client has encountered a connection error and is not queryable',
];

/**
 * PostgreSQL unavailable for a moment (restarting, failing over, out of connections) — the same
 * answer as SQLite busy: 503 with Retry-After, and the request failed as a whole (issue 13 §3).
 * Network codes from node's sockets; SQLSTATEs from PostgreSQL's appendix A (class 08
 * connection exception, 57P01–57P03 shutdown/starting, 53300 too many connections; 40P01 deadlock
 * detected and 40001 serialization failure: the transaction was rolled back whole, a retry is safe;
 * 55P03 lock_not_available: a lock another session holds was not granted within the server's
 * lock_timeout, src/db/pg-lock-timeout.ts — PostgreSQL's counterpart of SQLite busy).
 */
const PG_UNAVAILABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', '08000', '08003', '08006', '08001', '08004', '57P01', '57P02', '57P03', '53300', '40P01', '40001', '55P03']);
