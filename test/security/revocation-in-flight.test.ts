/**
 * Threat: a request already in flight when its consent is revoked or its client disabled keeps
 * acting for the user (GW-01, DESIGN §8; found by review, 2026-12-06). Two ways it did:
 * - a request body sent slowly: the token was checked when the headers arrived and the body
 *   streamed on to R as it came, so a `tools/call` finished after the revocation still ran at R
 *   (up to the server's request timeout later). Now every body is read whole before R is asked,
 *   and R is asked only on a token check younger than CHECK_FRESH_MS and made after this
 *   process's last revocation; otherwise it is checked again from a fresh generation read: 401,
 *   R receives nothing.
 * - an answer still streaming (a tool's progress over SSE, the GET stream, a slow R): it kept
 *   flowing for as long as R kept it open. Now each forwarded request is checked again when the
 *   generation moves (at once after a revocation in this process, within STREAM_RECHECK_MS of one
 *   made by another process): the client's response is ended, the request to R aborted, and a
 *   `gateway.response_cut` row says why. A token that expires while its answer streams ends it too,
 *   at the next check.
 */
import { request, createServer, type IncomingMessage, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CHECK_FRESH_MS } from '../../src/gateway/exchange.js';
import { STREAM_RECHECK_MS, UNVERIFIED_MAX_MS } from '../../src/gateway/open-responses.js';
import { auditEvents, listenLoopback, registerClient, rows } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, drive, redeem, startReplica, startStack, type Stack } from '../helpers/stack.js';
import { openSession } from '../helpers/mcp-http.js';

let stack: Stack;
let r: Server;
/** R's requests to /ticking still open, and those closed (by path and token) */
const ticking = new Set<IncomingMessage>();
const closed: string[] = [];
let mcpUrl: string;
let routes: string;

beforeAll(async () => {
  // R for an API route: /ticking/<tag> sends an event every 20 ms until its request closes.
  r = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('event: ping\ndata: {}\n\n');
    ticking.add(req);
    const timer = setInterval(() => res.write('event: tick\ndata: {}\n\n'), 20);
    res.on('close', () => {
      clearInterval(timer);
      ticking.delete(req);
      closed.push(req.url as string);
    });
  });
  const port = await listenLoopback(r);
  routes = `/api/r=http://127.0.0.1:${port}`;
  stack = await startStack({ countdownDelayMs: 100, env: { GATEWAY_ROUTES: routes } });
  mcpUrl = `${stack.app.url}/mcp`;
});
afterAll(async () => {
  await stack?.close();
  r.closeAllConnections();
  r.close();
});

/** A user's token for the API route, with its client and grant. */
async function apiToken(login: string) {
  const client = await registerClient(stack.app);
  const resource = `${stack.app.url}/api/r`;
  const auth = buildAuthorization(stack.app, { clientId: client.client_id, resource });
  const { callback } = await drive(new Browser(), auth.url, auth.redirectUri, { login });
  const token = (await redeem(stack.app, client.client_id, callback.searchParams.get('code') as string, auth.verifier, auth.redirectUri, { resource })).body.access_token as string;
  const [{ grant_id: grantId }] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', client.client_id);
  return { token, clientId: client.client_id as string, grantId: grantId as string };
}

/** Open R's ticking stream through P; resolves once the first event is in. */
async function openTicking(token: string, tag: string) {
  const res = await fetch(`${stack.app.url}/api/r/ticking/${tag}`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  let events = 0;
  let ended: 'done' | 'error' | undefined;
  const pump = (async () => {
    for (;;) {
      const next = await reader.read().catch(() => undefined);
      if (!next) return void (ended = 'error');
      if (next.done) return void (ended = 'done');
      events += (new TextDecoder().decode(next.value).match(/^event: /gm) ?? []).length;
    }
  })();
  for (let i = 0; i < 500 && events === 0; i++) await new Promise((done) => setTimeout(done, 5));
  expect(events).toBeGreaterThan(0);
  return { ended: () => ended, events: () => events, pump, cancel: () => reader.cancel().catch(() => undefined) };
}

/** Wait (bounded, on the monotonic clock: some tests fake Date) until `cond` holds. */
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond() && performance.now() < deadline) await new Promise((done) => setTimeout(done, 5));
}

const cuts = async (clientId: string) => (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.response_cut' && e.client_id === clientId);

describe('GW-01: a request body still arriving when the consent is revoked', () => {
  /** POST a tools/call whose body arrives in two parts; `between` runs once P is reading it, then the rest comes — late (the clock moved past CHECK_FRESH_MS) unless `late` is false. */
  async function slowCall(token: string, sessionId: string, chunked: boolean, between: () => Promise<void>, late = true): Promise<{ status: number; text: string }> {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
    let reading: IncomingMessage | undefined;
    const onRequest = (req: IncomingMessage) => {
      if (req.headers.authorization === `Bearer ${token}` && req.method === 'POST') reading = req;
    };
    stack.app.server.on('request', onRequest);
    try {
      return await new Promise((resolve, reject) => {
        const url = new URL(mcpUrl);
        const length: Record<string, string | number> = chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': Buffer.byteLength(body) };
        const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, ...length };
        const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers }, (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        req.write(body.slice(0, 10));
        void (async () => {
          await until(() => (reading?.listenerCount('data') ?? 0) > 0); // the token was checked; P reads the body
          expect(reading?.listenerCount('data'), 'P is reading the body').toBeGreaterThan(0);
          await between();
          if (late) {
            vi.useFakeTimers({ toFake: ['Date'] });
            vi.setSystemTime(Date.now() + CHECK_FRESH_MS + 1000);
          }
          req.end(body.slice(10));
        })().catch(reject);
      });
    } finally {
      vi.useRealTimers();
      stack.app.server.off('request', onRequest);
    }
  }

  for (const chunked of [false, true]) {
    it(`refuses it with 401 once it is in, R receiving nothing (${chunked ? 'chunked' : 'Content-Length'}; no MCP_TOOL_SCOPES)`, async () => {
      const { tokens, clientId } = await authorizeClient(stack, new Browser(), { login: `slow-body-${chunked}` });
      const token = tokens.body.access_token as string;
      const [{ grant_id: grantId }] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId);
      const sessionId = await openSession(mcpUrl, token);
      const before = stack.mcp.received.length;
      const res = await slowCall(token, sessionId, chunked, () => stack.app.runtime.revocation.revokeGrant(grantId as string, 'user').then(() => undefined));
      expect(res.status).toBe(401);
      expect(res.text).not.toContain('upstream_user');
      expect(stack.mcp.received.length, 'R received nothing').toBe(before);
    });
  }

  it('refuses a body finished at once after a revocation in this process (not only a slow one), R receiving nothing', async () => {
    const { tokens, clientId } = await authorizeClient(stack, new Browser(), { login: 'fast-after-revoke' });
    const token = tokens.body.access_token as string;
    const [{ grant_id: grantId }] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId);
    const sessionId = await openSession(mcpUrl, token);
    const before = stack.mcp.received.length;
    const res = await slowCall(token, sessionId, true, () => stack.app.runtime.revocation.revokeGrant(grantId as string, 'user').then(() => undefined), false);
    expect(res.status).toBe(401);
    expect(stack.mcp.received.length, 'R received nothing').toBe(before);
  });

  it('checks a stale request again once, not until a check happens to be quick: a database slower than CHECK_FRESH_MS still answers', async () => {
    const { tokens } = await authorizeClient(stack, new Browser(), { login: 'slow-database' });
    const token = tokens.body.access_token as string;
    const sessionId = await openSession(mcpUrl, token);
    const before = stack.mcp.received.length;
    // Every reading of the clock is 2 × CHECK_FRESH_MS after the last: every check P makes is stale by the time R would be asked.
    let clock = Date.now();
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => (clock += 2 * CHECK_FRESH_MS));
    try {
      const res = await fetch(mcpUrl, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId },
        body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
        signal: AbortSignal.timeout(10_000),
      });
      expect(res.status).toBe(200);
      await res.body?.cancel();
    } finally {
      spy.mockRestore();
    }
    expect(stack.mcp.received.length).toBe(before + 1);
  });

  it('forwards a slow body whose token still passes the second check', async () => {
    const { tokens } = await authorizeClient(stack, new Browser(), { login: 'slow-but-fine' });
    const sessionId = await openSession(mcpUrl, tokens.body.access_token as string);
    const before = stack.mcp.received.length;
    const res = await slowCall(tokens.body.access_token as string, sessionId, true, async () => undefined);
    expect(res.status).toBe(200);
    expect(res.text).toContain('"upstream_user":"slow-but-fine"');
    expect(stack.mcp.received.length).toBe(before + 1);
  });
});

describe('GW-01: a response still streaming when its authorization ends', () => {
  it('ends a tool call streaming progress over SSE once the consent is revoked in this process', async () => {
    const { tokens, clientId } = await authorizeClient(stack, new Browser(), { login: 'stream-revoke' });
    const token = tokens.body.access_token as string;
    const [{ grant_id: grantId }] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId);
    const sessionId = await openSession(mcpUrl, token);
    const res = await fetch(mcpUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'countdown', arguments: { from: 20 }, _meta: { progressToken: 'p' } } }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('notifications/progress');
    await stack.app.runtime.revocation.revokeGrant(grantId as string, 'user');
    let text = '';
    const outcome = await (async () => {
      for (;;) {
        const next = await reader.read().catch(() => undefined);
        if (!next) return 'cut';
        if (next.done) return 'ended';
        text += new TextDecoder().decode(next.value);
      }
    })();
    expect(outcome, 'the response is destroyed, not ended as if complete').toBe('cut');
    expect(text).not.toContain('liftoff'); // 20 steps × 100 ms: the countdown never finished
    expect((await cuts(clientId)).map((e) => [e.reason, e.subject])).toEqual([['unknown_token', 'stream-revoke']]); // the grant's tokens went with it
    expect(stack.app.runtime.gateway.openResponses.size).toBe(0);
  });

  it('ends an open stream and aborts the request to R once the consent is revoked; other streams go on', async () => {
    const victim = await apiToken('stream-victim');
    const bystander = await apiToken('stream-bystander');
    const cut = await openTicking(victim.token, 'victim');
    const other = await openTicking(bystander.token, 'bystander');
    await stack.app.runtime.revocation.revokeGrant(victim.grantId, 'user');
    await until(() => closed.includes('/ticking/victim') && cut.ended() !== undefined);
    expect(closed, 'the request to R was aborted').toContain('/ticking/victim');
    expect(cut.ended()).toBe('error');
    // The bystander's stream still runs: R goes on sending, nothing closed it.
    const seen = other.events();
    await until(() => other.events() >= seen + 3);
    expect(other.events()).toBeGreaterThanOrEqual(seen + 3);
    expect(other.ended()).toBeUndefined();
    expect(closed).not.toContain('/ticking/bystander');
    expect((await cuts(victim.clientId)).map((e) => e.reason)).toEqual(['unknown_token']);
    expect(await cuts(bystander.clientId)).toEqual([]);
    await other.cancel();
  });

  it('ends an open stream at once when the client revokes its access token alone at /revoke', async () => {
    const user = await apiToken('stream-token-revoked');
    const stream = await openTicking(user.token, 'token-revoked');
    const epoch = stack.app.runtime.gateway.openResponses.epoch;
    const revoked = await fetch(`${stack.app.url}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: user.token, client_id: user.clientId }),
    });
    expect(revoked.status).toBe(200);
    expect(stack.app.runtime.gateway.openResponses.epoch, 'the revocation was seen in this process, not left to the next tick').toBeGreaterThan(epoch);
    await until(() => closed.includes('/ticking/token-revoked') && stream.ended() !== undefined);
    expect(closed).toContain('/ticking/token-revoked');
    expect(stream.ended()).toBe('error');
    expect((await cuts(user.clientId)).map((e) => e.reason)).toEqual(['unknown_token']);
  });

  it('ends an open stream once an admin disables the client', async () => {
    const user = await apiToken('stream-disabled');
    const stream = await openTicking(user.token, 'disabled');
    await stack.app.runtime.ops.disableClient(user.clientId, { actor: 'admin', subject: 'root' });
    await until(() => closed.includes('/ticking/disabled') && stream.ended() !== undefined);
    expect(closed).toContain('/ticking/disabled');
    expect(stream.ended()).toBe('error');
    const reasons = (await cuts(user.clientId)).map((e) => e.reason);
    expect(reasons).toHaveLength(1);
    expect(['client_disabled', 'consent_revoked', 'unknown_token']).toContain(reasons[0]); // the flag, then each consent's cascade
  });

  it(`ends an open stream within ${STREAM_RECHECK_MS} ms of a revocation made by another process on the same database`, async () => {
    const user = await apiToken('stream-replica');
    const stream = await openTicking(user.token, 'replica');
    const replica = await startReplica(stack, { GATEWAY_ROUTES: routes });
    try {
      await replica.runtime.revocation.revokeGrant(user.grantId, 'user');
      const revokedAt = Date.now();
      await until(() => closed.includes('/ticking/replica'), STREAM_RECHECK_MS * 5);
      expect(closed).toContain('/ticking/replica');
      expect(Date.now() - revokedAt).toBeLessThan(STREAM_RECHECK_MS * 3); // one check interval, with room for a loaded machine
      await until(() => stream.ended() !== undefined);
      expect(stream.ended()).toBe('error');
      expect((await cuts(user.clientId)).map((e) => e.reason)).toEqual(['unknown_token']);
    } finally {
      await replica.close();
    }
  });

  it('ends an open stream once its token expires, at the next check, with no change to the database', async () => {
    const user = await apiToken('stream-expires');
    const stream = await openTicking(user.token, 'expires');
    try {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(Date.now() + 48 * 3600_000); // past the access token's lifetime
      await until(() => closed.includes('/ticking/expires') && stream.ended() !== undefined, STREAM_RECHECK_MS * 5);
      expect(closed).toContain('/ticking/expires');
      expect(stream.ended()).toBe('error');
      expect((await cuts(user.clientId)).map((e) => e.reason)).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it(`ends an open stream whose token could not be checked for ${UNVERIFIED_MAX_MS} ms (the generation unreadable), as unverified`, async () => {
    const user = await apiToken('stream-unverified');
    const stream = await openTicking(user.token, 'unverified');
    // The open answers' generation reads fail from now on (a replica cut off from its database).
    const deps = (stack.app.runtime.gateway.openResponses as unknown as { deps: { generation: () => unknown } }).deps;
    const read = deps.generation;
    let failed = 0;
    let restoreTick = () => undefined as unknown;
    deps.generation = () => {
      failed += 1;
      throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
    };
    try {
      await until(() => failed >= 2, STREAM_RECHECK_MS * 5); // two failed checks: kept
      expect(stream.ended()).toBeUndefined();
      expect(closed).not.toContain('/ticking/unverified');
      // UNVERIFIED_MAX_MS later on the monotonic clock the bound is counted on
      const responses = stack.app.runtime.gateway.openResponses as unknown as { tick: () => number };
      const tick = responses.tick;
      responses.tick = () => tick() + UNVERIFIED_MAX_MS;
      restoreTick = () => (responses.tick = tick);
      await until(() => closed.includes('/ticking/unverified') && stream.ended() !== undefined, STREAM_RECHECK_MS * 5);
      expect(closed, 'the request to R was aborted').toContain('/ticking/unverified');
      expect(stream.ended()).toBe('error');
      expect((await cuts(user.clientId)).map((e) => e.reason)).toEqual(['unverified']);
    } finally {
      restoreTick();
      deps.generation = read;
    }
  });
});
