/**
 * Another PostgreSQL session holds a lock P needs — a DBA's `LOCK TABLE`, an `ALTER TABLE` or
 * `VACUUM FULL`, a transaction left open — for as long as it likes. Found by review (2026-12-06):
 * P waited with it, so every request touching the table hung until the lock went (SQLite has its
 * busy timeout; PostgreSQL had no bound). Now the server's pool sets `lock_timeout`
 * (LOCK_TIMEOUT_MS, src/db/pg-lock-timeout.ts) on each connection unless the operator set one:
 * the request fails after it as a whole — 503 `temporarily_unavailable` with `Retry-After: 1`,
 * nothing kept, logged as a warning — and works as soon as the lock is gone. A migration and the
 * first start's key creation still wait for as long as they must; the CLI's pool has no bound.
 * "Still waiting past the bound" is shown without sleeping: a bounded competitor that started
 * waiting later has already timed out.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mcpClientMetadata, startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { PgSql } from '../../src/db/pg-sql.js';
import { LOCK_TIMEOUT_MS } from '../../src/db/pg-lock-timeout.js';
import { MIGRATION_LOCK, migratePg } from '../../src/db/migrate-pg.js';
import { lockKey } from '../../src/db/sql.js';
import type { Config } from '../../src/config/load.js';
import { openConfiguredDatabase } from '../../src/runtime/core.js';
import { createLogger } from '../../src/log/logger.js';
import { startCast } from '../helpers/cast.js';
import { startServerProcess } from '../helpers/server-process.js';

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
const lockTimeout = async (sql: PgSql) => (await sql.one<{ lock_timeout: string }>('SHOW lock_timeout'))?.lock_timeout;
/** Whether some session waits for the advisory lock `name` (pg_locks: not granted). */
const waitingFor = async (name: string) => {
  const { rows } = await holder.query("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND NOT granted AND ((classid::bigint << 32) | objid::bigint) = $1::bigint", [lockKey(name)]);
  return Number(rows[0].n) > 0;
};
async function untilWaiting(name: string): Promise<void> {
  for (let i = 0; i < 500 && !(await waitingFor(name)); i++) await new Promise((r) => setImmediate(r));
  expect(await waitingFor(name)).toBe(true);
}

describe('PostgreSQL: a lock another session holds', () => {
  it('/register waits at most the lock timeout, then 503 temporarily_unavailable with Retry-After; nothing kept; 201 once the lock is gone', async () => {
    expect(await lockTimeout(app.runtime.sql as PgSql)).toBe(`${LOCK_TIMEOUT_MS / 1000}s`);
    expect(await (app.runtime.sql as PgSql).one('SHOW client_connection_check_interval')).toEqual({ client_connection_check_interval: '1s' });
    expect((await register()).status).toBe(201);
    const before = await clients();
    const errorsBefore = app.logLines.filter((l) => /"level":(50|60)/.test(l)).length;
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
    expect(app.logLines.filter((l) => /"level":(50|60)/.test(l)).length).toBe(errorsBefore);
    expect((await register()).status).toBe(201);
  });

  it("keeps a lock_timeout the operator set (the URL's options), and the CLI's pool has none", async () => {
    const own = new PgSql({ url: `${db.url}${db.url.includes('?') ? '&' : '?'}options=${encodeURIComponent('-c lock_timeout=1500')}`, lockTimeoutMs: 200 });
    // What the CLI opens (src/cli/command.ts: not `serving`).
    const cli = await openConfiguredDatabase({ databaseUrl: db.url, databasePoolMax: 2 } as unknown as Config, { log: createLogger('silent'), mustExist: true });
    try {
      expect(await lockTimeout(own)).toBe('1500ms');
      expect(await lockTimeout(cli.sql as PgSql)).toBe('0');
    } finally {
      await own.close();
      await cli.sql.close();
    }
  });

  it('a migration waits past the lock timeout for another run; the pool keeps its bound afterwards', async () => {
    const sql = new PgSql({ url: db.url, poolMax: 2, lockTimeoutMs: 200 });
    try {
      await holder.query('SELECT pg_advisory_lock($1::bigint)', [lockKey(MIGRATION_LOCK)]);
      let settled = false;
      const run = migratePg(sql).finally(() => (settled = true));
      await untilWaiting(MIGRATION_LOCK);
      // A bounded wait that began after the migration's has already ended with 55P03.
      await expect(sql.transaction(() => sql.lock(MIGRATION_LOCK))).rejects.toMatchObject({ code: '55P03' });
      expect(settled).toBe(false);
      expect(await waitingFor(MIGRATION_LOCK)).toBe(true);
      await holder.query('SELECT pg_advisory_unlock($1::bigint)', [lockKey(MIGRATION_LOCK)]);
      expect((await run).applied).toEqual([]);
      expect(await lockTimeout(sql)).toBe('200ms');
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
          return lockTimeout(sql);
        })
        .finally(() => (settled = true));
      await untilWaiting('sealed-secret:test-keys');
      const bounded = sql.transaction(() => sql.lock('sealed-secret:test-keys'));
      await expect(bounded).rejects.toMatchObject({ code: '55P03' });
      expect(settled).toBe(false);
      await holder.query('COMMIT');
      expect(await waiting).toBe('0');
      expect(await lockTimeout(sql)).toBe('200ms'); // the transaction-local setting ended with it
    } finally {
      await sql.close();
    }
  });

  it('a connection that breaks while its bound is being set fails that checkout, not the process; the next one works', async () => {
    const sql = new PgSql({ url: db.url, poolMax: 2, lockTimeoutMs: 200 });
    const query = pg.Client.prototype.query;
    let broken = 0;
    // The socket of the new connection ends just as the SET is sent (a reset, a server killed).
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const text = (args[0] as { text?: unknown } | undefined)?.text;
      if (broken === 0 && typeof text === 'string' && text.includes("set_config('lock_timeout'")) {
        broken += 1;
        (this as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      }
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof query;
    try {
      await expect(sql.one('SELECT 1 AS one')).rejects.toThrow();
      expect(broken).toBe(1);
    } finally {
      pg.Client.prototype.query = query;
    }
    expect(await sql.one('SELECT 1 AS one')).toEqual({ one: 1 });
    expect(await lockTimeout(sql)).toBe('200ms');
    await sql.close();
  });

  it('serve keeps serving when its system.started row meets a lock past the bound, and SIGTERM then still shuts it down cleanly', async () => {
    const own = await createTestDatabase('lock-serve');
    const cast = await startCast({ prefix: 'lock-serve-' });
    const migrated = new PgSql({ url: own.url, poolMax: 1 });
    const audit = new pg.Client({ connectionString: own.url });
    try {
      await migratePg(migrated);
      await audit.connect();
      // Writes to audit_log wait (reads do not): what a VACUUM FULL queued behind it, or a bulk job, does.
      await audit.query('BEGIN');
      await audit.query('LOCK TABLE audit_log IN EXCLUSIVE MODE');
      const server = await startServerProcess({ ...cast.env, DATABASE_URL: own.url });
      try {
        for (let i = 0; i < 800 && !server.output().includes('system.started audit row could not be written'); i++) await new Promise((r) => setTimeout(r, 25)); // the lock bound (5 s) and up to 15 s more
        expect(server.output()).toContain('system.started audit row could not be written');
        expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
        expect(await server.stop()).toBe(0);
        expect(server.output()).toContain('system.stopped audit row could not be written');
      } finally {
        await server.kill();
      }
    } finally {
      await audit.query('ROLLBACK').catch(() => undefined);
      await audit.end();
      await migrated.close();
      await cast.close();
      await own.drop();
    }
  });
});
