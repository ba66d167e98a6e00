/**
 * The gateway (DESIGN §2 step 8; GW-01..14): P's token in, U's token out, Streamable HTTP
 * streamed both ways.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { openTestSql } from '../helpers/engine.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auditEvents, listenLoopback, registerClient, rows } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, drive, redeem, refresh, startStack, type Stack } from '../helpers/stack.js';
import { callTool, mcpPost, openSession, INITIALIZE } from '../helpers/mcp-http.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('gateway › forwarding', () => {
  let stack: Stack;
  let token: string;
  let mcpUrl: string;
  beforeAll(async () => {
    stack = await startStack({ countdownDelayMs: 120 });
    token = (await authorizeClient(stack, new Browser(), { login: 'alice' })).tokens.body.access_token;
    mcpUrl = `${stack.app.url}/mcp`;
  });
  afterAll(() => stack.close());

  it('forwards a session (initialize, tools/list, tools/call, GET stream, DELETE) with U\'s token and the MCP headers', async () => {
    const sessionId = await openSession(mcpUrl, token);
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const list = await mcpPost(mcpUrl, token, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { 'mcp-session-id': sessionId });
    expect(list.status).toBe(200);
    expect(list.messages[0].result.tools.map((t: { name: string }) => t.name)).toEqual(['whoami', 'echo', 'countdown']);
    const who = await callTool(mcpUrl, token, sessionId, 'whoami');
    const upstreamToken = stack.upstream.issued.find((t) => t.sub === 'alice')?.token as string;
    expect(who.messages[0].result.structuredContent).toEqual({ upstream_user: 'alice', upstream_token_sha256: sha(upstreamToken) });
    const last = stack.mcp.received.at(-1);
    expect(last?.headers.authorization).toBe(`Bearer ${upstreamToken}`);
    expect(last?.headers['mcp-session-id']).toBe(sessionId);
    expect(last?.headers['mcp-protocol-version']).toBe('2025-06-18');

    const stream = await fetch(mcpUrl, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'mcp-session-id': sessionId } });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await stream.body?.cancel();

    const end = await fetch(mcpUrl, { method: 'DELETE', headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sessionId } });
    expect(end.status).toBe(200);
    expect((await callTool(mcpUrl, token, sessionId, 'echo', { message: 'x' })).status).toBe(404);
    expect((await auditEvents(stack.app)).some((e) => e.event === 'gateway.forwarded' && e.subject === 'alice')).toBe(true);
  });

  it('streams progress notifications as they happen, in order, before the result (SSE, no buffering)', async () => {
    const client = new Client({ name: 'sse-test', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    const arrivals: { progress: number; at: number }[] = [];
    const started = Date.now();
    const result = await client.callTool({ name: 'countdown', arguments: { from: 5 } }, undefined, {
      onprogress: (p) => arrivals.push({ progress: p.progress, at: Date.now() - started }),
    });
    const done = Date.now() - started;
    expect((result.content as { text: string }[])[0]?.text).toBe('liftoff');
    expect(arrivals.map((a) => a.progress)).toEqual([1, 2, 3, 4, 5]);
    // Each event is flushed when sent: they arrive spread over the call (120 ms apart at R, 480 ms
    // from the first to the last), the first long before the result. Buffered, they would arrive
    // together with it. (Not each gap: a pause of this process shortens one and lengthens another.)
    expect(done - (arrivals[0]?.at ?? done)).toBeGreaterThanOrEqual(400);
    expect((arrivals[4]?.at ?? 0) - (arrivals[0]?.at ?? 0)).toBeGreaterThanOrEqual(300);
    await client.close();
  });

  it('refuses a revoked consent on the very next request (no cache lag)', async () => {
    const { tokens, clientId } = await authorizeClient(stack, new Browser(), { login: 'revoke-me' });
    const sessionId = await openSession(mcpUrl, tokens.body.access_token);
    const before = stack.mcp.received.length;
    const [consent] = await stack.app.runtime.stores.consents.unrevokedForClient(clientId);
    await stack.app.runtime.revocation.revokeGrant(consent?.grant_id as string, 'user');
    const after = await callTool(mcpUrl, tokens.body.access_token, sessionId, 'whoami');
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(stack.mcp.received.length).toBe(before);
  });

  it('answers 403 insufficient_scope naming the scope and the token\'s own, for step-up (GW-06/07): re-authorizing with exactly that set keeps what it had', async () => {
    const restricted = await startStack({ env: { MCP_SCOPES: 'mcp:tools mcp:read mcp:write' } });
    try {
      const browser = new Browser();
      const { tokens, clientId } = await authorizeClient(restricted, browser, { scope: 'mcp:read mcp:write' });
      const res = await mcpPost(`${restricted.app.url}/mcp`, tokens.body.access_token, INITIALIZE);
      expect(res.status).toBe(403);
      // Review 2026-12-07: the challenge named mcp:tools alone; a client that followed it lost mcp:read and mcp:write.
      expect(res.headers.get('www-authenticate')).toBe(
        `Bearer resource_metadata="${restricted.app.url}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools mcp:read mcp:write", error="insufficient_scope", error_description="this resource requires the scope mcp:tools"`,
      );
      expect(restricted.mcp.received).toHaveLength(0);
      const scope = /scope="([^"]+)"/.exec(res.headers.get('www-authenticate') ?? '')?.[1];
      const stepped = await authorizeClient(restricted, browser, { clientId, scope });
      expect(stepped.tokens.body.scope.split(' ').sort()).toEqual(['mcp:read', 'mcp:tools', 'mcp:write']);
      expect((await mcpPost(`${restricted.app.url}/mcp`, stepped.tokens.body.access_token, INITIALIZE)).status).toBe(200);
      expect(restricted.mcp.received.length).toBeGreaterThan(0);
    } finally {
      await restricted.close();
    }
  });

  it('never accepts the token from the query string (GW-08)', async () => {
    const res = await fetch(`${mcpUrl}?access_token=${token}`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify(INITIALIZE) });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_request"');
  });

  it('refuses bodies over GATEWAY_MAX_BODY with 413, declared or streamed', async () => {
    const small = await startStack({ env: { GATEWAY_MAX_BODY: '1kb' } });
    try {
      const { tokens } = await authorizeClient(small, new Browser());
      const big = JSON.stringify({ ...INITIALIZE, params: { ...INITIALIZE.params, pad: 'x'.repeat(4000) } });
      const declared = await fetch(`${small.app.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${tokens.body.access_token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: big });
      expect(declared.status).toBe(413);
      expect(await declared.json()).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Request body exceeds 1024 bytes' } });
      const streamed = await fetch(`${small.app.url}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.body.access_token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(big)); c.close(); } }),
        duplex: 'half',
      } as RequestInit);
      expect(streamed.status).toBe(413);
      expect(small.mcp.received.filter((r) => r.method === 'POST')).toHaveLength(0);
      // A streamed (chunked) body under the limit goes through.
      const ok = await fetch(`${small.app.url}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.body.access_token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(JSON.stringify(INITIALIZE))); c.close(); } }),
        duplex: 'half',
      } as RequestInit);
      expect(ok.status).toBe(200);
      await ok.text();
    } finally {
      await small.close();
    }
  });
});

describe('gateway › upstream failures', () => {
  it('answers 502 quickly when the MCP server is down, 504 at GATEWAY_TIMEOUT when it is slow', async () => {
    const hanging: Server = createServer(() => {
      /* never answers */
    });
    const port = await listenLoopback(hanging);
    const slow = await startStack({ env: { MCP_UPSTREAM_URL: `http://127.0.0.1:${port}/mcp`, GATEWAY_TIMEOUT: '1s' } });
    const down = await startStack({ env: { MCP_UPSTREAM_URL: 'http://127.0.0.1:9/mcp' } });
    try {
      const downToken = (await authorizeClient(down, new Browser())).tokens.body.access_token;
      let t = Date.now();
      const refused = await mcpPost(`${down.app.url}/mcp`, downToken, INITIALIZE);
      expect(refused.status).toBe(502);
      expect(Date.now() - t).toBeLessThan(2000);
      expect(JSON.parse(refused.text)).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'The MCP server is not reachable' } });

      const slowToken = (await authorizeClient(slow, new Browser())).tokens.body.access_token;
      t = Date.now();
      const timedOut = await mcpPost(`${slow.app.url}/mcp`, slowToken, INITIALIZE);
      const waited = Date.now() - t;
      expect(timedOut.status).toBe(504);
      expect(waited).toBeGreaterThanOrEqual(900);
      expect(waited).toBeLessThan(5000);
      expect((await auditEvents(slow.app)).filter((e) => e.event === 'gateway.upstream_failed').map((e) => e.reason)).toEqual(['upstream_timeout']);
    } finally {
      await slow.close();
      await down.close();
      hanging.closeAllConnections();
      hanging.close();
    }
  });
});

describe('gateway › R refusing U\'s token, clients hanging up', () => {
  // A scripted R: answers 401 to every request carrying `refuse` in its path, otherwise opens a
  // server-sent stream that never ends on its own and reports when its request is closed.
  let r: Server;
  let stack: Stack;
  let token: string;
  const closed: string[] = [];
  const seen: string[] = [];
  /** what R sends on `/big`: 8 MiB in 64 KiB chunks */
  const big = Array.from({ length: 128 }, (_, i) => Buffer.alloc(65_536, `chunk ${i} of R's big answer;`));
  beforeAll(async () => {
    r = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      if (req.url?.includes('big')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': big.length * 65_536 });
        let i = 0;
        const pump = () => {
          while (i < big.length) if (!res.write(big[i++])) return void res.once('drain', pump);
          res.end();
        };
        pump();
        return;
      }
      if (req.url?.includes('ticking')) {
        // an event on every turn of R's event loop, until the request is closed
        let open = true;
        res.on('close', () => (open = false));
        const tick = () => {
          if (!open) return;
          res.write('event: tick\ndata: {}\n\n');
          setImmediate(tick);
        };
        setImmediate(tick);
      }
      if (req.url?.includes('refuse')) {
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' });
        res.end('{"error":"invalid_token","detail":"R\'s own words"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: ping\ndata: {}\n\n');
      res.on('close', () => closed.push(req.url as string));
    });
    const port = await listenLoopback(r);
    stack = await startStack({ env: { GATEWAY_ROUTES: `/api/r=http://127.0.0.1:${port}` } });
    const client = await registerClient(stack.app);
    const resource = `${stack.app.url}/api/r`;
    const auth = buildAuthorization(stack.app, { clientId: client.client_id, resource });
    const { callback } = await drive(new Browser(), auth.url, auth.redirectUri, { login: 'hangs-up' });
    token = (await redeem(stack.app, client.client_id, callback.searchParams.get('code') as string, auth.verifier, auth.redirectUri, { resource })).body.access_token;
  });
  afterAll(async () => {
    await stack.close();
    r.closeAllConnections();
    r.close();
  });

  it('answers 401 invalid_token when R refuses U\'s token, renews U\'s token, and passes none of R\'s answer on (GW-14)', async () => {
    const refreshesBefore = stack.upstream.tokenRequests.filter((t) => t.grant_type.startsWith('refresh_token')).length;
    const res = await fetch(`${stack.app.url}/api/r/refuse`, { headers: { authorization: `Bearer ${token}` } });
    const text = await res.text();
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(res.headers.get('www-authenticate')).toContain('renewed');
    expect(text).not.toContain('own words');
    expect(seen).toContain('GET /refuse');
    expect(stack.upstream.tokenRequests.filter((t) => t.grant_type.startsWith('refresh_token')).length).toBe(refreshesBefore + 1);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected').map((e) => e.reason)).toContain('upstream_rejected_token');
  });

  // Review 2026-12-07: the grant's revocation rechecked the open responses, this request among
  // them, and cut P's own 401 before it was written — the client saw the connection closed.
  it("answers 401 authorize again when R refuses U's token and U refuses its refresh too: the grant ends (GW-14, UP-08)", async () => {
    const client = await registerClient(stack.app);
    const resource = `${stack.app.url}/api/r`;
    const auth = buildAuthorization(stack.app, { clientId: client.client_id, resource });
    const { callback } = await drive(new Browser(), auth.url, auth.redirectUri, { login: 'r-refuses' });
    const own = (await redeem(stack.app, client.client_id, callback.searchParams.get('code') as string, auth.verifier, auth.redirectUri, { resource })).body;
    await stack.upstream.revokeUser('r-refuses');
    const res = await fetch(`${stack.app.url}/api/r/refuse`, { headers: { authorization: `Bearer ${own.access_token}` } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('authorize again');
    expect(await refresh(stack.app, client.client_id, own.refresh_token)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'gateway.response_cut' && e.client_id === client.client_id)).toEqual([]);
  });

  it('ends the request to R when the client hangs up on a server-sent stream', async () => {
    const abort = new AbortController();
    const res = await fetch(`${stack.app.url}/api/r/stream`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('event: ping');
    expect(closed).toEqual([]);
    abort.abort();
    const deadline = Date.now() + 5000;
    while (!closed.includes('/stream') && Date.now() < deadline) await new Promise((done) => setImmediate(done));
    expect(closed).toEqual(['/stream']);
    expect(stack.app.runtime.gateway.openResponses.size).toBe(0);
  });

  it('ends the request to R when the server ends a busy stream (shutdown), and carries on', async () => {
    const res = await fetch(`${stack.app.url}/api/r/ticking`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('event: ping');
    stack.app.runtime.gateway.openResponses.endStreams(); // as src/cli/commands/serve.ts does at shutdown
    // R keeps sending; the client's stream ends and the request to R is closed.
    for (let i = 0; i < 100_000; i++) if ((await reader.read()).done) break;
    const deadline = Date.now() + 5000;
    while (!closed.includes('/ticking') && Date.now() < deadline) await new Promise((done) => setImmediate(done));
    expect(closed).toContain('/ticking');
    expect((await fetch(`${stack.app.url}/api/r/refuse`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
  });

  it('passes a large body through intact while the client reads it (backpressure: R paused, resumed)', async () => {
    const res = await fetch(`${stack.app.url}/api/r/big`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(big.length * 65_536));
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(big.length * 65_536);
    expect(sha(body.toString('latin1'))).toBe(sha(Buffer.concat(big).toString('latin1')));
  });
});

describe('gateway › U token lifecycle', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.close());

  async function session(login: string) {
    const { tokens, clientId } = await authorizeClient(stack, new Browser(), { login });
    const [consent] = await stack.app.runtime.stores.consents.unrevokedForClient(clientId);
    const sessionId = await openSession(`${stack.app.url}/mcp`, tokens.body.access_token);
    return { token: tokens.body.access_token as string, grantId: consent?.grant_id as string, sessionId, clientId };
  }
  const expireUpstreamToken = (grantId: string) => stack.app.runtime.sql.run('UPDATE upstream_tokens SET expires_at = 1 WHERE grant_id = ?', [grantId]);
  const refreshes = () => stack.upstream.tokenRequests.filter((r) => r.grant_type.startsWith('refresh_token')).length;

  it('refreshes an expired U token once for 20 concurrent calls, and uses the new one', async () => {
    const s = await session('concurrent');
    await expireUpstreamToken(s.grantId);
    const before = refreshes();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => callTool(`${stack.app.url}/mcp`, s.token, s.sessionId, 'whoami', {}, i + 10)));
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(refreshes() - before).toBe(1);
    const digests = new Set(results.map((r) => r.messages[0].result.structuredContent.upstream_token_sha256));
    const newest = stack.upstream.issued.filter((t) => t.sub === 'concurrent').at(-1)?.token as string;
    expect([...digests]).toEqual([sha(newest)]);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'upstream.token_refreshed')).toHaveLength(1);
  });

  it('revokes P\'s grant when U answers invalid_grant: the client gets 401 and must re-authorize (AT-22)', async () => {
    const s = await session('gone-at-upstream');
    await stack.upstream.revokeUser('gone-at-upstream');
    await expireUpstreamToken(s.grantId);
    const res = await callTool(`${stack.app.url}/mcp`, s.token, s.sessionId, 'whoami');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(await rows(stack.app, 'SELECT revoked_reason FROM consents WHERE grant_id = ?', s.grantId)).toEqual([{ revoked_reason: 'upstream_invalid_grant' }]);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'upstream.refresh_failed').at(-1)).toMatchObject({ reason: 'invalid_grant', subject: 'gone-at-upstream' });
  });

  it('answers 502 with a JSON-RPC error when U fails with 5xx during refresh, leaking nothing', async () => {
    const s = await session('u-down');
    await expireUpstreamToken(s.grantId);
    stack.upstream.setTokenEndpointFault({ status: 503 });
    try {
      const res = await callTool(`${stack.app.url}/mcp`, s.token, s.sessionId, 'whoami');
      expect(res.status).toBe(502);
      expect(JSON.parse(res.text)).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'The upstream identity provider is not available' } });
      expect(await rows(stack.app, 'SELECT revoked_at FROM consents WHERE grant_id = ?', s.grantId)).toEqual([{ revoked_at: null }]);
    } finally {
      stack.upstream.setTokenEndpointFault(undefined);
    }
    expect((await callTool(`${stack.app.url}/mcp`, s.token, s.sessionId, 'whoami')).status).toBe(200);
  });
});

describe('gateway › revocation from another process', () => {
  it('sees a consent revoked through another database connection (the CLI) on the next request', async () => {
    const stack = await startStack();
    try {
      const { tokens, clientId } = await authorizeClient(stack, new Browser());
      const token = tokens.body.access_token as string;
      const sessionId = await openSession(`${stack.app.url}/mcp`, token);
      expect((await callTool(`${stack.app.url}/mcp`, token, sessionId, 'echo', { message: 'cached' })).status).toBe(200);
      expect((await callTool(`${stack.app.url}/mcp`, token, sessionId, 'echo', { message: 'cached' })).status).toBe(200);
      const other = await openTestSql(stack.app.dir); // a second connection (SQLite) or pool (PostgreSQL)
      await other.run('UPDATE consents SET revoked_at = ?, revoked_reason = ? WHERE client_id = ?', [Date.now(), 'cli', clientId]);
      await other.close();
      expect((await callTool(`${stack.app.url}/mcp`, token, sessionId, 'echo', { message: 'now refused' })).status).toBe(401);
    } finally {
      await stack.close();
    }
  });
});
