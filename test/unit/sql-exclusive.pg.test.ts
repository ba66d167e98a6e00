/**
 * Sql.exclusive on PostgreSQL (src/db/pg-sql.ts), the lock behind the upstream refresh
 * single-flight across replicas (src/gateway/upstream-token.ts, issue 11): two drivers (two
 * replicas) on one database take turns; tryExclusive skips while another holds the lock (the
 * housekeeping of src/runtime/maintenance.ts); the wait is bounded (LockTimeoutError, fn not run); the
 * lock connections come from a pool of their own, so holders whose fn needs the main pool never
 * starve it; a failing fn releases the lock. With every lock connection of a process in use
 * (LOCK_POOL_MAX locks held), a further exclusive waits for one within its own bound and ends in
 * LockTimeoutError (it used to end in pg-pool's "timeout exceeded when trying to connect" after
 * the connect timeout, which callers did not read as a lock timeout), and tryExclusive answers
 * `{ acquired: false }` at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_POOL_MAX } from '../../src/db/pg-locks.js';
import { PgSql } from '../../src/db/pg-sql.js';
import { LockTimeoutError } from '../../src/db/sql.js';
import { pgDatabasePerFile } from '../helpers/pg.js';
import { gate } from '../helpers/sql-driver-cases.js';

const db = pgDatabasePerFile('sql_exclusive');
let a: PgSql;
let b: PgSql;

beforeAll(() => {
  a = new PgSql({ url: db.url, poolMax: 2 });
  b = new PgSql({ url: db.url, poolMax: 2 });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
});

async function waitingAdvisoryLocks(): Promise<number> {
  return (await a.one<{ n: number }>("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND NOT granted"))!.n;
}

describe('Sql.exclusive on PostgreSQL', () => {
  it('two replicas take turns: the second waits in PostgreSQL until the first fn has finished, and no transaction is open meanwhile', async () => {
    const order: string[] = [];
    const release = gate();
    const held = gate();
    const first = a.exclusive('refresh:g1', 10_000, async () => {
      order.push('A in');
      held.open();
      await release.wait;
      order.push('A out');
    });
    await held.wait;
    const second = b.exclusive('refresh:g1', 10_000, async () => {
      order.push('B in');
    });
    let waiting = 0;
    for (let i = 0; i < 200 && waiting === 0; i++) {
      waiting = await waitingAdvisoryLocks();
      if (waiting === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(waiting).toBe(1);
    const openTransactions = await a.one<{ n: number }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'");
    expect(openTransactions?.n).toBe(0);
    expect(order).toEqual(['A in']);
    release.open();
    await Promise.all([first, second]);
    expect(order).toEqual(['A in', 'A out', 'B in']);
  });

  it('the wait is bounded: LockTimeoutError, and fn does not run', async () => {
    const release = gate();
    const held = gate();
    const first = a.exclusive('refresh:g2', 10_000, async () => {
      held.open();
      await release.wait;
    });
    await held.wait;
    let ran = false;
    await expect(
      b.exclusive('refresh:g2', 50, async () => {
        ran = true;
      }),
    ).rejects.toBeInstanceOf(LockTimeoutError);
    expect(ran).toBe(false);
    release.open();
    await first;
    expect(await b.exclusive('refresh:g2', 1000, async () => 'free again')).toBe('free again');
  });

  it('holders never starve the main pool: four locks held at once with a pool of one, each fn running statements', async () => {
    const small = new PgSql({ url: db.url, poolMax: 1, connectTimeoutMs: 2000 });
    try {
      const all = gate();
      let inside = 0;
      const results = await Promise.all(
        ['g3', 'g4', 'g5', 'g6'].map((g) =>
          small.exclusive(`refresh:${g}`, 5000, async () => {
            if (++inside === 4) all.open();
            await all.wait; // all four locks held at once
            return (await small.one<{ g: string }>('SELECT CAST(? AS TEXT) AS g', [g]))?.g;
          }),
        ),
      );
      expect(results).toEqual(['g3', 'g4', 'g5', 'g6']);
    } finally {
      await small.close();
    }
  });

  it('tryExclusive: fn runs when the lock is free; while another replica holds it, { acquired: false } at once and fn does not run', async () => {
    expect(await b.tryExclusive('job', async () => 'ran')).toEqual({ acquired: true, value: 'ran' });
    const release = gate();
    const held = gate();
    const first = a.tryExclusive('job', async () => {
      held.open();
      await release.wait;
      return 'A';
    });
    await held.wait;
    let ran = false;
    expect(
      await b.tryExclusive('job', async () => {
        ran = true;
      }),
    ).toEqual({ acquired: false });
    expect(ran).toBe(false);
    release.open();
    expect(await first).toEqual({ acquired: true, value: 'A' });
    expect(await b.tryExclusive('job', async () => 'B')).toEqual({ acquired: true, value: 'B' });
  });

  it('a failing fn releases the lock (the other replica gets it at once)', async () => {
    await expect(
      a.exclusive('refresh:g7', 1000, async () => {
        throw new Error('U failed');
      }),
    ).rejects.toThrow('U failed');
    expect(await b.exclusive('refresh:g7', 50, async () => 'got it')).toBe('got it');
  });

  it('every lock connection in use: exclusive waits for one within waitMs, then LockTimeoutError; tryExclusive: { acquired: false } at once; a freed one goes to the next waiter', async () => {
    // The connect timeout below the wait, as in the server (10 s against the refresh's 15 s).
    const full = new PgSql({ url: db.url, poolMax: 1, connectTimeoutMs: 150 });
    const release = gate();
    try {
      let inside = 0;
      const all = gate();
      const holders = Array.from({ length: LOCK_POOL_MAX }, (_, i) =>
        full.exclusive(`refresh:h${i}`, 5000, async () => {
          if (++inside === LOCK_POOL_MAX) all.open();
          await release.wait;
        }),
      );
      await all.wait;
      let ran = false;
      const started = performance.now();
      await expect(
        full.exclusive('refresh:other', 400, async () => {
          ran = true;
        }),
      ).rejects.toBeInstanceOf(LockTimeoutError);
      expect(performance.now() - started).toBeGreaterThanOrEqual(390);
      expect(
        await full.tryExclusive('job', async () => {
          ran = true;
        }),
      ).toEqual({ acquired: false });
      expect(ran).toBe(false);
      const waiter = full.exclusive('refresh:next', 5000, async () => 'ran after a holder');
      release.open();
      expect(await waiter).toBe('ran after a holder');
      await Promise.all(holders);
      expect(await full.tryExclusive('job', async () => 'free again')).toEqual({ acquired: true, value: 'free again' });
    } finally {
      release.open();
      await full.close();
    }
  });
});
