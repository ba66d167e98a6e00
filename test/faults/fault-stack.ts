/**
 * The cast for the failing-dependency suite (issue 13 §3): P in process, the fake U and the fake
 * R each behind a fault proxy (test/helpers/fault-proxy.ts), short timeouts (UPSTREAM_TIMEOUT and
 * GATEWAY_TIMEOUT 1 s, so a real timeout elapses without long waits), and the measures every
 * fault case takes: resources held (file descriptors, TCP sockets, timers, P's connections and
 * its sockets to U and R) before and after, and what was written.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { freePort, startTestApp } from '../helpers/app.js';
import { fakeUpstreamEnv, startFakeOidcUpstream } from '../helpers/fake-upstream.js';
import { startFakeMcp } from '../helpers/fake-mcp.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { Browser, buildAuthorization, type Stack } from '../helpers/stack.js';

export interface FaultStack extends Stack {
  /** in front of U: P's UPSTREAM_ISSUER */
  u: FaultProxy;
  /** in front of R: P's MCP_UPSTREAM_URL */
  r: FaultProxy;
}

export const UPSTREAM_TIMEOUT_MS = 1000;
export const GATEWAY_TIMEOUT_MS = 1000;

export async function startFaultStack(options: { env?: Record<string, string>; upstreamAccessTokenTtl?: number } = {}): Promise<FaultStack> {
  // P's port and the proxies' from freePort (test/helpers/app.ts): outside the ephemeral range, so
  // no other process's listen(0) or connection takes them meanwhile — P's and R's proxy's are
  // listened on again after a restart or a `down` fault.
  const port = await freePort();
  const uPort = await freePort();
  const upstream = await startFakeOidcUpstream({ callbackUrl: `http://127.0.0.1:${port}/upstream/callback`, issuer: `http://localhost:${uPort}`, accessTokenTtl: options.upstreamAccessTokenTtl });
  const u = await startFaultProxy(upstream.address, uPort);
  const mcp = await startFakeMcp({ countdownDelayMs: 1 });
  const r = await startFaultProxy(mcp.url, await freePort());
  const appOptions = {
    port,
    dir: mkdtempSync(join(tmpdir(), 'mcp-faults-')),
    env: {
      ...fakeUpstreamEnv(upstream),
      UPSTREAM_TIMEOUT: `${UPSTREAM_TIMEOUT_MS / 1000}s`,
      MCP_UPSTREAM_URL: `${r.url}/mcp`,
      GATEWAY_TIMEOUT: `${GATEWAY_TIMEOUT_MS / 1000}s`,
      RATE_LIMIT_AUTHORIZE: '100000/1m',
      RATE_LIMIT_TOKEN: '100000/1m',
      ...options.env,
    },
  };
  const stack: FaultStack = {
    app: await startTestApp(appOptions),
    upstream,
    mcp,
    u,
    r,
    async restart() {
      await stack.app.close();
      // Let this process's keep-alive clients see the old server's connections end (as stack.ts does).
      await new Promise((resolve) => setImmediate(resolve));
      stack.app = await startTestApp(appOptions);
      return stack.app;
    },
    async close() {
      await stack.app.close();
      await u.close();
      await r.close();
      await upstream.close();
      await mcp.close();
    },
  };
  return stack;
}

/** Drive a browser through consent and U's login up to (not into) P's callback; returns its URL. */
export async function toCallback(stack: FaultStack, browser: Browser, clientId: string): Promise<{ callback: string; auth: ReturnType<typeof buildAuthorization> }> {
  const auth = buildAuthorization(stack.app, { clientId });
  const atCallback = (u: string) => u.startsWith(`${stack.app.url}/upstream/callback`);
  const consent = await browser.navigate(auth.url);
  let page = await browser.submit(consent, { action: 'approve' }, { stopAt: atCallback });
  for (let i = 0; i < 4 && page.status !== 0; i++) {
    page = await browser.submit(page, page.html.includes('name="allow"') ? { allow: 'yes' } : { login: 'alice' }, { stopAt: atCallback });
  }
  if (page.status !== 0) throw new Error(`did not reach the callback: ${page.status} ${page.html.slice(0, 300)}`);
  return { callback: page.url, auth };
}

// ── resources ──────────────────────────────────────────────────────────────────────────────────

export interface Resources {
  fds: number;
  tcp: number;
  timers: number;
  /** connections to P's server */
  connections: number;
  /** P's sockets to U and to R (as the proxies count them) */
  toU: number;
  toR: number;
}

const count = (list: string[], type: string) => list.filter((t) => t === type).length;

export async function resources(stack: FaultStack): Promise<Resources> {
  stack.app.runtime.audit.flush();
  const active = process.getActiveResourcesInfo();
  const connections = await new Promise<number>((resolve) => stack.app.server.getConnections((_e, n) => resolve(n)));
  return { fds: readdirSync('/proc/self/fd').length, tcp: count(active, 'TCPSocketWrap'), timers: count(active, 'Timeout'), connections, toU: stack.u.openSockets(), toR: stack.r.openSockets() };
}

/** Close what is idle everywhere (keep-alive pools), so what remains open is what is in use. */
async function settle(stack: FaultStack): Promise<void> {
  stack.app.server.closeIdleConnections();
  await new Promise((r) => setImmediate(r));
}

/**
 * Nothing leaked: within `withinMs` (polled, a few ms at a time) every count is back at or below
 * its value before the fault, keep-alive pools aside (idle connections are closed first).
 */
export async function expectNoLeaks(stack: FaultStack, before: Resources, label: string, withinMs = 3000): Promise<Resources> {
  const deadline = Date.now() + withinMs;
  let now = await resources(stack);
  const ok = (r: Resources) => r.fds <= before.fds && r.tcp <= before.tcp && r.timers <= before.timers && r.connections <= before.connections && r.toU <= before.toU && r.toR <= before.toR;
  while (!ok(now) && Date.now() < deadline) {
    await settle(stack);
    await new Promise((r) => setTimeout(r, 25));
    now = await resources(stack);
  }
  expect(now, `${label}: resources after the fault (before: ${JSON.stringify(before)})`).toEqual({
    fds: Math.min(now.fds, before.fds),
    tcp: Math.min(now.tcp, before.tcp),
    timers: Math.min(now.timers, before.timers),
    connections: Math.min(now.connections, before.connections),
    toU: Math.min(now.toU, before.toU),
    toR: Math.min(now.toR, before.toR),
  });
  return now;
}

/** Resources once everything idle is closed: the baseline a fault case compares with. */
export async function baseline(stack: FaultStack): Promise<Resources> {
  await settle(stack);
  await new Promise((r) => setTimeout(r, 50));
  await settle(stack);
  return resources(stack);
}

/** How long `work` took, ms. */
export async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

/** Another connection holding SQLite's write lock on `stack`'s database while `work` runs (the CLI, a backup). */
export async function whileSqliteLocked<T>(stack: FaultStack, work: () => Promise<T>): Promise<T> {
  const other = new Database(stack.app.config.databasePath);
  other.exec('BEGIN IMMEDIATE');
  try {
    return await work();
  } finally {
    other.exec('ROLLBACK');
    other.close();
  }
}
