/**
 * README "Operations" → Shutdown: on SIGTERM the server drains — new connections refused,
 * `/healthz` and `/readyz` answer 503, in-flight requests finish (up to 10 s) with
 * `Connection: close` on every response, the audit log flushed, exit 0. Only
 * a PostgreSQL-only test covered it, left out without PostgreSQL (audit of the documentation's
 * claims); this one runs on the suite's engine (TEST_ENGINE: SQLite, or PostgreSQL — a replica
 * drained while the balancer sends new connections elsewhere, issue 11, DESIGN §8):
 * - a `serve` process with requests in flight through the gateway to a slow R when SIGTERM
 *   arrives: every one completes 200, a new connection is refused while they run, the process
 *   exits 0 within the grace period and system.stopped is the last audit row;
 * - in-process: once draining, /healthz and /readyz answer 503 and every response carries
 *   `Connection: close`;
 * - the 10 s grace (src/cli/commands/serve.ts `shutdown`, SHUTDOWN_GRACE_MS), on a fake clock: a
 *   request still in flight is left alone for 10 s and cut then, and the shutdown then completes
 *   (system.stopped recorded).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, registerClient, startTestApp, TEST_SECRET_KEY, type TestApp } from '../helpers/app.js';
import { fakeUpstreamEnv, startFakeOidcUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startFakeMcp, type FakeMcp } from '../helpers/fake-mcp.js';
import { Browser, buildAuthorization, drive, redeem } from '../helpers/stack.js';
import { callTool, openSession } from '../helpers/mcp-http.js';
import { databaseEnv, openTestSql, TEST_ENGINE } from '../helpers/engine.js';
import { listen } from '../../src/runtime/server.js';
import { SHUTDOWN_GRACE_MS, shutdown } from '../../src/cli/commands/serve.js';
import { CLI_ARGS } from '../helpers/cli-bin.js';

const IN_FLIGHT = 8;
let upstream: FakeUpstream | undefined;
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
afterEach(() => {
  vi.useRealTimers();
});

/** Bounded wait for a condition (polling; the process runs on its own). */
async function until(condition: () => boolean, what: string, tries = 400): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The real setTimeout, for short waits while the test's clock is fake. */
const realSetTimeout = globalThis.setTimeout;

/** A few turns of the event loop (setImmediate is never faked here). */
async function settle(turns = 50): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
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

describe(`SIGTERM drains the server (${TEST_ENGINE})`, () => {
  it('requests in flight when SIGTERM arrives all complete 200, new connections are refused meanwhile, the audit log is flushed, exit 0', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const dir = mkdtempSync(join(tmpdir(), 'drain-'));
    upstream = await startFakeOidcUpstream({ callbackUrl: `${url}/upstream/callback` });
    child = spawn(process.execPath, [...CLI_ARGS, 'serve'], {
      env: {
        PATH: process.env.PATH,
        PORT: String(port),
        PUBLIC_URL: url,
        ...(await databaseEnv(dir)),
        SECRET_KEY: TEST_SECRET_KEY,
        ...fakeUpstreamEnv(upstream),
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
    const inFlight = Array.from({ length: IN_FLIGHT }, (_, i) => callTool(`${url}/mcp`, token, sessionId, 'countdown', { from: 10 }, 1000 + i).finally(() => finished++));
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
    const db = await openTestSql(dir);
    try {
      const last = await db.one<{ event: string; reason: string }>('SELECT event, reason FROM audit_log ORDER BY seq DESC LIMIT 1');
      expect(last).toEqual({ event: 'system.stopped', reason: 'SIGTERM' });
    } finally {
      await db.close();
    }
  }, 60_000);

  it('while draining: /healthz and /readyz answer 503, and every response carries Connection: close', async () => {
    const running = await startTestApp();
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

  it('a request still in flight is given the 10 s grace, then cut, and the shutdown completes', async () => {
    expect(SHUTDOWN_GRACE_MS).toBe(10_000);
    const app = await startTestApp();
    try {
      const running = await listen(app.runtime, 0, '127.0.0.1'); // the server `serve` runs, with its drain
      const port = Number(new URL(running.url).port);
      const arrived = new Promise((resolve) => running.server.once('request', resolve));
      const socket = connect(port, '127.0.0.1');
      let answer = '';
      let closed = false;
      socket.on('data', (chunk) => (answer += chunk));
      socket.on('error', () => undefined);
      socket.on('close', () => (closed = true));
      // A registration whose body never ends: in flight until the grace runs out.
      socket.write(`POST /register HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"client_name":`);
      await arrived;

      const recorded = vi.spyOn(app.runtime.audit, 'record');
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      let done = false;
      const stopping = shutdown(app.runtime, running, 'SIGTERM').then(() => (done = true));
      await settle();
      expect(await refused(port)).toBe(true); // no longer accepting
      await vi.advanceTimersByTimeAsync(SHUTDOWN_GRACE_MS - 1);
      await settle();
      expect(closed).toBe(false); // still given its time
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      // The rest of the shutdown (audit row, checkpoint file, database close) on the fake clock,
      // with short real waits for its file and database work.
      for (let i = 0; i < 400 && !(closed && done); i++) {
        await vi.advanceTimersByTimeAsync(50);
        await new Promise((resolve) => realSetTimeout(resolve, 5));
      }
      expect(closed).toBe(true);
      expect(answer).toBe(''); // cut, not answered
      expect(done).toBe(true);
      await stopping;
      vi.useRealTimers();
      // Recorded — though not necessarily last: the cut registration's own refusal row
      // (registration.rejected, request_aborted) may follow it.
      expect(recorded.mock.calls.map((call) => call[0])).toContainEqual({ event: 'system.stopped', reason: 'SIGTERM' });
      expect(app.logLines.some((line) => line.includes('"msg":"stopped"'))).toBe(true);
    } finally {
      vi.useRealTimers();
      await app.close();
    }
  });
});
