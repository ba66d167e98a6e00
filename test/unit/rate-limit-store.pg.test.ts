/**
 * The shared rate-limit store (src/store/rate-limits.ts) on PostgreSQL: one atomic upsert per
 * hit, so concurrent increments from many pool connections (standing in for replicas) each get a
 * distinct count and none is lost; windows restart after windowMs (an injected clock); ended rows
 * are purged; keys are bounded hashes per budget.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Options } from 'express-rate-limit';
import { PgSql } from '../../src/db/pg-sql.js';
import { migratePg } from '../../src/db/migrate-pg.js';
import { purgeEndedRateLimits, SqlRateLimitStore } from '../../src/store/rate-limits.js';
import { pgDatabasePerFile } from '../helpers/pg.js';

const db = pgDatabasePerFile('rate_limit_store');
const WINDOW = 60_000;
let sql: PgSql;
let other: PgSql;

beforeAll(async () => {
  sql = new PgSql({ url: db.url, poolMax: 10 });
  other = new PgSql({ url: db.url, poolMax: 10 });
  await migratePg(sql);
});
afterAll(async () => {
  await other?.close();
  await sql?.close();
});

function store(on: PgSql, name: string, now: () => number = Date.now): SqlRateLimitStore {
  const s = new SqlRateLimitStore(on, name, { now });
  s.init({ windowMs: WINDOW } as Options);
  return s;
}

describe('shared rate-limit store (PostgreSQL)', () => {
  it('200 concurrent increments of one key from two pools (two replicas) count 1..200, each once: no lost update', async () => {
    const a = store(sql, 'register');
    const b = store(other, 'register');
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).increment('203.0.113.7')));
    const counts = results.map((r) => r.totalHits).sort((x, y) => x - y);
    expect(counts).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(new Set(results.map((r) => r.resetTime?.getTime())).size).toBe(1);
    expect((await a.get('203.0.113.7'))?.totalHits).toBe(200);
  });

  it('a window restarts at 1 once windowMs has passed; budgets with different names count apart', async () => {
    let now = 1_000_000;
    const s = store(sql, 'token', () => now);
    expect((await s.increment('203.0.113.8')).totalHits).toBe(1);
    now += WINDOW - 1;
    const second = await s.increment('203.0.113.8');
    expect(second.totalHits).toBe(2);
    expect(second.resetTime?.getTime()).toBe(1_000_000 + WINDOW);
    now += 1;
    const fresh = await s.increment('203.0.113.8');
    expect(fresh).toEqual({ totalHits: 1, resetTime: new Date(now + WINDOW) });
    expect((await store(sql, 'authorize', () => now).increment('203.0.113.8')).totalHits).toBe(1);
    await s.decrement('203.0.113.8');
    expect((await s.get('203.0.113.8'))?.totalHits).toBe(0);
    await s.resetKey('203.0.113.8');
    expect(await s.get('203.0.113.8')).toBeUndefined();
  });

  it('housekeeping deletes rows whose window ended, and keeps the others; keys are 64-hex hashes', async () => {
    const s = store(sql, 'purge', () => 5_000);
    await s.increment('203.0.113.9');
    const key = s.key('203.0.113.9');
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(await purgeEndedRateLimits(sql, 4_999)).toBe(0);
    expect(await sql.one('SELECT hits FROM rate_limits WHERE key = ?', [key])).toEqual({ hits: 1 });
    expect(await purgeEndedRateLimits(sql, 5_000)).toBeGreaterThanOrEqual(1);
    expect(await sql.one('SELECT hits FROM rate_limits WHERE key = ?', [key])).toBeUndefined();
  });
});
