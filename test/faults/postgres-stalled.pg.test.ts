/**
 * PostgreSQL that stops answering without resetting the connection — the server process stopped
 * (SIGSTOP: its kernel still acknowledges every packet), a partition that drops packets, a
 * stalled VM. Found by review (2026-12-06): nothing bounded a statement's wait then, and on
 * PostgreSQL the gateway's requests share one generation read (src/gateway/generation.ts), so one
 * read that never answered held every gateway request of the replica until TCP gave up (minutes;
 * with SIGSTOP, never). Now the gateway's per-request reads (`oneNow`) carry pg's client-side
 * query_timeout in `serve` (PgSqlOptions.hotReadTimeoutMs: the lock bound + 1 s, 6 s): past it the
 * read fails as "database unavailable" (a 503 for its requests), its connection is closed, and
 * the next read starts afresh — on a new connection once the database answers again. A request
 * that arrived while a read was in flight waits for the next one (GW-01: never a read issued
 * before it arrived), which may need a new connection: answered within the bound plus the pool's
 * connection timeout (6 + 10 s).
 * Made deterministic with a TCP proxy in front of the test cluster that can stall: it stops
 * moving bytes in both directions while every connection stays open.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { PgSql } from '../../src/db/pg-sql.js';
import { migratePg } from '../../src/db/migrate-pg.js';
import { isDatabaseBusy } from '../../src/errors/database-unavailable.js';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { callTool, openSession } from '../helpers/mcp-http.js';
import { LOCK_TIMEOUT_MS } from '../../src/db/pg-lock-timeout.js';

/** A TCP proxy to PostgreSQL that can stall: bytes stop flowing both ways, connections stay open. */
async function startStallingProxy(target: URL): Promise<{ url(db: string): string; stall(on: boolean): void; open(): number; close(): Promise<void> }> {
  const pairs = new Set<[Socket, Socket]>();
  let stalled = false;
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream).pipe(client);
    if (stalled) for (const s of pair) s.pause();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url(db: string) {
      const u = new URL(db);
      u.host = `127.0.0.1:${port}`;
      return u.href;
    },
    stall(on) {
      stalled = on;
      for (const pair of pairs) for (const s of pair) if (on) s.pause();
      else s.resume();
    },
    open: () => pairs.size,
    close: () =>
      new Promise((resolve) => {
        for (const pair of pairs) for (const s of pair) s.destroy();
        server.close(() => resolve());
      }),
  };
}

let db: TestDatabase;
let proxy: Awaited<ReturnType<typeof startStallingProxy>>;

beforeAll(async () => {
  db = await createTestDatabase('stalled');
  proxy = await startStallingProxy(new URL(db.url));
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

describe('PostgreSQL stops answering (found by review)', () => {
  it('a gateway read fails as unavailable after hotReadTimeoutMs and closes its connection; reads work again once the database answers', async () => {
    const sql = new PgSql({ url: proxy.url(db.url), poolMax: 2, hotReadTimeoutMs: 300 });
    try {
      await migratePg(sql);
      expect(await sql.oneNow('SELECT n FROM gateway_generation WHERE id = 1')).toMatchObject({ n: expect.any(Number) });
      proxy.stall(true);
      const started = performance.now();
      const failed = await sql.oneNow('SELECT n FROM gateway_generation WHERE id = 1').then(
        () => undefined,
        (err: unknown) => err,
      );
      const waited = performance.now() - started;
      expect(isDatabaseBusy(failed)).toBe(true);
      expect(waited).toBeGreaterThanOrEqual(290);
      expect(waited).toBeLessThan(2_000);
      expect(sql.pool.totalCount).toBe(0); // the stalled connection was closed, not pooled
      proxy.stall(false);
      expect(await sql.oneNow('SELECT n FROM gateway_generation WHERE id = 1')).toMatchObject({ n: expect.any(Number) });
    } finally {
      proxy.stall(false);
      await sql.close();
    }
  });

  it("a read that timed out waiting for a lock does not leave its server process waiting, even under the operator's long lock_timeout", async () => {
    const sql = new PgSql({ url: db.url, poolMax: 2, lockTimeoutMs: 60_000, hotReadTimeoutMs: 300 });
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    const waiting = async () =>
      Number((await holder.query("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'mcp-consent-proxy' AND wait_event_type = 'Lock'")).rows[0].n);
    try {
      await migratePg(sql);
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE gateway_generation IN ACCESS EXCLUSIVE MODE');
      for (let i = 0; i < 3; i++) await expect(sql.oneNow('SELECT n FROM gateway_generation WHERE id = 1')).rejects.toThrow('Query read timeout');
      // Each closed its connection; PostgreSQL notices within CLIENT_CHECK_INTERVAL_MS and cancels the wait.
      for (let i = 0; i < 100 && (await waiting()) > 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await waiting()).toBe(0);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
      await sql.close();
    }
  });

  it('serve: gateway requests on a stalled database are answered 503 after the bound, not held; served again once it answers', async () => {
    let stack: Stack | undefined;
    const own = await createTestDatabase('stalled-serve');
    try {
      stack = await startStack({ env: { DATABASE_URL: proxy.url(own.url) } });
      const { tokens } = await authorizeClient(stack, new Browser('stalled'), { login: 'stalled' });
      const token = tokens.body.access_token as string;
      const sessionId = await openSession(`${stack.app.url}/mcp`, token);
      expect((await callTool(`${stack.app.url}/mcp`, token, sessionId, 'whoami')).status).toBe(200);
      proxy.stall(true);
      const started = performance.now();
      const results = await Promise.all([1, 2, 3].map((id) => callTool(`${stack!.app.url}/mcp`, token, sessionId, 'whoami', {}, id)));
      const waited = performance.now() - started;
      proxy.stall(false);
      expect(results.map((r) => r.status)).toEqual([503, 503, 503]);
      expect(waited).toBeLessThan(LOCK_TIMEOUT_MS + 1_000 + 10_000 + 3_000);
      expect((await callTool(`${stack.app.url}/mcp`, token, sessionId, 'whoami')).status).toBe(200);
    } finally {
      proxy.stall(false);
      await stack?.close();
      await own.drop();
    }
  });
});
