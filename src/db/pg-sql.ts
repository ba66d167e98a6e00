/**
 * The PostgreSQL engine of the Sql interface (src/db/sql.ts) over node-postgres (`pg`), for
 * replicas (DESIGN §4 `DATABASE_URL`, §8).
 *
 * - DATABASE_URL: `postgres://…` or `postgresql://…`; `?host=/socket/dir` connects through that
 *   unix socket directory (and any libpq-style parameter pg understands may follow). Any other
 *   scheme is refused, without echoing the URL (it may hold a password).
 * - A Pool of at most `poolMax` connections (DATABASE_POOL_MAX; default 10). Waiting for a free
 *   connection is bounded (`connectTimeoutMs`) so an exhausted pool fails a request instead of
 *   hanging it. An idle connection that breaks is dropped by the pool and reported to `onError`.
 * - Statements outside a transaction go to the pool. `transaction(fn)` checks out one client,
 *   BEGIN … COMMIT, and every statement issued in fn's async context (AsyncLocalStorage) runs on
 *   that client, pipelined (src/db/pg-transaction.ts: BEGIN leaves with the first statement,
 *   `runLater` writes and `oneLater` reads with the next statement waited for or COMMIT; a
 *   `/token` refresh makes 5 round trips instead of 10, a registration 3 instead of 7); the
 *   client is released afterwards — destroyed instead when its connection broke or ROLLBACK
 *   failed (a broken connection is never handed to the next request), and its 'error' event is
 *   listened to while it is checked out (unheard, it would crash the process).
 * - `?` placeholders become `$1..$n` (src/db/sql.ts toPositional), cached per SQL text.
 * - BIGINT (INT8) values come back as JS numbers, through a type parser set on this pool's own
 *   types (pg's global parsers are untouched); a value beyond 2^53 fails the query rather than lose
 *   precision.
 * - Named prepared statements, one per SQL text (the name is a hash of the text), parsed once per
 *   connection: for a one-row SELECT by primary key they beat unnamed statements (Parse + plan on
 *   every call) by about a third in throughput and latency (test/bench/pg-prepared.ts; figures in
 *   the commit that chose them). `preparedStatements: false` turns them off, for a connection
 *   pooler in transaction mode that does not track them (PgBouncer before 1.21).
 * - A prepared `SELECT *` / `RETURNING *` fails with "cached plan must not change result type" once
 *   another replica's migration changed the table (a rolling deploy). The driver then renames all
 *   its statements (a new epoch, so every connection parses afresh) and, outside a transaction,
 *   retries the statement once (safe: the error comes before the statement ran); inside one the
 *   transaction fails (PostgreSQL has aborted it) and the next one works. Stores name the columns they read, which avoids the failure altogether.
 * - `exclusive` / `tryExclusive`: session-level advisory locks on a small pool of their own
 *   (src/db/pg-locks.ts).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import pg from 'pg';
import { PgSessionLocks } from './pg-locks.js';
import { Tx } from './pg-transaction.js';
import { boundSessionWaits } from './pg-lock-timeout.js';
import { DatabaseUrlError, isPostgresUrl, isStalePlan, parseInt8 } from './pg-values.js';
import { BoundedCache, checkParams, exclusiveInTransaction, lockKey, lockOutsideTransaction, lookupParams, runAfterCommit, toPositional, TransactionAbortedError, type Held, type Sql } from './sql.js';

const INT8_OID = 20;
const PLACEHOLDER_CACHE_MAX = 1000;

export interface PgSqlOptions {
  /** DATABASE_URL */
  url: string;
  /** DATABASE_POOL_MAX: connections this process may hold (default 10) */
  poolMax?: number;
  /** how long a statement waits for a free pool connection before failing (default 10 s) */
  connectTimeoutMs?: number;
  /** errors of idle pool connections (the pool has already dropped the connection) */
  onError?: (err: Error) => void;
  /** named prepared statements (default true); false for poolers that cannot carry them */
  preparedStatements?: boolean;
  /** bound lock waits on every connection (src/db/pg-lock-timeout.ts): the server passes it, the CLI does not */
  lockTimeoutMs?: number;
  /**
   * The gateway's per-request reads (`oneNow`): pg's client-side query_timeout, after which the
   * read fails as "database unavailable" and its connection is closed — a server or network that
   * stops answering without resetting (SIGSTOP, a partition) must not hold every gateway request
   * behind one shared read. The server passes it; other statements have no such bound.
   */
  hotReadTimeoutMs?: number;
}

interface Statement {
  /** the SQL with $1..$n */
  text: string;
  /** hash of the text; the statement's name is `s<epoch>_<hash>` */
  hash: string;
}

export { DatabaseUrlError, isPostgresUrl } from './pg-values.js';

export class PgSql implements Sql {
  readonly engine = 'postgres' as const;
  /** the pool, for the migration runner's session-level advisory lock (src/db/migrate-pg.ts) */
  readonly pool: pg.Pool;
  readonly #context = new AsyncLocalStorage<Tx>();
  readonly #statements = new BoundedCache<Statement>(PLACEHOLDER_CACHE_MAX);
  readonly #prepared: boolean;
  readonly #hotReadTimeoutMs: number | undefined;
  #epoch = 0;
  readonly #locks: PgSessionLocks;

  constructor(options: PgSqlOptions) {
    this.#locks = new PgSessionLocks(options);
    if (!isPostgresUrl(options.url)) throw new DatabaseUrlError('DATABASE_URL must start with postgres:// or postgresql://');
    const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    const types = new pg.TypeOverrides();
    types.setTypeParser(INT8_OID, parseInt8);
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolMax ?? 10,
      connectionTimeoutMillis: connectTimeoutMs,
      application_name: 'mcp-consent-proxy',
      types,
      pipeline: true,
      ...(options.lockTimeoutMs === undefined ? {} : { onConnect: boundSessionWaits(options.lockTimeoutMs, connectTimeoutMs) }),
    });
    this.#prepared = options.preparedStatements ?? true;
    this.#hotReadTimeoutMs = options.hotReadTimeoutMs;
    const onError = options.onError;
    this.pool.on('error', (err) => onError?.(err));
  }

  #statement(sql: string): Statement {
    let stmt = this.#statements.get(sql);
    if (stmt === undefined) {
      const text = toPositional(sql).text;
      stmt = { text, hash: createHash('sha256').update(text).digest('hex').slice(0, 32) };
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  #config(stmt: Statement, values: unknown[], timeoutMs?: number): pg.QueryConfig {
    const config: pg.QueryConfig & { query_timeout?: number } = this.#prepared ? { name: `s${this.#epoch}_${stmt.hash}`, text: stmt.text, values } : { text: stmt.text, values };
    if (timeoutMs !== undefined) config.query_timeout = timeoutMs;
    return config;
  }

  async #query(sql: string, params: readonly unknown[], timeoutMs?: number, later = false): Promise<pg.QueryResult> {
    checkParams(params);
    const stmt = this.#statement(sql);
    const values = params as unknown[];
    const tx = this.#context.getStore();
    if (tx === undefined || tx.closing) {
      try {
        return await this.pool.query(this.#config(stmt, values, timeoutMs));
      } catch (err) {
        if (!isStalePlan(err)) throw err;
        this.#epoch++;
        return await this.pool.query(this.#config(stmt, values, timeoutMs));
      }
    }
    if (tx.failed !== undefined) throw new TransactionAbortedError(tx.failed);
    const sent = tx.send(this.#config(stmt, values), later);
    try {
      return await sent;
    } catch (err) {
      if (isStalePlan(err)) this.#epoch++; // the failure itself dooms tx (Tx.send)
      // Refused because a statement sent before it failed: report that one.
      if (tx.failed !== undefined && tx.failed !== err) throw new TransactionAbortedError(tx.failed);
      throw err;
    }
  }

  async one<T>(sql: string, params: readonly unknown[] = []): Promise<T | undefined> {
    return (await this.#query(sql, lookupParams(params))).rows[0] as T | undefined;
  }

  /** Always a round trip: a promise (bounded by hotReadTimeoutMs outside a transaction). */
  async oneNow<T>(sql: string, params: readonly unknown[] = []): Promise<T | undefined> {
    return (await this.#query(sql, lookupParams(params), this.#hotReadTimeoutMs)).rows[0] as T | undefined;
  }

  inTransaction(): boolean {
    const tx = this.#context.getStore();
    return tx !== undefined && !tx.closing;
  }

  transactionScope(): object | undefined {
    const tx = this.#context.getStore();
    return tx !== undefined && !tx.closing && tx.failed === undefined ? tx : undefined;
  }

  afterCommit(fn: () => void, ifUnknown?: () => void): void {
    // Also while COMMIT is under way (closing): the callback waits for its outcome.
    const tx = this.#context.getStore();
    if (tx !== undefined && !tx.finished) {
      tx.committed.push(fn);
      if (ifUnknown) tx.unknown.push(ifUnknown);
    } else fn();
  }

  async all<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return (await this.#query(sql, lookupParams(params))).rows as T[];
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<{ changes: number }> {
    return { changes: (await this.#query(sql, params)).rowCount ?? 0 };
  }

  /** Sent now, answered later (Tx.send): its failure — one raised before sending included (review 2026-12-06) — dooms the transaction. */
  #later(tx: Tx, sql: string, params: readonly unknown[]): Promise<pg.QueryResult> {
    const sent = this.#query(sql, params, undefined, true);
    sent.catch((err: unknown) => {
      tx.failed ??= err;
    });
    return sent;
  }

  oneLater<T>(sql: string, params: readonly unknown[] = []): Promise<T | undefined> {
    const tx = this.#context.getStore();
    if (tx === undefined || tx.closing) return this.one<T>(sql, params);
    return this.#later(tx, sql, lookupParams(params)).then((result) => result.rows[0] as T | undefined);
  }

  runLater(sql: string, params: readonly unknown[] = []): Promise<void> {
    const tx = this.#context.getStore();
    if (tx === undefined || tx.closing) return this.run(sql, params).then(() => undefined);
    void this.#later(tx, sql, params); // not thrown here: COMMIT is refused with it
    return Promise.resolve();
  }

  runIfFree(sql: string, params: readonly unknown[] = []): Promise<{ changes: number } | undefined> {
    return this.run(sql, params);
  }

  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    const current = this.#context.getStore();
    if (current !== undefined && !current.closing) {
      // Nested: join. There is no partial rollback, so a throw dooms the whole transaction.
      try {
        return await fn();
      } catch (err) {
        current.failed ??= err;
        throw err;
      }
    }
    const client = await this.pool.connect();
    const tx = new Tx(client);
    let broken: Error | undefined;
    // A checked-out client whose connection drops emits 'error'; unheard, that event would crash
    // the process. The failing query rejects as well; the client is destroyed on release.
    const onClientError = (err: Error) => {
      broken ??= err;
    };
    client.on('error', onClientError);
    try {
      let result: T;
      try {
        result = await this.#context.run(tx, fn);
      } catch (err) {
        tx.failed ??= err;
      }
      tx.closing = true;
      if (tx.failed !== undefined) throw tx.failed;
      if (tx.begun) await tx.commit();
      tx.finished = true;
      runAfterCommit(tx.committed);
      return result!;
    } catch (err) {
      tx.closing = true;
      tx.finished = true;
      // COMMIT tried, no answer: PostgreSQL may have committed (UP-08). Its ROLLBACK below fails on the lost connection or finds nothing to undo.
      if (tx.commitUnanswered) runAfterCommit(tx.unknown);
      if (tx.begun) {
        try {
          await tx.send('ROLLBACK');
        } catch (rollbackError) {
          broken = rollbackError as Error;
        }
      } else tx.flush();
      throw err;
    } finally {
      client.off('error', onClientError);
      client.release(broken ?? false);
    }
  }

  async lock(name: string, options: { unbounded?: boolean } = {}): Promise<void> {
    const tx = this.#context.getStore();
    if (tx === undefined || tx.closing) throw lockOutsideTransaction();
    // lock_timeout 0 as SET LOCAL would: for the rest of this transaction only
    if (options.unbounded) await this.#query("SELECT set_config('lock_timeout', '0', true)", []);
    await this.#query('SELECT pg_advisory_xact_lock(CAST(? AS BIGINT))', [lockKey(name)]);
  }

  async exclusive<T>(name: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
    if (this.inTransaction()) throw exclusiveInTransaction();
    return await this.#locks.exclusive(name, waitMs, fn);
  }

  async tryExclusive<T>(name: string, fn: () => Promise<T>): Promise<Held<T>> {
    if (this.inTransaction()) throw exclusiveInTransaction();
    return await this.#locks.tryExclusive(name, fn);
  }

  async close(): Promise<void> {
    await this.#locks.close();
    await this.pool.end();
  }
}

export function openPgSql(options: PgSqlOptions): PgSql {
  return new PgSql(options);
}
