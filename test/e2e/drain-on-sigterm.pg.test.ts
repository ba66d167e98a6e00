/**
 * Issue 11 (DESIGN §8): "SIGTERM under load drains a replica without failing requests that the
 * balancer sends elsewhere". A `serve` process on PostgreSQL, with requests in flight through the
 * gateway to a slow R when SIGTERM arrives: every one of them completes 200; a new connection is
 * refused while they run (the balancer sends it to another replica); the process flushes its audit
 * log (system.stopped is the last row) and exits 0 within the grace period. In-process: once
 * draining, /healthz and /readyz answer 503 and every response carries `Connection: close`, so
 * keep-alive connections end after their current response.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, registerClient, startTestApp, TEST_SECRET_KEY, type TestApp } from '../helpers/app.js';
import { pgDatabasePerFile } from '../helpers/pg.js';
import { startFakeOidcUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startFakeMcp, type FakeMcp } from '../helpers/fake-mcp.js';
import { Browser, buildAuthorization, drive, redeem } from '../helpers/stack.js';
import { callTool, openSession } from '../helpers/mcp-http.js';
import { PgSql } from '../../src/db/pg-sql.js';
import { SHUTDOWN_GRACE_MS } from '../../src/cli/commands/serve.js';
import { CLI_ARGS } from '../helpers/cli-bin.js';

const IN_FLIGHT = 8;
const db = pgDatabasePerFile('drain');
let upstream: FakeUpstream;
let mcp: FakeMcp;
let child: ChildProcess | undefined;

beforeAll(async () => {
  mcp = await startFakeMcp({ countdownDelayMs: 300 });
});
afterAll(async () => {
  child?.kill('SIGKILL');
  await upstream?.close();
  await mcp?.close();
});

/** Bounded wait for a condition (polling; the process runs on its own). */
async function until(condition: () => boolean, what: string, tries = 400): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Whether a new TCP connection to the port is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe('SIGTERM drains a replica', () => {
  it('requests in flight when SIGTERM arrives all complete 200, new connections are refused meanwhile, the audit log is flushed, exit 0', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    upstream = await startFakeOidcUpstream({ callbackUrl: `${url}/upstream/callback` });
    child = spawn(process.execPath, [...CLI_ARGS, 'serve'], {
      env: {
        PATH: process.env.PATH,
        PORT: String(port),
        PUBLIC_URL: url,
        DATABASE_URL: db.url,
        DATABASE_PATH: join(mkdtempSync(join(tmpdir(), 'drain-')), 'db.sqlite'),
        SECRET_KEY: TEST_SECRET_KEY,
        UPSTREAM_ISSUER: upstream.issuer,
        UPSTREAM_CLIENT_ID: upstream.clientId,
        UPSTREAM_CLIENT_SECRET: upstream.clientSecret,
        UPSTREAM_SCOPES: 'openid email',
        MCP_UPSTREAM_URL: mcp.url,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (d) => (output += d));
    child.stderr?.on('data', (d) => (output += d));
    const exit = new Promise<number | null>((resolve) => child?.on('exit', (code) => resolve(code)));
    await until(() => output.includes('MCP Consent Proxy listening'), 'the server to listen', 1600); // a loaded CI machine

    const app = { url } as TestApp;
    const clientId = (await registerClient(app)).client_id as string;
    const auth = buildAuthorization(app, { clientId });
    const code = (await drive(new Browser(), auth.url, auth.redirectUri, { login: 'drain' })).callback.searchParams.get('code') as string;
    const token = (await redeem(app, clientId, code, auth.verifier, auth.redirectUri)).body.access_token as string;
    const sessionId = await openSession(`${url}/mcp`, token);

    const calls = () => mcp.received.filter((r) => r.method === 'POST').length;
    const before = calls();
    let finished = 0;
    const inFlight = Array.from({ length: IN_FLIGHT }, (_, i) =>
      callTool(`${url}/mcp`, token, sessionId, 'countdown', { from: 10 }, 1000 + i).finally(() => finished++),
    );
    await until(() => calls() - before === IN_FLIGHT, 'R to receive every request');
    const t0 = Date.now();
    child.kill('SIGTERM');
    await until(() => output.includes('shutting down'), 'the drain to start');
    // A new connection is refused while the requests in flight are still running.
    let refusedMeanwhile = false;
    for (let i = 0; i < 40 && !refusedMeanwhile; i++) {
      refusedMeanwhile = await refused(port);
      if (!refusedMeanwhile) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(refusedMeanwhile).toBe(true);
    expect(finished).toBeLessThan(IN_FLIGHT);

    const results = await Promise.all(inFlight);
    expect(results.map((r) => r.status)).toEqual(Array(IN_FLIGHT).fill(200));
    for (const r of results) expect(r.messages.at(-1)?.result?.content?.[0]?.text).toBe('liftoff');
    expect(await exit).toBe(0);
    expect(Date.now() - t0).toBeLessThan(SHUTDOWN_GRACE_MS);
    const sql = new PgSql({ url: db.url, poolMax: 1 });
    try {
      const last = await sql.one<{ event: string; reason: string }>('SELECT event, reason FROM audit_log ORDER BY seq DESC LIMIT 1');
      expect(last).toEqual({ event: 'system.stopped', reason: 'SIGTERM' });
    } finally {
      await sql.close();
    }
  }, 60_000);

  it('while draining: /healthz and /readyz answer 503, and every response carries Connection: close', async () => {
    const running: TestApp = await startTestApp({ env: { DATABASE_URL: db.url } });
    try {
      const healthy = await fetch(`${running.url}/healthz`);
      expect(healthy.status).toBe(200);
      expect(healthy.headers.get('connection')).not.toBe('close');
      running.runtime.drain();
      for (const path of ['/healthz', '/readyz']) {
        const res = await fetch(`${running.url}${path}`);
        expect(res.status).toBe(503);
        expect(await res.json()).toEqual({ status: 'draining' });
        expect(res.headers.get('connection')).toBe('close');
      }
      const other = await fetch(`${running.url}/.well-known/oauth-authorization-server`);
      expect(other.status).toBe(200);
      expect(other.headers.get('connection')).toBe('close');
    } finally {
      await running.close();
    }
  });
});
