/**
 * The Sql driver on PostgreSQL (src/db/pg-sql.ts): the cases every driver passes
 * (test/helpers/sql-driver-cases.ts; the SQLite run is sql-driver.test.ts), then what only the
 * pool-based driver has: advisory locks across connections, clients released after failures,
 * DATABASE_URL forms, BIGINT limits, and prepared statements across a schema change.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseUrlError, isPostgresUrl, PgSql } from '../../src/db/pg-sql.js';
import { clusterSocket, loseCommitAnswers, pgDatabasePerFile, withDatabase } from '../helpers/pg.js';
import { gate, sqlDriverCases } from '../helpers/sql-driver-cases.js';

const db = pgDatabasePerFile('sql_driver');

sqlDriverCases('postgres', async () => new PgSql({ url: db.url }));

describe('PostgreSQL driver', () => {
  let sql: PgSql;
  beforeAll(async () => {
    sql = new PgSql({ url: db.url, poolMax: 4 });
    await sql.run('CREATE TABLE pg_items (id TEXT PRIMARY KEY, n BIGINT)');
  });
  afterAll(async () => {
    await sql?.close();
  });

  it("two concurrent transactions with lock('x') serialize: the second waits in PostgreSQL until the first commits", async () => {
    const order: string[] = [];
    const release = gate();
    const aLocked = gate();
    const a = sql.transaction(async () => {
      await sql.lock('x');
      order.push('A locked');
      aLocked.open();
      await release.wait;
      await sql.run('INSERT INTO pg_items (id, n) VALUES (?, ?)', ['a', 1]);
      order.push('A done');
    });
    await aLocked.wait;
    const b = sql.transaction(async () => {
      await sql.lock('x');
      order.push('B locked');
      // A committed before B got the lock: its row is visible (READ COMMITTED).
      return sql.one<{ n: number }>('SELECT n FROM pg_items WHERE id = ?', ['a']);
    });
    // Prove B is really blocked on the advisory lock (not merely slow to send it): PostgreSQL
    // shows an ungranted advisory lock. Bounded poll.
    let waiting = 0;
    for (let i = 0; i < 200 && waiting === 0; i++) {
      waiting = (await sql.one<{ n: number }>("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND NOT granted"))!.n;
      if (waiting === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(waiting).toBe(1);
    expect(order).toEqual(['A locked']);
    release.open();
    await a;
    expect(await b).toEqual({ n: 1 });
    expect(order).toEqual(['A locked', 'A done', 'B locked']);
    // Different names do not block each other.
    await Promise.all([sql.transaction(() => sql.lock('y')), sql.transaction(() => sql.lock('z'))]);
  });

  it('a failing transaction releases its client: 50 failures on a pool of 2 leave it usable', async () => {
    const small = new PgSql({ url: db.url, poolMax: 2, connectTimeoutMs: 2000 });
    try {
      const failures = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          small
            .transaction(async () => {
              await small.run('INSERT INTO pg_items (id, n) VALUES (?, ?)', [`f${i}`, i]);
              if (i % 2) throw new Error(`fn ${i} fails`);
              await small.run('INSERT INTO pg_items (id, n) VALUES (?, ?)', ['a-duplicate', 1]);
              await small.run('INSERT INTO pg_items (id, n) VALUES (?, ?)', ['a-duplicate', 2]); // unique violation
            })
            .then(
              () => 'committed',
              (err: Error) => err.message,
            ),
        ),
      );
      expect(failures.filter((m) => m === 'committed')).toEqual([]);
      expect(failures.filter((m) => /duplicate key/.test(m))).toHaveLength(25);
      expect(small.pool.totalCount).toBeLessThanOrEqual(2);
      expect(small.pool.waitingCount).toBe(0);
      expect(small.pool.idleCount).toBe(small.pool.totalCount);
      expect(await small.one("SELECT count(*) AS n FROM pg_items WHERE id LIKE 'f%' OR id = 'a-duplicate'")).toEqual({ n: 0 });
      expect(await small.transaction(() => small.one('SELECT 1 AS one'))).toEqual({ one: 1 });
    } finally {
      await small.close();
    }
  });

  it('a transaction whose connection broke destroys that client instead of pooling it', async () => {
    const small = new PgSql({ url: db.url, poolMax: 1, connectTimeoutMs: 2000 });
    try {
      const before = (await small.one<{ pid: number }>('SELECT pg_backend_pid() AS pid'))!.pid;
      await expect(
        small.transaction(async () => {
          await small.run('SELECT pg_terminate_backend(pg_backend_pid())');
        }),
      ).rejects.toThrow();
      const after = (await small.one<{ pid: number }>('SELECT pg_backend_pid() AS pid'))!.pid;
      expect(after).not.toBe(before);
      expect(small.pool.totalCount).toBe(1);
    } finally {
      await small.close();
    }
  });

  it("afterCommit's ifUnknown runs, not fn, when COMMIT was sent and its answer was lost — committed or not; never when COMMIT answered (UP-08)", async () => {
    const lossy = new PgSql({ url: db.url, poolMax: 1 });
    /** each client's COMMIT: `after` sends it and loses the answer; `before` loses the connection before sending it */
    let lose: 'after' | 'before' | undefined;
    loseCommitAnswers(lossy.pool, () => lose);
    const run = async (id: string) => {
      const seen: string[] = [];
      const outcome = await lossy
        .transaction(async () => {
          await lossy.run('INSERT INTO pg_items (id, n) VALUES (?, ?)', [id, 1]);
          lossy.afterCommit(
            () => seen.push('committed'),
            () => seen.push('unknown'),
          );
        })
        .then(
          () => 'resolved',
          (err: Error) => err.message,
        );
      await new Promise((resolve) => setImmediate(resolve));
      const stored = (await sql.one<{ n: number }>('SELECT count(*)::int AS n FROM pg_items WHERE id = ?', [id]))?.n;
      return { outcome, seen, stored };
    };
    try {
      lose = 'after';
      expect(await run('lost-after-commit')).toEqual({ outcome: 'Connection terminated unexpectedly', seen: ['unknown'], stored: 1 });
      lose = 'before';
      expect(await run('lost-before-commit')).toEqual({ outcome: 'Connection terminated unexpectedly', seen: ['unknown'], stored: 0 });
      lose = undefined;
      expect(await run('answered')).toEqual({ outcome: 'resolved', seen: ['committed'], stored: 1 });
      // COMMIT answered ROLLBACK (a statement failed): certain, so neither.
      const seen: string[] = [];
      await expect(
        lossy.transaction(async () => {
          lossy.afterCommit(
            () => seen.push('committed'),
            () => seen.push('unknown'),
          );
          await lossy.runLater('INSERT INTO no_such_table VALUES (1)');
        }),
      ).rejects.toThrow();
      await new Promise((resolve) => setImmediate(resolve));
      expect(seen).toEqual([]);
    } finally {
      await lossy.close();
    }
  });

  it('statements issued at once inside a transaction are pipelined on its connection: no pg deprecation warning, and those sent behind a failure are refused', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const ids = Array.from({ length: 8 }, (_, i) => `burst-${i}`);
      await sql.transaction(() => Promise.all(ids.map((id, n) => sql.run('INSERT INTO pg_items (id, n) VALUES (?, ?)', [id, n]))));
      expect((await sql.one<{ n: number }>("SELECT count(*) AS n FROM pg_items WHERE id LIKE 'burst-%'"))!.n).toBe(8);
      // The second insert fails (duplicate key); PostgreSQL refuses the third, sent behind it (the transaction is aborted).
      const outcome = sql.transaction(() =>
        Promise.allSettled([
          sql.run('INSERT INTO pg_items (id, n) VALUES (?, ?)', ['burst-new', 1]),
          sql.run('INSERT INTO pg_items (id, n) VALUES (?, ?)', ['burst-0', 1]),
          sql.run('INSERT INTO pg_items (id, n) VALUES (?, ?)', ['burst-other', 1]),
        ]),
      );
      const settled = await outcome.catch(() => undefined);
      expect(settled).toBeUndefined(); // the transaction failed as a whole
      expect((await sql.one<{ n: number }>("SELECT count(*) AS n FROM pg_items WHERE id IN ('burst-new', 'burst-other')"))!.n).toBe(0);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      expect(warnings.filter((w) => w.includes('already executing a query'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a transaction sends BEGIN with its first statement, and each runLater with the next statement waited for (or COMMIT): one socket write per round trip', async () => {
    const writes: string[] = [];
    const spied = new WeakSet<object>();
    const onAcquire = (client: pg.PoolClient) => {
      const stream = (client as unknown as { connection: { stream: { _write: Function; _writev: Function } } }).connection.stream;
      if (spied.has(stream)) return;
      spied.add(stream);
      const write = stream._write.bind(stream);
      const writev = stream._writev.bind(stream);
      stream._write = (chunk: Buffer, encoding: string, cb: () => void) => (writes.push('write'), write(chunk, encoding, cb));
      stream._writev = (chunks: unknown[], cb: () => void) => (writes.push(`writev×${chunks.length}`), writev(chunks, cb));
    };
    sql.pool.on('acquire', onAcquire);
    try {
      const seen = await sql.transaction(async () => {
        await sql.runLater('INSERT INTO pg_items (id, n) VALUES (?, ?)', ['rt-1', 1]);
        await sql.runLater('INSERT INTO pg_items (id, n) VALUES (?, ?)', ['rt-2', 2]);
        const read = await sql.one<{ n: number }>('SELECT count(*) AS n FROM pg_items WHERE id LIKE ?', ['rt-%']);
        await sql.runLater('INSERT INTO pg_items (id, n) VALUES (?, ?)', ['rt-3', 3]);
        return read;
      });
      expect(seen).toEqual({ n: 2 });
      // Round trip 1: BEGIN, two inserts and the read; round trip 2: the third insert and COMMIT (was six, one per statement).
      expect(writes.length, writes.join(', ')).toBe(2);
      expect((await sql.one<{ n: number }>("SELECT count(*) AS n FROM pg_items WHERE id LIKE 'rt-%'"))!.n).toBe(3);
    } finally {
      sql.pool.off('acquire', onAcquire);
    }
  });

  it('DATABASE_URL: postgres://, postgresql:// and ?host=/socket/dir (through the unix socket)', async () => {
    const { dir, port } = await clusterSocket();
    const socketUrl = `postgres://postgres@/${db.name}?host=${encodeURIComponent(dir)}&port=${port}`;
    const viaSocket = new PgSql({ url: socketUrl });
    const viaPostgresql = new PgSql({ url: db.url.replace(/^postgres:/, 'postgresql:') });
    try {
      // inet_server_addr() is NULL on a unix-socket connection.
      expect(await viaSocket.one('SELECT inet_server_addr() AS addr, current_database() AS db')).toEqual({ addr: null, db: db.name });
      expect(await viaPostgresql.one('SELECT inet_server_addr() AS addr, current_database() AS db')).toEqual({ addr: '127.0.0.1', db: db.name });
    } finally {
      await viaSocket.close();
      await viaPostgresql.close();
    }
    expect(isPostgresUrl('postgres://h/d') && isPostgresUrl('postgresql://h/d') && isPostgresUrl('POSTGRES://h/d')).toBe(true);
    for (const url of ['mysql://user:s3cret@h/d', 'file:./x.db', '/var/run/postgresql', 'postgres:/h/d']) {
      expect(isPostgresUrl(url)).toBe(false);
      let error: unknown;
      try {
        new PgSql({ url });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(DatabaseUrlError);
      expect((error as Error).message).not.toContain('s3cret');
    }
  });

  it('BIGINT beyond 2^53 fails the query instead of losing precision; the pool parses INT8 on its own, not globally', async () => {
    await expect(sql.one('SELECT CAST(9007199254740993 AS BIGINT) AS n')).rejects.toThrow(/beyond JavaScript's safe integers/);
    expect(await sql.one('SELECT CAST(-9007199254740991 AS BIGINT) AS n')).toEqual({ n: -Number.MAX_SAFE_INTEGER });
    expect(pg.types.getTypeParser(20, 'text')('12')).toBe('12');
    // The pool still works after the refused row.
    expect(await sql.one('SELECT 1 AS one')).toEqual({ one: 1 });
  });

  it('a prepared SELECT * keeps working after another replica altered the table (rolling deploy)', async () => {
    const one = new PgSql({ url: db.url, poolMax: 1 });
    const other = new PgSql({ url: db.url, poolMax: 1 });
    try {
      await one.run('CREATE TABLE evolving (id TEXT PRIMARY KEY, a TEXT)');
      await one.run("INSERT INTO evolving (id, a) VALUES ('k', 'x')");
      const q = 'SELECT * FROM evolving WHERE id = ?';
      expect(await one.one(q, ['k'])).toEqual({ id: 'k', a: 'x' });
      await other.run('ALTER TABLE evolving ADD COLUMN b BIGINT');
      // Outside a transaction the driver re-prepares and retries once.
      expect(await one.one(q, ['k'])).toEqual({ id: 'k', a: 'x', b: null });
      await other.run('ALTER TABLE evolving ADD COLUMN c TEXT');
      // Inside one, the transaction fails (PostgreSQL has aborted it); the next one works.
      await expect(one.transaction(() => one.one(q, ['k']))).rejects.toThrow(/cached plan must not change result type/);
      expect(await one.transaction(() => one.one(q, ['k']))).toEqual({ id: 'k', a: 'x', b: null, c: null });
    } finally {
      await one.close();
      await other.close();
    }
  });

  it('preparedStatements: false uses unnamed statements (for poolers in transaction mode)', async () => {
    const unnamed = new PgSql({ url: db.url, poolMax: 1, preparedStatements: false });
    try {
      expect(await unnamed.transaction(() => unnamed.one('SELECT CAST(? AS BIGINT) + 1 AS n', [41]))).toEqual({ n: 42 });
      expect(await unnamed.one('SELECT count(*) AS n FROM pg_prepared_statements')).toEqual({ n: 0 });
      expect(await sql.transaction(() => sql.one('SELECT count(*) AS n FROM pg_prepared_statements'))).not.toEqual({ n: 0 });
    } finally {
      await unnamed.close();
    }
  });

  it('withDatabase keeps user, host and parameters', () => {
    expect(withDatabase('postgres://u@127.0.0.1:5432/postgres?sslmode=disable', 'x_1')).toBe('postgres://u@127.0.0.1:5432/x_1?sslmode=disable');
    expect(withDatabase('postgresql://u@h', 'd')).toBe('postgresql://u@h/d');
  });
});
