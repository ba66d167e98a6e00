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
 * - A string parameter containing U+0000 is refused before it reaches the engine (PostgreSQL's
 *   TEXT cannot hold it; SQLite would store it), so hostile input is refused the same way on both
 *   (DESIGN §9): strip or refuse it at the edge.
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
   * One transaction; every statement issued (through this Sql, by any store) inside fn while it
   * runs joins it (AsyncLocalStorage). Nested calls join the outer one. Commits when fn
   * resolves, rolls back when it throws (or when a statement in it failed, or a nested call threw:
   * see the module comment).
   */
  transaction<T>(fn: () => Promise<T>): Promise<T>;
  /** Whether the calling async context runs inside transaction() (then nothing it writes is committed yet). */
  inTransaction(): boolean;
  /**
   * Inside a transaction: serialize with every other holder of `name` until commit (PostgreSQL
   * pg_advisory_xact_lock on a stable 64-bit hash of name; SQLite: a no-op, as BEGIN IMMEDIATE
   * already serializes writers). Refused outside a transaction on both engines.
   */
  lock(name: string): Promise<void>;
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

export function lockOutsideTransaction(): Error {
  return new Error('Sql.lock() is only allowed inside transaction(): the lock is released at commit');
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

export interface Positional {
  /** the SQL with `$1..$n` */
  text: string;
  /** how many placeholders */
  count: number;
}

/**
 * Rewrite `?` placeholders to `$1..$n`, skipping string literals ('…' with '' escapes; E'…' with
 * backslash escapes), quoted identifiers ("…"), dollar-quoted bodies ($tag$…$tag$), and comments
 * (-- to end of line, /* … *\/ nested as PostgreSQL nests them).
 */
export function toPositional(sql: string): Positional {
  let out = '';
  let count = 0;
  let i = 0;
  let from = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i];
    if (c === '?') {
      out += `${sql.slice(from, i)}$${++count}`;
      i++;
      from = i;
    } else if (c === "'") {
      const escapes = i > 0 && (sql[i - 1] === 'E' || sql[i - 1] === 'e') && (i < 2 || !/[\w$]/.test(sql.charAt(i - 2)));
      i++;
      while (i < n) {
        if (escapes && sql[i] === '\\') i += 2;
        else if (sql[i] === "'") {
          if (sql[i + 1] === "'") i += 2;
          else break;
        } else i++;
      }
      i++;
    } else if (c === '"') {
      i = sql.indexOf('"', i + 1);
      while (i !== -1 && sql[i + 1] === '"') i = sql.indexOf('"', i + 2);
      i = i === -1 ? n : i + 1;
    } else if (c === '-' && sql[i + 1] === '-') {
      i = sql.indexOf('\n', i + 2);
      i = i === -1 ? n : i + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
    } else if (c === '$' && (i === 0 || !/[\w$]/.test(sql.charAt(i - 1)))) {
      const tag = /^\$([A-Za-z_][\w]*)?\$/.exec(sql.slice(i, i + 64));
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        i = end === -1 ? n : end + tag[0].length;
      } else i++;
    } else i++;
  }
  return { text: count === 0 ? sql : out + sql.slice(from), count };
}

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
