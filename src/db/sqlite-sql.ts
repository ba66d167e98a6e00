/**
 * The SQLite engine of the Sql interface (src/db/sql.ts) over better-sqlite3: one connection
 * (opened by src/db/open.ts: WAL, foreign keys, busy timeout), prepared statements cached by SQL
 * text, and transactions as `BEGIN IMMEDIATE` … `COMMIT`/`ROLLBACK` on that connection (IMMEDIATE
 * takes the write lock at once, so another process — the CLI next to the server — waits at BEGIN
 * instead of failing halfway; it also makes `lock()` a no-op here).
 *
 * One connection means one transaction at a time, and better-sqlite3 runs every statement at
 * once, synchronously. So while a transaction is open (across fn's awaits), a statement issued
 * from OUTSIDE its async context would silently join it — and be rolled back with it, or commit
 * another request's half-done work. Rule: such a statement (and another transaction()) waits
 * until the open transaction has ended, then runs on its own. The transaction's context is an
 * AsyncLocalStorage marker; with no transaction open the check is one null comparison.
 *
 * `oneSync` (and `oneNow` built on it) answers a read synchronously — the gateway's hot path makes
 * no promise on SQLite — except while a transaction of another async context holds the connection:
 * then it returns NOT_NOW (oneNow falls back to the waiting `one`).
 *
 * `db` exposes the better-sqlite3 handle for the few synchronous users that remain (migrate() at
 * start, tests of SQLite's own behaviour). They bypass the waiting rule: use it only where no Sql
 * transaction can be open at that moment (start-up before serving).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type Database from 'better-sqlite3';
import { openDatabase, type Db, type OpenOptions } from './open.js';
import { startCheckpointer, type Checkpointer } from './checkpointer.js';
import { BoundedCache, checkParams, exclusiveInTransaction, lockOutsideTransaction, lookupParams, runAfterCommit, TransactionAbortedError, type Held, type Maybe, type Sql } from './sql.js';

/** oneSync's answer while another context's transaction holds the connection. */
export const NOT_NOW: unique symbol = Symbol('not now');

/** Distinct SQL texts kept prepared; stores use a few dozen, dynamic filters a few hundred. */
const STATEMENT_CACHE_MAX = 1000;

class Tx {
  /** the first error that doomed the transaction (a failed statement, a nested fn that threw) */
  failed: unknown = undefined;
  /** afterCommit callbacks, run once COMMIT succeeded */
  readonly committed: (() => void)[] = [];
  readonly done: Promise<void>;
  end!: () => void;
  constructor() {
    this.done = new Promise((resolve) => {
      this.end = resolve;
    });
  }
}

export class SqliteSql implements Sql {
  readonly engine = 'sqlite' as const;
  readonly #statements = new BoundedCache<Database.Statement>(STATEMENT_CACHE_MAX);
  readonly #context = new AsyncLocalStorage<Tx>();
  #active: Tx | null = null;
  /** BEGIN IMMEDIATE / COMMIT / ROLLBACK, prepared once (an exec() parses them every time: ~10 µs a transaction) */
  readonly #control: { begin: Database.Statement; commit: Database.Statement; rollback: Database.Statement };

  #checkpointer: Checkpointer | undefined;

  /** `db` is owned from now on: close() closes it. */
  constructor(readonly db: Db) {
    this.#control = { begin: db.prepare('BEGIN IMMEDIATE'), commit: db.prepare('COMMIT'), rollback: db.prepare('ROLLBACK') };
  }

  #prepare(sql: string): Database.Statement {
    let stmt = this.#statements.get(sql);
    if (stmt === undefined) {
      stmt = this.db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  /**
   * Whether a statement may run now: no transaction is open, or we are inside it (then throws if
   * it is doomed). Callers loop `while (!this.#ready()) await …done` and run the statement in the
   * same synchronous stretch as the last check, so no transaction can begin in between.
   */
  #ready(): boolean {
    const tx = this.#active;
    if (tx === null) return true;
    if (this.#context.getStore() !== tx) return false;
    if (tx.failed !== undefined) throw new TransactionAbortedError(tx.failed);
    return true;
  }

  /** The open transaction's end (only called when #ready() said no). */
  get #turn(): Promise<void> {
    return this.#active!.done;
  }

  /** Run one statement; a failure inside a transaction dooms it (as PostgreSQL does). */
  #exec<R>(sql: string, params: readonly unknown[], call: (stmt: Database.Statement) => R): R {
    try {
      checkParams(params);
      return call(this.#prepare(sql));
    } catch (err) {
      const tx = this.#active;
      if (tx !== null && tx.failed === undefined && this.#context.getStore() === tx) tx.failed = err;
      throw err;
    }
  }

  async one<T>(sql: string, raw: readonly unknown[] = []): Promise<T | undefined> {
    while (!this.#ready()) await this.#turn;
    const params = lookupParams(raw);
    return this.#exec(sql, params, (s) => s.get(...params) as T | undefined);
  }

  /**
   * `one` at once, or NOT_NOW while a transaction of another async context holds the connection
   * (the statement would join it). Outside that case it is exactly what `one` does, minus the
   * promise.
   */
  oneSync<T>(sql: string, raw: readonly unknown[] = []): T | undefined | typeof NOT_NOW {
    if (!this.#ready()) return NOT_NOW;
    const params = lookupParams(raw);
    return this.#exec(sql, params, (s) => s.get(...params) as T | undefined);
  }

  oneNow<T>(sql: string, params: readonly unknown[] = []): Maybe<T | undefined> {
    const row = this.oneSync<T>(sql, params);
    return row === NOT_NOW ? this.one<T>(sql, params) : row;
  }

  inTransaction(): boolean {
    return this.#active !== null && this.#context.getStore() === this.#active;
  }

  transactionScope(): object | undefined {
    return this.inTransaction() && this.#active!.failed === undefined ? this.#active! : undefined;
  }

  afterCommit(fn: () => void, _ifUnknown?: () => void): void {
    // A COMMIT here is synchronous on this process's connection: committed or not, never unknown.
    if (this.inTransaction()) this.#active!.committed.push(fn);
    else fn();
  }

  async all<T>(sql: string, raw: readonly unknown[] = []): Promise<T[]> {
    while (!this.#ready()) await this.#turn;
    const params = lookupParams(raw);
    return this.#exec(sql, params, (s) => s.all(...params) as T[]);
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<{ changes: number }> {
    while (!this.#ready()) await this.#turn;
    return this.#exec(sql, params, (s) => ({ changes: s.run(...params).changes }));
  }

  oneLater<T>(sql: string, params: readonly unknown[] = []): Promise<T | undefined> {
    return this.one<T>(sql, params);
  }

  async runLater(sql: string, params: readonly unknown[] = []): Promise<void> {
    await this.run(sql, params);
  }

  async runIfFree(sql: string, params: readonly unknown[] = []): Promise<{ changes: number } | undefined> {
    while (!this.#ready()) await this.#turn;
    if (this.#active !== null) return this.run(sql, params);
    const busyTimeout = this.db.pragma('busy_timeout', { simple: true }) as number;
    this.db.pragma('busy_timeout = 0');
    try {
      return this.#exec(sql, params, (s) => ({ changes: s.run(...params).changes }));
    } catch (err) {
      if (/^SQLITE_(BUSY|LOCKED)/.test(String((err as { code?: unknown }).code))) return undefined;
      throw err;
    } finally {
      this.db.pragma(`busy_timeout = ${Number(busyTimeout)}`);
    }
  }

  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    const current = this.#context.getStore();
    if (current !== undefined && current === this.#active) {
      // Nested: join. There is no partial rollback, so a throw dooms the whole transaction.
      try {
        return await fn();
      } catch (err) {
        current.failed ??= err;
        throw err;
      }
    }
    // Not inside the open transaction (if any): wait for it; claim the connection synchronously.
    while (this.#active !== null) await this.#active.done;
    const tx = new Tx();
    this.#active = tx;
    try {
      this.#control.begin.run();
      let result: T;
      try {
        result = await this.#context.run(tx, fn);
      } catch (err) {
        tx.failed ??= err;
      }
      if (tx.failed !== undefined) throw tx.failed;
      this.#control.commit.run();
      runAfterCommit(tx.committed);
      return result!;
    } catch (err) {
      if (this.db.inTransaction) this.#control.rollback.run();
      throw err;
    } finally {
      this.#active = null;
      tx.end();
    }
  }

  async lock(_name: string, _options?: { unbounded?: boolean }): Promise<void> {
    const tx = this.#active;
    if (tx === null || this.#context.getStore() !== tx) throw lockOutsideTransaction();
    if (tx.failed !== undefined) throw new TransactionAbortedError(tx.failed);
    // BEGIN IMMEDIATE holds SQLite's one write lock until COMMIT: every writer is serialized.
  }

  /** One process: nothing to serialize with but itself, which its callers' single-flight does. */
  async exclusive<T>(_name: string, _waitMs: number, fn: () => Promise<T>): Promise<T> {
    if (this.inTransaction()) throw exclusiveInTransaction();
    return await fn();
  }

  async tryExclusive<T>(_name: string, fn: () => Promise<T>): Promise<Held<T>> {
    if (this.inTransaction()) throw exclusiveInTransaction();
    return { acquired: true, value: await fn() };
  }

  /**
   * WAL checkpoints in a worker thread from now on, not inside some request's commit
   * (src/db/checkpointer.ts); the server calls it, the CLI does not. No-op in memory.
   */
  checkpointInBackground(onError: (message: string) => void): void {
    if (this.#checkpointer || this.db.memory || this.db.readonly) return;
    this.#checkpointer = startCheckpointer(this.db, this.db.name, onError);
  }

  async close(): Promise<void> {
    while (this.#active !== null) await this.#active.done;
    await this.#checkpointer?.stop();
    if (this.db.open) this.db.close();
  }
}

/** Open (or create) the SQLite database at `path` behind the Sql interface. */
export function openSqliteSql(path: string, options: OpenOptions = {}): SqliteSql {
  return new SqliteSql(openDatabase(path, options));
}
