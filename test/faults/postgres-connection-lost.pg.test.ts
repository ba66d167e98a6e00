/**
 * Found by the failing-dependency suite (test/faults/postgres-restart.pg.test.ts, issue 13 §3):
 * PostgreSQL going away mid-load made some requests answer 500 "unexpected error" instead of the
 * documented 503 `temporarily_unavailable` with `Retry-After: 1`:
 *   1. a connection lost without a SQLSTATE (`pg_ctl stop -m immediate`, a dropped TCP
 *      connection): node-postgres says only "Connection terminated unexpectedly", which
 *      `isDatabaseBusy` (src/errors/database-unavailable.ts) did not know;
 *   2. a write an oidc-provider event makes after the provider's own (the client's provenance and
 *      the audit row of a registration, the audit row of an issued token) failing because the
 *      database went away in between: the response was turned into a 500 without asking whether
 *      the database was the cause (src/provider/configuration.ts).
 * Both are made here deterministically: (1) with a TCP proxy in front of PostgreSQL that accepts
 * connections and closes them at once; (2) with a trigger that fails the clients_meta insert
 * with SQLSTATE 57P01 (admin_shutdown), as a server shutting down does.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mcpClientMetadata, startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
/** A TCP proxy to PostgreSQL that can cut: close every connection, and accept-then-close new ones. */
async function startCuttingProxy(target: URL): Promise<{ port: number; cut(on: boolean): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let cutting = false;
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (cutting) return void client.destroy();
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut(on) {
      cutting = on;
      if (on) for (const s of sockets) s.destroy();
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

let db: TestDatabase;
let proxy: Awaited<ReturnType<typeof startCuttingProxy>>;
let app: TestApp;

beforeAll(async () => {
  db = await createTestDatabase('connection-lost');
  const target = new URL(db.url);
  proxy = await startCuttingProxy(target);
  const viaProxy = new URL(db.url);
  viaProxy.host = `127.0.0.1:${proxy.port}`;
  app = await startTestApp({ env: { DATABASE_URL: viaProxy.href, RATE_LIMIT_REGISTER: '100000/1m' } });
});
afterAll(async () => {
  await app?.close();
  await proxy?.close();
  await db?.drop();
});

const register = () => fetch(`${app.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(mcpClientMetadata()) });
const BUSY = { error: 'temporarily_unavailable', error_description: 'The service is busy; try again in a moment.' };
const unexpected = () => app.logLines.filter((l) => l.includes('"unexpected error"') || l.includes('"authorization server error"')).length;

describe('PostgreSQL connection lost (found by the fault suite)', () => {
  it('a connection closed without a SQLSTATE ("Connection terminated unexpectedly"): /register 503 temporarily_unavailable with Retry-After, /readyz 503; then 201 once connections work', async () => {
    expect((await register()).status).toBe(201);
    const before = unexpected();
    proxy.cut(true);
    try {
      const res = await register();
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(await res.json()).toEqual(BUSY);
      const ready = await fetch(`${app.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { checks: { database: boolean } }).checks.database).toBe(false);
      expect(unexpected(), 'not logged as a bug').toBe(before);
    } finally {
      proxy.cut(false);
    }
    expect((await register()).status).toBe(201);
  });

  it("a provider event's write failing because the database is going away (57P01 on the client's provenance, after the client was saved): 503 temporarily_unavailable, not 500", async () => {
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await admin.query(
        `CREATE FUNCTION fail_shutdown() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'terminating connection due to administrator command' USING ERRCODE = '57P01'; END $$`,
      );
      await admin.query('CREATE TRIGGER fail_shutdown BEFORE INSERT ON clients_meta FOR EACH ROW EXECUTE FUNCTION fail_shutdown()');
      const res = await register();
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(await res.json()).toEqual(BUSY);
    } finally {
      await admin.query('DROP TRIGGER IF EXISTS fail_shutdown ON clients_meta');
      await admin.query('DROP FUNCTION IF EXISTS fail_shutdown()');
      await admin.end();
    }
    expect((await register()).status).toBe(201);
  });
});
