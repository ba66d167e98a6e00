/**
 * Replicas end to end (issue 11, DESIGN §8): three `mcp-consent-proxy serve` PROCESSES on one
 * fresh PostgreSQL database with one SECRET_KEY, started at the same moment (they migrate once,
 * under the advisory lock), behind a round-robin balancer (test/helpers/balancer.ts) whose URL is
 * their shared PUBLIC_URL; a fake upstream U and the demo MCP server R on loopback.
 * - The MCP SDK v1 client goes through the whole flow (401, discovery, register, authorize,
 *   consent, U's login, callback, token, gateway) with every request on the next replica: the
 *   flow's steps and the gateway calls are served by all three.
 * - A consent revoked at /account on one replica: the next gateway request, on another replica, is
 *   401 and R is not contacted — and so on every replica, though each served the token before.
 * - One rate-limit budget per client IP (the shared store on PostgreSQL): a burst of registrations
 *   from one address, spread over the three replicas, is 429 after the configured total — on every
 *   replica — and registers nothing more.
 * - SIGKILL one replica under load: the balancer skips it (connection refused); the others keep
 *   answering; only requests in flight on the killed one fail (502 from the balancer, never a
 *   wrong answer); every request the survivors answered has its audit row.
 * - At the end the survivors drain on SIGTERM (exit 0) and `audit verify` with the same
 *   DATABASE_URL passes against each replica's checkpoint file, with rows written by all three.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { freePort, mcpClientMetadata, registerClient, TEST_SECRET_KEY, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { fakeUpstreamEnv, startFakeOidcUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startFakeMcp, type FakeMcp } from '../helpers/fake-mcp.js';
import { startBalancer, type Balancer } from '../helpers/balancer.js';
import { Browser, buildAuthorization, drive, redeem, type Stack } from '../helpers/stack.js';
import { MemoryOAuthProvider } from '../helpers/mcp-client.js';
import { callTool, openSession, parseSse } from '../helpers/mcp-http.js';
import { csrfOf, signIn } from '../helpers/admin.js';
import { run, type Io } from '../../src/cli/index.js';
import { CLI_ARGS } from '../helpers/cli-bin.js';

const REPLICAS = 3;
const REGISTER_BUDGET = 5;

interface Replica {
  index: number;
  port: number;
  dir: string;
  child: ChildProcess;
  output: string;
  exit: Promise<number | null>;
}

let db: TestDatabase;
let upstream: FakeUpstream;
let mcp: FakeMcp;
let balancer: Balancer;
const ports: number[] = [];
const replicas: Replica[] = [];

function replicaEnv(port: number, dir: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    PUBLIC_URL: balancer.url,
    PORT: String(port),
    DATABASE_URL: db.url,
    DATABASE_PATH: join(dir, 'proxy.db'), // the data directory: this replica's audit checkpoint file
    DATABASE_POOL_MAX: '4',
    SECRET_KEY: TEST_SECRET_KEY,
    ...fakeUpstreamEnv(upstream),
    MCP_UPSTREAM_URL: mcp.url,
    // The balancer appends the client's address to X-Forwarded-For (test/helpers/balancer.ts).
    TRUST_PROXY: 'loopback',
    RATE_LIMIT_REGISTER: `${REGISTER_BUDGET}/1m`,
    LOG_LEVEL: 'warn',
  };
}

function spawnReplica(index: number): Replica {
  const dir = mkdtempSync(join(tmpdir(), `replica-${index}-`));
  const port = ports[index] as number;
  const child = spawn(process.execPath, [...CLI_ARGS, 'serve'], { env: replicaEnv(port, dir), stdio: ['ignore', 'pipe', 'pipe'] });
  const replica: Replica = { index, port, dir, child, output: '', exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
  child.stdout?.on('data', (d) => (replica.output += d));
  child.stderr?.on('data', (d) => (replica.output += d));
  return replica;
}

async function untilListening(replica: Replica): Promise<void> {
  let exited = false;
  void replica.exit.then(() => (exited = true));
  for (let i = 0; i < 600 && !exited && !replica.output.includes('MCP Consent Proxy listening'); i++) await new Promise((r) => setTimeout(r, 50));
  if (!replica.output.includes('MCP Consent Proxy listening')) throw new Error(`replica ${replica.index} did not start:\n${replica.output}`);
}

beforeAll(async () => {
  db = await createTestDatabase('replicas');
  for (let i = 0; i < REPLICAS; i++) ports.push(await freePort());
  balancer = await startBalancer(() => ports);
  upstream = await startFakeOidcUpstream({ callbackUrl: `${balancer.url}/upstream/callback` });
  mcp = await startFakeMcp();
  // All three at once, on an empty database: one migrates, the others wait on the advisory lock.
  for (let i = 0; i < REPLICAS; i++) replicas.push(spawnReplica(i));
  await Promise.all(replicas.map(untilListening));
}, 60_000);

afterAll(async () => {
  for (const replica of replicas) if (replica.child.exitCode === null && replica.child.signalCode === null) replica.child.kill('SIGKILL');
  await Promise.all(replicas.map((r) => r.exit));
  await balancer?.close();
  await upstream?.close();
  await mcp?.close();
  await db?.drop();
});

/** Stands in for a TestApp where the helpers only need `url`: the balancer is the one public URL. */
const viaBalancer = () => ({ url: balancer.url }) as TestApp;
const gatewayLog = () => balancer.log.filter((e) => e.path.startsWith('/mcp'));
const logSince = (n: number) => balancer.log.filter((e) => e.n >= n);

describe('three replicas on one PostgreSQL behind a round-robin balancer', () => {
  let token = '';
  let sessionId = '';

  it('the MCP SDK client goes through the whole flow with consecutive requests on different replicas', async () => {
    const mcpUrl = new URL(`${balancer.url}/mcp`);
    const provider = new MemoryOAuthProvider('http://127.0.0.1:48131/callback', 'Replicas SDK client');
    const first = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
    await expect(new Client({ name: 'replicas', version: '1' }).connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
    const result = await drive(new Browser('alice'), (provider.authorizationUrl as URL).href, provider.callbackUrl, { login: 'alice' });
    expect(result.seen).toEqual(['consent', 'upstream-login', 'upstream-consent']);
    await first.finishAuth(result.callback.searchParams.get('code') as string);

    const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
    const client = new Client({ name: 'replicas', version: '1' });
    await client.connect(transport);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['whoami', 'echo', 'countdown']);
    for (let i = 0; i < 6; i++) {
      const echoed = await client.callTool({ name: 'echo', arguments: { message: `call ${i}` } });
      expect(echoed.content).toEqual([{ type: 'text', text: `call ${i}` }]);
    }
    expect((await client.callTool({ name: 'whoami', arguments: {} })).structuredContent).toMatchObject({ upstream_user: 'alice' });
    token = provider.tokensValue?.access_token as string;
    sessionId = transport.sessionId as string;
    await client.close();

    // Every step of the flow and the gateway calls were served by all three replicas, no
    // sticky sessions: each step landed wherever the balancer sent it.
    const servedBy = (match: (path: string, method: string) => boolean) => new Set(balancer.log.filter((e) => match(e.path, e.method)).map((e) => e.backend));
    expect(servedBy((p) => p.startsWith('/mcp')).size).toBe(REPLICAS);
    const flowSteps = servedBy((p) => ['/register', '/authorize', '/consent', '/upstream/callback', '/token'].some((s) => p.startsWith(s)));
    expect(flowSteps.size).toBe(REPLICAS);
    // Consecutive gateway requests landed on different replicas, and were answered.
    const calls = gatewayLog();
    const pairs = calls.filter((e, i) => i > 0 && e.n === (calls[i - 1] as (typeof calls)[number]).n + 1).map((e) => [balancer.log.find((p) => p.n === e.n - 1)?.backend, e.backend]);
    expect(pairs.length).toBeGreaterThan(5);
    expect(pairs.every(([a, b]) => a !== b)).toBe(true);
    expect(calls.filter((e) => e.method === 'POST').map((e) => e.status)).toEqual([401, ...calls.filter((e) => e.method === 'POST').slice(1).map(() => expect.toBeOneOf([200, 202]))]);
  }, 30_000);

  it('a consent revoked at /account on one replica: the next gateway request, on another, is 401 and R is not contacted', async () => {
    // Each replica serves the token once more (and caches what it knows of it).
    for (let i = 0; i < REPLICAS; i++) expect((await callTool(`${balancer.url}/mcp`, token, sessionId, 'whoami')).status).toBe(200);
    const browser = new Browser('alice');
    // A fresh browser: sign in to /account through U (the flow above used another browser).
    const page = await signIn({ app: viaBalancer() } as Stack, browser, 'account', 'alice');
    const action = /action="([^"]*\/account\/consents\/\d+\/revoke)"/.exec(page.html)?.[1];
    expect(action).toBeTruthy();
    const before = balancer.log.length;
    const revoked = await browser.navigate(new URL(action as string, balancer.url).href, { method: 'POST', body: new URLSearchParams({ csrf: csrfOf(page) }), initiator: balancer.url });
    expect(revoked.hops[0]?.status).toBe(303);
    const revoker = logSince(before).find((e) => e.method === 'POST' && e.path.includes('/revoke'))?.backend;
    expect(revoker).toBeDefined();

    const received = mcp.received.length;
    const next = balancer.log.length;
    const refused = await callTool(`${balancer.url}/mcp`, token, sessionId, 'whoami');
    expect(refused.status).toBe(401);
    const servedBy = logSince(next)[0]?.backend;
    expect(servedBy).not.toBe(revoker);
    // ...and on every other replica too.
    for (let i = 0; i < REPLICAS - 1; i++) expect((await callTool(`${balancer.url}/mcp`, token, sessionId, 'whoami')).status).toBe(401);
    expect(new Set(logSince(next).map((e) => e.backend)).size).toBe(REPLICAS);
    expect(mcp.received.length).toBe(received);
  }, 30_000);

  it('one rate-limit budget per client IP: a burst spread over the replicas is 429 after the configured total, on every replica', async () => {
    const from = '198.51.100.30';
    const clients = async () => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        return Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM clients_meta')).rows[0]?.n);
      } finally {
        await client.end();
      }
    };
    const before = await clients();
    const burst: { status: number; backend: number }[] = [];
    for (let i = 0; i < 3 * REGISTER_BUDGET; i++) {
      const res = await fetch(`${balancer.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': from }, body: JSON.stringify(mcpClientMetadata()) });
      await res.arrayBuffer();
      burst.push({ status: res.status, backend: Number(res.headers.get('x-balancer-backend')) });
    }
    // Each replica alone would have allowed the whole budget (3 × REGISTER_BUDGET in all).
    expect(burst.map((b) => b.status)).toEqual([...Array(REGISTER_BUDGET).fill(201), ...Array(2 * REGISTER_BUDGET).fill(429)]);
    expect(new Set(burst.slice(0, REGISTER_BUDGET).map((b) => b.backend)).size).toBe(REPLICAS);
    expect(new Set(burst.slice(REGISTER_BUDGET).map((b) => b.backend)).size).toBe(REPLICAS);
    expect(await clients()).toBe(before + REGISTER_BUDGET);
  }, 30_000);

  it('SIGKILL of one replica under load: the others keep answering, only requests in flight on it fail', async () => {
    const app = viaBalancer();
    const { client_id: clientId } = await registerClient(app);
    const auth = buildAuthorization(app, { clientId });
    const result = await drive(new Browser('bob'), auth.url, auth.redirectUri, { login: 'bob' });
    const tokens = await redeem(app, clientId, result.callback.searchParams.get('code') as string, auth.verifier, auth.redirectUri);
    expect(tokens.status).toBe(200);
    const bobToken = tokens.body.access_token as string;
    const bobSession = await openSession(`${balancer.url}/mcp`, bobToken);

    const victim = replicas[REPLICAS - 1] as Replica;
    const TOTAL = 240;
    const WORKERS = 4;
    const KILL_AFTER = 60;
    const outcomes: { i: number; status: number; backend: number; ok: boolean; cut: boolean; startedAfterKill: boolean; failuresSeenAtStart: number; requestId: string | null }[] = [];
    // One tool call through the balancer. A response the victim had begun (the gateway flushes an
    // SSE answer's headers before its event) is cut mid-body when it dies: the balancer sent its
    // headers on (flushHeaders, test/helpers/balancer.ts), so the test knows which backend it was;
    // the body read fails — a failed request in flight on the victim (found in CI: it threw).
    const call = async (i: number) => {
      const res = await fetch(`${balancer.url}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18', authorization: `Bearer ${bobToken}`, 'mcp-session-id': bobSession },
        body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'echo', arguments: { message: `load ${i}` } } }),
      });
      const text = await res.text().catch(() => undefined);
      const type = res.headers.get('content-type') ?? '';
      const messages = !text ? [] : type.startsWith('text/event-stream') ? parseSse(text) : type.includes('json') ? [JSON.parse(text)] : [];
      return { status: res.status, backend: Number(res.headers.get('x-balancer-backend')), cut: text === undefined, requestId: res.headers.get('x-request-id'), text: messages[0]?.result?.content?.[0]?.text };
    };
    let issued = 0;
    let failuresSeen = 0;
    let answered = 0;
    let killed = false;
    const worker = async () => {
      while (issued < TOTAL) {
        const i = issued++;
        const startedAfterKill = killed;
        const failuresSeenAtStart = failuresSeen;
        const res = await call(i);
        const ok = res.status === 200 && !res.cut && res.text === `load ${i}`;
        if (!ok) failuresSeen++;
        outcomes.push({ i, status: res.status, backend: res.backend, ok, cut: res.cut, startedAfterKill, failuresSeenAtStart, requestId: res.requestId });
        if (++answered === KILL_AFTER) {
          victim.child.kill('SIGKILL');
          killed = true;
        }
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, worker));
    expect(await victim.exit).toBeNull(); // killed by a signal
    expect(victim.child.signalCode).toBe('SIGKILL');

    expect(outcomes).toHaveLength(TOTAL);
    const failed = outcomes.filter((o) => !o.ok);
    // Only requests on the killed replica failed, each a 502 from the balancer or an answer cut
    // mid-body (never a wrong answer), at most those in flight around the kill.
    expect(failed.every((o) => (o.status === 502 || (o.status === 200 && o.cut)) && o.backend === victim.index)).toBe(true);
    expect(failed.length).toBeLessThanOrEqual(2 * WORKERS);
    expect(balancer.dead).toEqual(new Set([victim.index]));
    const afterKill = outcomes.filter((o) => o.startedAfterKill);
    expect(afterKill.length).toBeGreaterThan(TOTAL - KILL_AFTER - WORKERS);
    // Every request issued once the last failure had been answered went to the two others, and
    // they answered it. (Not "every answer after the last failure": a reply the victim sent just
    // before the kill can reach this test after a 502 from it.)
    const rest = outcomes.filter((o) => o.startedAfterKill && o.failuresSeenAtStart === failed.length);
    expect(rest.length).toBeGreaterThan(TOTAL / 2);
    expect(rest.every((o) => o.ok && o.backend !== victim.index)).toBe(true);
    expect(new Set(rest.map((o) => o.backend)).size).toBe(REPLICAS - 1);
  }, 40_000);

  it('the survivors drain on SIGTERM; audit verify passes on every replica\'s checkpoint, with rows written by all three', async () => {
    const survivors = replicas.filter((r) => r.child.signalCode === null);
    expect(survivors).toHaveLength(REPLICAS - 1);
    for (const replica of survivors) replica.child.kill('SIGTERM');
    expect(await Promise.all(survivors.map((r) => r.exit))).toEqual(survivors.map(() => 0));

    for (const replica of replicas) {
      const io = capture({ DATABASE_URL: db.url, DATABASE_PATH: join(replica.dir, 'proxy.db'), SECRET_KEY: TEST_SECRET_KEY });
      expect(await run(['audit', 'verify', '--json'], io), io.stderr.join('\n')).toBe(0);
      expect(JSON.parse(io.stdout[0] as string)).toMatchObject({ ok: true });
    }

    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const rows = (await client.query<{ event: string; request_id: string | null }>('SELECT event, request_id FROM audit_log ORDER BY seq')).rows;
      expect(rows.filter((r) => r.event === 'system.started')).toHaveLength(REPLICAS);
      expect(rows.filter((r) => r.event === 'system.stopped')).toHaveLength(REPLICAS - 1);
      // Rows written by each replica: the audit rows of the requests the balancer saw it answer.
      const rowRequestIds = new Set(rows.map((r) => r.request_id).filter(Boolean));
      for (let i = 0; i < REPLICAS; i++) {
        const answeredIds = balancer.log.filter((e) => e.backend === i && e.requestId).map((e) => e.requestId as string);
        const withRows = answeredIds.filter((id) => rowRequestIds.has(id));
        expect(withRows.length, `audit rows of replica ${i}`).toBeGreaterThan(10);
      }
      // Every gateway request a survivor answered has its row (the killed replica may lose its
      // last ≤ 200 ms of group-committed gateway rows: README "Audit durability").
      const forwarded = new Set(rows.filter((r) => r.event === 'gateway.forwarded').map((r) => r.request_id));
      const victim = REPLICAS - 1;
      const survivorCalls = gatewayLog().filter((e) => e.backend !== victim && e.method === 'POST' && e.status === 200);
      expect(survivorCalls.length).toBeGreaterThan(100);
      expect(survivorCalls.filter((e) => !forwarded.has(e.requestId as string))).toEqual([]);
    } finally {
      await client.end();
    }
  }, 30_000);
});

function capture(env: Record<string, string>): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, env, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}
