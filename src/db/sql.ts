/**
 * The SQL driver every store talks to (DESIGN §3, §8): one asynchronous interface, two engines —
 * SQLite (better-sqlite3, src/db/sqlite-sql.ts; the embedded default) and PostgreSQL (`pg`,
 * src/db/pg-sql.ts; for replicas). A store's SQL is written ONCE, in the portable subset below,
 * and runs unchanged on both; the schemas (migrations/ and migrations/postgres/) have the same
 * tables and columns so that this holds.
 *
 * Rules the drivers enforce, identically on both engines:
 * - Placeholders are `?` only. The PostgreSQL driver rewrites them to `$1..$n` (once per SQL
 *   text, cached), never inside '…' / E'…' literals, "…" identifiers, $$…$$ bodies or comments.
 * - A string parameter containing U+0000 is refused in a write before it reaches the engine
 *   (PostgreSQL's TEXT cannot hold it; SQLite would store it), so hostile input is refused the
 *   same way on both (DESIGN §9): strip or refuse it at the edge. In a read (`one`, `oneNow`,
 *   `all`) it is looked up as U+FFFD, the character the audit log stores in its place
 *   (src/audit/limits.ts): no other stored string holds either, so a lookup by an id with U+0000
 *   finds nothing instead of failing with a 500 (found by the fuzz suite, issue 13).
 * - Transactions: `transaction(fn)` runs fn with every statement it issues — through this Sql,
 *   from any store, across awaits — in one transaction (AsyncLocalStorage). Nested calls join the
 *   outer transaction; a nested fn that throws marks the whole transaction for rollback (there is
 *   no partial rollback), so the outer call rejects with that error even if it caught it.
 *   Likewise a statement that fails inside a transaction dooms it: later statements in it reject
 *   with TransactionAbortedError, and the transaction rolls back and rejects with the first error
 *   even when fn caught it. (PostgreSQL behaves so by itself — and would answer COMMIT of such a
 *   transaction with a silent ROLLBACK; the SQLite driver imitates it so code tested on SQLite
 *   behaves the same on PostgreSQL.)
 * - `lock(name)` only inside a transaction (both engines refuse it outside one).
 * - `exclusive(name, waitMs, fn)` and `tryExclusive(name, fn)` only outside a transaction (both
 *   engines refuse them inside one): a lock held across slow work that must not keep a
 *   transaction open (an HTTP call, a housekeeping run that audits and calls U).
 *
 * The portable subset (write nothing else in a store):
 * - Types: TEXT; integers (BIGINT columns on PostgreSQL) come back as JS numbers on both engines —
 *   ms timestamps since the epoch computed in JS (`Date.now()`), never `now()`/`datetime()`/
 *   `strftime()`; flags as 0/1 integers, never booleans (better-sqlite3 refuses to bind a boolean,
 *   and a PostgreSQL comparison selected as a column would come back as true/false: select
 *   `CASE WHEN … THEN 1 ELSE 0 END` instead). No REAL/NUMERIC, no BLOB/BYTEA, no JSON columns.
 *   `count(*)`, `max()`/`min()` of integers come back as numbers; `sum()` and `avg()` do not (NUMERIC
 *   on PostgreSQL): write `CAST(sum(x) AS BIGINT)`. Integer parameters must be integers (a
 *   fractional value fails on PostgreSQL's BIGINT); no Date objects or booleans as parameters.
 * - Every `?` needs a type from its context (`col = ?`, `VALUES (?)` into a column). A bare `?` in
 *   a select list or `? IS NULL` cannot be typed on PostgreSQL: write `CAST(? AS TEXT)` /
 *   `CAST(? AS BIGINT)`.
 * - Upserts: `INSERT … ON CONFLICT (cols) DO UPDATE SET c = excluded.c` (qualify the old row as
 *   `table.c`) or `ON CONFLICT DO NOTHING`. Never INSERT OR REPLACE / REPLACE INTO / INSERT OR
 *   IGNORE. New ids and changed rows come back with `RETURNING` (no lastInsertRowid).
 * - No json_* / jsonb functions or operators: JSON is a TEXT column parsed and built in JS.
 * - Case-insensitive search: `lower(col) LIKE ? ESCAPE '\'` with the pattern from `likePattern()`
 *   below (ASCII letters folded in JS). TEXT columns are COLLATE "C" on PostgreSQL, so lower(col)
 *   folds ASCII letters only there as on SQLite; `lower(?)` on a parameter would fold with the
 *   database's locale on PostgreSQL. Never ILIKE, GLOB, REGEXP; plain LIKE is case-sensitive on
 *   PostgreSQL and not on SQLite.
 * - Comparisons and ORDER BY on TEXT are byte order on both (SQLite BINARY, PostgreSQL "C").
 *   NULLs sort first ascending on SQLite and last on PostgreSQL: say `NULLS FIRST`/`NULLS LAST`
 *   when a nullable column is ordered, or coalesce it.
 * - Functions both engines have with the same meaning: coalesce, nullif, lower, upper, length,
 *   substr, abs, count, aggregate max/min, CASE, CAST(… AS TEXT|BIGINT). Not: ifnull, iif,
 *   scalar max(a, b)/min(a, b) (GREATEST/LEAST on PostgreSQL), group_concat/string_agg, printf,
 *   instr, random(), `a IS b` between values (write IS NULL / IS NOT NULL), `+col` index hints
 *   (to keep a column's index out of a plan, compare an expression of it: `(ts || '') >= ?`),
 *   `::` casts, `$n` or named (`@x`, `:x`) parameters, "double-quoted" strings.
 * - `LIMIT ? OFFSET ?` (both present, in that order), `IN (?, ?, …)` with one `?` per value.
 * - Isolation differs: SQLite serializes writers (BEGIN IMMEDIATE), PostgreSQL runs READ COMMITTED.
 *   A read-modify-write that must not interleave with another one takes `lock(name)` first inside
 *   its transaction; prefer a single atomic statement (`UPDATE … WHERE consumed_at IS NULL
 *   RETURNING …`, an upsert). No SELECT … FOR UPDATE (not SQLite).
 * - `one`/`all` are for statements that return rows (SELECT, … RETURNING); `run` for the rest
 *   (better-sqlite3 refuses `one`/`all` on a statement without a result). `one` does not add a
 *   LIMIT: the query must select at most one row by itself (primary key, or LIMIT 1).
 * - No streaming: read large results in keyset pages (`WHERE seq > ? ORDER BY seq LIMIT ?`).
 *
 * Inside a transaction never await work that was started outside it and issues statements (a
 * shared in-flight promise): on SQLite that statement waits for the transaction to end, on
 * PostgreSQL it may wait for a row the transaction holds — either way a deadlock.
 */
import { createHash } from 'node:crypto';

export type Engine = 'sqlite' | 'postgres';

/** A value now, or later: what an engine that may answer synchronously returns (oneNow). */
export type Maybe<T> = T | Promise<T>;

/** `next(value)`, at once when `value` is already there, else when it arrives (no microtask spent on a ready value). */
export function after<T, R>(value: Maybe<T>, next: (value: T) => Maybe<R>): Maybe<R> {
  return value instanceof Promise ? value.then(next) : next(value);
}

export interface Sql {
  readonly engine: Engine;
  /** first row or undefined */
  one<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined>;
  /**
   * `one`, answered synchronously when the engine can (SQLite, while no transaction of another
   * async context holds the connection), else as a promise (PostgreSQL always). For the
   * gateway's per-request reads: every await on the hot path costs a turn of the microtask queue.
   */
  oneNow<T>(sql: string, params?: readonly unknown[]): Maybe<T | undefined>;
  all<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  run(sql: string, params?: readonly unknown[]): Promise<{ changes: number }>;
  /**
   * A write whose answer the caller does not need (no row count, no RETURNING), inside a
   * transaction: PostgreSQL sends it at once, pipelined, and does not wait for its answer — it
   * leaves with the next statement that is waited for, or with COMMIT, in one write and one round
   * trip. Its failure dooms the transaction: the next statement waited for reports it, and COMMIT
   * is refused with it (the caller's transaction() rejects). SQLite, and outside a transaction:
   * `run`, waited for.
   */
  runLater(sql: string, params?: readonly unknown[]): Promise<void>;
  /**
   * A read sent ahead inside a transaction (PostgreSQL: at once, pipelined, corked like `runLater`,
   * so it leaves with the next statement that is waited for); the promise answers when it is
   * answered. Its failure dooms the transaction (on PostgreSQL even when the caller handles it),
   * and the caller must handle the promise's rejection, as it may never await it. Elsewhere: `one`.
   */
  oneLater<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined>;
  /**
   * A bookkeeping write that must never hold a request up behind another writer (last-use times):
   * SQLite tries once without its busy timeout and answers undefined when another connection holds
   * the write lock (the value is written on a later use; found by test/faults/sqlite-busy.test.ts:
   * three such waits held the event loop for 15 s); PostgreSQL runs it (an UPDATE waits only for
   * its row). Inside a transaction it is `run`.
   */
  runIfFree(sql: string, params?: readonly unknown[]): Promise<{ changes: number } | undefined>;
  /**
   * One transaction; every statement issued (through this Sql, by any store) inside fn while it
   * runs joins it (AsyncLocalStorage). Nested calls join the outer one. Commits when fn
   * resolves, rolls back when it throws (or when a statement in it failed, or a nested call threw:
   * see the module comment).
   */
  transaction<T>(fn: () => Promise<T>): Promise<T>;
  /** Whether the calling async context runs inside transaction() (then nothing it writes is committed yet). */
  inTransaction(): boolean;
  /**
   * The calling context's transaction as an opaque identity — the same object for every statement
   * of one transaction (nested calls included), a new one for the next — or undefined outside
   * one, and once a statement in it has failed (it will roll back; nothing remembered for it may
   * answer a read). A key for what a store may remember only until its transaction ends (a row
   * read together with another in one statement: src/store/oidc-models.ts).
   */
  transactionScope(): object | undefined;
  /**
   * Run `fn` once the calling context's transaction has committed — never when it rolls back —
   * or at once (synchronously) outside a transaction. For effects outside the database that may
   * follow only a committed decision (asking U to revoke a token: src/consent/revocation.ts).
   * After a commit fn runs in a later microtask, outside the transaction's context; it should not
   * throw (a throw is reported as a process warning). Registered from the transaction's context
   * after its fn returned but before COMMIT finished, it still waits for the commit.
   * `ifUnknown` instead of `fn` when COMMIT was tried and no answer came back (PostgreSQL: the
   * connection lost before or after it was sent, or an error in place of its answer), so whether
   * it committed is not known: the caller reads the database to decide (UP-08,
   * src/consent/revocation.ts). Never when COMMIT was answered (committed, or ROLLBACK), and never
   * on SQLite, whose COMMIT is a call on this process's own connection: done or not.
   */
  afterCommit(fn: () => void, ifUnknown?: () => void): void;
  /**
   * Inside a transaction: serialize with every other holder of `name` until commit (PostgreSQL
   * pg_advisory_xact_lock on a stable 64-bit hash of name; SQLite: a no-op, as BEGIN IMMEDIATE
   * already serializes writers). Refused outside a transaction on both engines. On the server's
   * PostgreSQL pool the wait is bounded (src/db/pg-lock-timeout.ts, then SQLSTATE 55P03) unless
   * `unbounded`, for a holder that may take long and a wait that must not fail (the first start's
   * key creation, src/runtime/jwks.ts): that lifts the bound for the rest of the transaction.
   */
  lock(name: string, options?: { unbounded?: boolean }): Promise<void>;
  /**
   * Outside any transaction: run fn while holding `name` against every other process on the
   * database (PostgreSQL: a session-level pg_advisory_lock on a connection of a small pool of its
   * own, so fn's statements — on the main pool — never wait for a connection a lock holder keeps;
   * waiting at most waitMs, the wait for a free lock connection included, then LockTimeoutError;
   * SQLite, one process: fn runs at once — callers
   * keep their in-process single-flight). No transaction stays open while fn runs.
   */
  exclusive<T>(name: string, waitMs: number, fn: () => Promise<T>): Promise<T>;
  /**
   * `exclusive` without waiting: fn runs only when `name` is free at once (PostgreSQL
   * pg_try_advisory_lock, and a lock connection free at once; SQLite: always), else resolves
   * `{ acquired: false }` without running it.
   * For jobs one process at a time is enough for (housekeeping).
   */
  tryExclusive<T>(name: string, fn: () => Promise<T>): Promise<Held<T>>;
  close(): Promise<void>;
}

/** A statement issued in a transaction that an earlier failure (or a nested throw) has doomed. */
export class TransactionAbortedError extends Error {
  constructor(cause: unknown) {
    super(`the transaction is aborted by an earlier error (${cause instanceof Error ? cause.message : String(cause)}); it will roll back`, { cause });
    this.name = 'TransactionAbortedError';
  }
}

/** A parameter the portable subset does not allow (a string with U+0000). */
export class SqlParameterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SqlParameterError';
  }
}

/** What tryExclusive() did: ran fn (with its value), or found the lock held and did not. */
export type Held<T> = { acquired: true; value: T } | { acquired: false };

/** exclusive() waited its bound for a lock another process holds (or, `why`, for a connection to take it on). */
export class LockTimeoutError extends Error {
  constructor(name: string, waitMs: number, why = 'that another process holds') {
    super(`waited ${waitMs} ms for the lock "${name}" ${why}`);
    this.name = 'LockTimeoutError';
  }
}

export function exclusiveInTransaction(): Error {
  return new Error('Sql.exclusive() is not allowed inside transaction(): it is for work that must not hold a transaction open');
}

export function lockOutsideTransaction(): Error {
  return new Error('Sql.lock() is only allowed inside transaction(): the lock is released at commit');
}

/** A committed transaction's afterCommit callbacks, each in a microtask of its own (outside the transaction's context). */
export function runAfterCommit(callbacks: readonly (() => void)[]): void {
  for (const fn of callbacks) {
    void Promise.resolve()
      .then(fn)
      .catch((err: unknown) => process.emitWarning(`an afterCommit callback threw: ${err instanceof Error ? err.message : String(err)}`));
  }
}

/** A read's parameters with U+0000 looked up as U+FFFD (see the module comment); no copy unless needed. */
export function lookupParams(params: readonly unknown[]): readonly unknown[] {
  let out: unknown[] | undefined;
  for (let i = 0; i < params.length; i++) {
    const p = params[i];
    if (typeof p === 'string' && p.includes('\u0000')) (out ??= [...params])[i] = p.replaceAll('\u0000', '\uFFFD');
  }
  return out ?? params;
}

/** Refuse parameters outside the portable subset; one pass, no copy. */
export function checkParams(params: readonly unknown[]): void {
  for (let i = 0; i < params.length; i++) {
    const p = params[i];
    if (typeof p === 'string' && p.includes('\u0000')) {
      throw new SqlParameterError(`parameter ${i + 1} contains U+0000, which PostgreSQL TEXT cannot store; refuse or strip it before the store`);
    }
  }
}

/**
 * The advisory-lock key of `name`: the first 8 bytes of SHA-256(name) as a signed 64-bit integer
 * (PostgreSQL's bigint), in decimal. Stable across processes, versions and replicas.
 */
export function lockKey(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest().readBigInt64BE(0).toString();
}

/**
 * A LIKE pattern matching `term` anywhere, for `lower(col) LIKE ? ESCAPE '\'`: the LIKE
 * metacharacters of the term escaped, its ASCII letters lower-cased (lower() folds only those on
 * SQLite and on PostgreSQL's COLLATE "C" columns).
 */
export function likePattern(term: string): string {
  const escaped = term.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/[A-Z]/g, (c) => c.toLowerCase());
  return `%${escaped}%`;
}

export { toPositional, type Positional } from './placeholders.js';

/** A Map that forgets its oldest entry beyond `max` (statement and placeholder caches). */
export class BoundedCache<V> {
  readonly #map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    return this.#map.get(key);
  }
  set(key: string, value: V): void {
    if (this.#map.size >= this.max) {
      const oldest = this.#map.keys().next();
      if (!oldest.done) this.#map.delete(oldest.value);
    }
    this.#map.set(key, value);
  }
  get size(): number {
    return this.#map.size;
  }
}
