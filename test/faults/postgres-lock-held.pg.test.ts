/**
 * Another PostgreSQL session holds a lock P needs — a DBA's `LOCK TABLE`, an `ALTER TABLE` or
 * `VACUUM FULL`, a forgotten open transaction — for as long as it likes. Found by review
 * (2026-12-06): P waited with it, so every request touching the table hung until the lock went
 * (SQLite has its busy timeout; PostgreSQL had no bound). Now every pooled connection has
 * `lock_timeout` (LOCK_TIMEOUT_MS, src/db/pg-sql.ts): the request fails after it as a whole —
 * 503 `temporarily_unavailable` with `Retry-After: 1`, nothing kept, logged as a warning — and
 * works as soon as the lock is gone. A migration still waits for as long as it must (for another
 * process's run, for its DDL's locks), and leaves its pooled connection with the bound.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mcpClientMetadata, startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { LOCK_TIMEOUT_MS, PgSql } from '../../src/db/pg-sql.js';
import { MIGRATION_LOCK, migratePg } from '../../src/db/migrate-pg.js';
import { lockKey } from '../../src/db/sql.js';

let db: TestDatabase;
let app: TestApp;
let holder: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase('lock-held');
  app = await startTestApp({ env: { DATABASE_URL: db.url, RATE_LIMIT_REGISTER: '100000/1m' } });
  holder = new pg.Client({ connectionString: db.url });
  await holder.connect();
});
afterAll(async () => {
  await holder?.end();
  await app?.close();
  await db?.drop();
});

const register = () => fetch(`${app.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(mcpClientMetadata({ client_name: 'while locked' })) });
const clients = async () => Number((await holder.query("SELECT count(*) AS n FROM oidc_models WHERE model = 'Client'")).rows[0].n);

describe('PostgreSQL: a lock another session holds', () => {
  it('/register waits at most the lock timeout, then 503 temporarily_unavailable with Retry-After; nothing kept; 201 once the lock is gone', async () => {
    expect((await register()).status).toBe(201);
    const before = await clients();
    const errorsBefore = app.logLines.filter((l) => l.includes('"level":50')).length;
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE clients_meta IN ACCESS EXCLUSIVE MODE');
    try {
      const started = performance.now();
      const res = await register();
      const waited = performance.now() - started;
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(await res.json()).toEqual({ error: 'temporarily_unavailable', error_description: 'The service is busy; try again in a moment.' });
      expect(waited).toBeGreaterThanOrEqual(LOCK_TIMEOUT_MS - 100);
      expect(waited).toBeLessThan(LOCK_TIMEOUT_MS + 1_500);
    } finally {
      await holder.query('ROLLBACK');
    }
    expect(await clients()).toBe(before); // the registration rolled back whole: no client without its provenance
    expect(app.logLines.filter((l) => l.includes('"level":50')).length).toBe(errorsBefore);
    expect((await register()).status).toBe(201);
  });

  it('a migration waits past the lock timeout for another run, and its pooled connection keeps the bound afterwards', async () => {
    const sql = new PgSql({ url: db.url, poolMax: 1, lockTimeoutMs: 200 });
    try {
      await holder.query('SELECT pg_advisory_lock($1::bigint)', [lockKey(MIGRATION_LOCK)]);
      let settled = false;
      const run = migratePg(sql).finally(() => (settled = true));
      await new Promise((resolve) => setTimeout(resolve, 600)); // three lock timeouts
      expect(settled).toBe(false);
      await holder.query('SELECT pg_advisory_unlock($1::bigint)', [lockKey(MIGRATION_LOCK)]);
      expect((await run).applied).toEqual([]);
      expect(await sql.one<{ lock_timeout: string }>('SHOW lock_timeout')).toEqual({ lock_timeout: '200ms' });
    } finally {
      await sql.close();
    }
  });

  it('the first start’s key creation waits past the lock timeout for the replica that holds it (unbounded lock)', async () => {
    const sql = new PgSql({ url: db.url, poolMax: 2, lockTimeoutMs: 200 });
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1::bigint)', [lockKey('sealed-secret:test-keys')]);
      let settled = false;
      const waiting = sql
        .transaction(async () => {
          await sql.lock('sealed-secret:test-keys', { unbounded: true });
          return (await sql.one<{ lock_timeout: string }>('SHOW lock_timeout'))?.lock_timeout;
        })
        .finally(() => (settled = true));
      const bounded = sql.transaction(() => sql.lock('sealed-secret:test-keys'));
      await expect(bounded).rejects.toMatchObject({ code: '55P03' });
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(settled).toBe(false);
      await holder.query('COMMIT');
      expect(await waiting).toBe('0');
      expect(await sql.one<{ lock_timeout: string }>('SHOW lock_timeout')).toEqual({ lock_timeout: '200ms' }); // SET LOCAL ended with it
    } finally {
      await sql.close();
    }
  });
});
