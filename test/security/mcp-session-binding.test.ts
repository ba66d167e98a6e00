/**
 * Issue 9 item 5, "MCP session bindings fail open" (GW-09, AT-15): an Mcp-Session-Id the gateway
 * does not know used to pass to R, bindings lived in memory (lost at restart, oldest dropped past
 * 50k) and named only the user. Now they are stored (SHA-256 of the id) and bound to the user AND
 * the client; an unknown id, or one of another user or client, is answered 404 without
 * contacting R; they survive a restart; DELETE ends them; idle ones are purged. A session named in
 * the query (the HTTP+SSE transport, which P does not bind) is refused with 400, R not contacted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { callTool, INITIALIZE, mcpPost, openSession } from '../helpers/mcp-http.js';

const sha = (s: string) => createHash('sha256').update(s).digest('base64url');
const NOT_FOUND = { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } };

let stack: Stack;
/** alice through client A and client B; bob through client A */
let aliceA: string;
let aliceB: string;
let bobA: string;
const mcp = () => `${stack.app.url}/mcp`;

beforeAll(async () => {
  stack = await startStack();
  const clientA = (await registerClient(stack.app)).client_id as string;
  const alice = new Browser('alice');
  aliceA = (await authorizeClient(stack, alice, { login: 'alice', clientId: clientA })).tokens.body.access_token;
  aliceB = (await authorizeClient(stack, alice, { login: 'alice' })).tokens.body.access_token;
  bobA = (await authorizeClient(stack, new Browser('bob'), { login: 'bob', clientId: clientA })).tokens.body.access_token;
});
afterAll(() => stack.close());

/** Every way to use a session id: a POST, the GET stream, DELETE. */
async function everyMethod(token: string, sessionId: string) {
  const headers = { authorization: `Bearer ${token}`, 'mcp-session-id': sessionId, accept: 'application/json, text/event-stream' };
  const post = await callTool(mcp(), token, sessionId, 'whoami');
  const get = await fetch(mcp(), { headers });
  const del = await fetch(mcp(), { method: 'DELETE', headers });
  return [
    { status: post.status, body: post.messages[0] },
    { status: get.status, body: await get.json() },
    { status: del.status, body: await del.json() },
  ];
}

describe('MCP session bindings fail open', () => {
  it('answers 404 to an unknown session id, on POST, GET and DELETE, and R gets no request', async () => {
    const before = stack.mcp.received.length;
    const unknown = randomUUID();
    for (const answer of await everyMethod(aliceA, unknown)) expect(answer).toEqual({ status: 404, body: NOT_FOUND });
    expect(stack.mcp.received.length).toBe(before);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected' && e.reason === 'unknown_session' && e.subject === 'alice')).toHaveLength(3);
  });

  it('answers 404 to a session of the same user through another client, and of another user through the same client', async () => {
    const sessionId = await openSession(mcp(), aliceA);
    const before = stack.mcp.received.length;
    for (const token of [aliceB, bobA]) {
      for (const answer of await everyMethod(token, sessionId)) expect(answer).toEqual({ status: 404, body: NOT_FOUND });
    }
    expect(stack.mcp.received.length).toBe(before);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected' && e.reason === 'foreign_session')).toHaveLength(6);
    // Its owner still uses it.
    const own = await callTool(mcp(), aliceA, sessionId, 'whoami');
    expect(own.status).toBe(200);
    expect(own.messages[0].result.structuredContent.upstream_user).toBe('alice');
  });

  it('stores the binding as a hash, and it survives a restart (a new runtime on the same database)', async () => {
    const sessionId = await openSession(mcp(), aliceA);
    const [row] = await rows(stack.app, 'SELECT * FROM mcp_sessions WHERE id_hash = ?', sha(sessionId));
    expect(row).toMatchObject({ subject: 'alice' });
    expect(JSON.stringify(await rows(stack.app, 'SELECT * FROM mcp_sessions'))).not.toContain(sessionId);

    await stack.restart();
    const before = stack.mcp.received.length;
    for (const answer of await everyMethod(bobA, sessionId)) expect(answer).toEqual({ status: 404, body: NOT_FOUND });
    expect(stack.mcp.received.length).toBe(before);
    const own = await callTool(mcp(), aliceA, sessionId, 'echo', { message: 'after restart' });
    expect(own.status).toBe(200);
    expect(own.messages[0].result.content[0].text).toBe('after restart');
  });

  it('ends the binding on DELETE: the id is then refused without contacting R', async () => {
    const sessionId = await openSession(mcp(), aliceA);
    const end = await fetch(mcp(), { method: 'DELETE', headers: { authorization: `Bearer ${aliceA}`, 'mcp-session-id': sessionId } });
    expect(end.status).toBe(200);
    expect(await rows(stack.app, 'SELECT * FROM mcp_sessions WHERE id_hash = ?', sha(sessionId))).toEqual([]);
    const before = stack.mcp.received.length;
    const reuse = await callTool(mcp(), aliceA, sessionId, 'whoami');
    expect(reuse.status).toBe(404);
    expect(reuse.messages[0]).toEqual(NOT_FOUND);
    expect(stack.mcp.received.length).toBe(before);
  });

  it('forgets a binding when R answers 404 for it (R ended the session itself): the next use is refused without contacting R', async () => {
    const sessionId = await openSession(mcp(), aliceA);
    const ended = await fetch(stack.mcp.url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId } }); // at R, not through P
    expect(ended.status).toBe(200);
    const first = await callTool(mcp(), aliceA, sessionId, 'whoami');
    expect(first.status).toBe(404); // R's own answer, passed on
    expect(first.messages[0].error.code).toBe(-32000);
    expect(await rows(stack.app, 'SELECT * FROM mcp_sessions WHERE id_hash = ?', sha(sessionId))).toEqual([]);
    const before = stack.mcp.received.length;
    const again = await callTool(mcp(), aliceA, sessionId, 'whoami');
    expect(again.status).toBe(404);
    expect(again.messages[0]).toEqual(NOT_FOUND);
    expect(stack.mcp.received.length).toBe(before);
  });

  it('refuses a session named in the query (the HTTP+SSE transport: sessionId, session_id, any case, percent-encoded) with 400 on POST, GET and DELETE, without contacting R', async () => {
    const LEGACY = { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Bad Request: a session id in the query (the HTTP+SSE transport) is not supported; use Streamable HTTP' } };
    const victim = await openSession(mcp(), aliceA);
    const refusedBefore = (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected' && e.reason === 'legacy_session').length;
    const before = stack.mcp.received.length;
    const queries = [`?sessionId=${victim}`, `?session_id=${victim}`, `?SESSIONID=${victim}`, `?x=1&session%5Fid=${victim}`, `?session%49d=${victim}`];
    // Bracket spellings express's extended query parser (qs) reads as sessionId (review 2026-12-06: they reached R).
    queries.push(`?[sessionId]=${victim}`, `?%5Bsession_id%5D=${victim}`, `?sessionId[]=${victim}`, `?sessionId%5B%5D=${victim}`, `?sessionId[0]=${victim}`, `?[sessionId][]=${victim}`);
    for (const query of queries) {
      const headers = { authorization: `Bearer ${bobA}`, accept: 'application/json, text/event-stream', 'content-type': 'application/json' };
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
      for (const init of [{ method: 'POST', body }, { method: 'GET' }, { method: 'DELETE' }]) {
        const res = await fetch(`${mcp()}${query}`, { ...init, headers });
        expect({ query, method: init.method, status: res.status, body: await res.json() }).toEqual({ query, method: init.method, status: 400, body: LEGACY });
      }
    }
    expect(stack.mcp.received.length).toBe(before);
    const audited = (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected' && e.reason === 'legacy_session');
    expect(audited).toHaveLength(refusedBefore + queries.length * 3);
    expect(audited.at(-1)).toMatchObject({ subject: 'bob' });
    // Control: another query parameter (brackets included) passes, and the session's owner still uses it.
    const other = await mcpPost(
      `${mcp()}?trace=1&filter[session]=x&[]=y`,
      aliceA,
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } },
      { 'mcp-session-id': victim },
    );
    expect(other.status).toBe(200);
    expect(stack.mcp.received.length).toBe(before + 1);
  });

  it('purges bindings unused for 24 hours in housekeeping; the client then gets 404 and starts a new session', async () => {
    const sessionId = await openSession(mcp(), aliceA);
    const sessions = stack.app.runtime.gateway.sessions;
    const DAY = 24 * 3600_000; // SECURITY.md: "bindings unused for 24 hours are purged"
    expect(await sessions.purgeIdle(Date.now() + DAY - 60_000)).toBe(0);
    expect((await callTool(mcp(), aliceA, sessionId, 'whoami')).status).toBe(200);
    expect(await sessions.purgeIdle(Date.now() + DAY + 1)).toBeGreaterThanOrEqual(1);
    const before = stack.mcp.received.length;
    expect((await callTool(mcp(), aliceA, sessionId, 'whoami')).status).toBe(404);
    expect(stack.mcp.received.length).toBe(before);
    const fresh = await openSession(mcp(), aliceA);
    expect((await callTool(mcp(), aliceA, fresh, 'whoami')).status).toBe(200);
  });
});

/**
 * An R that hands out the session id the test chooses (`issue`) to every `initialize`, whoever
 * sends it, and answers anything else with an empty result; it counts the requests it gets.
 */
async function startIssuingR() {
  const r = { issue: '', received: 0, url: '', server: undefined as unknown as Server };
  r.server = createServer((req: IncomingMessage, res) => {
    r.received += 1;
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const message = body ? (JSON.parse(body) as { id?: number; method?: string }) : {};
      if (message.method === 'initialize') res.setHeader('mcp-session-id', r.issue);
      if (message.id === undefined) return void res.writeHead(202).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: {} }));
    });
  });
  await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}/mcp`;
  return r;
}

describe('MCP session bindings: owner and cache', () => {
  let issuing: Awaited<ReturnType<typeof startIssuingR>>;
  let own: Stack;
  let clock = Date.now();
  let alice: string;
  let bob: string;
  const url = () => `${own.app.url}/mcp`;
  const ping = (token: string, sessionId: string) => mcpPost(url(), token, { jsonrpc: '2.0', id: 7, method: 'ping' }, { 'mcp-session-id': sessionId });

  beforeAll(async () => {
    issuing = await startIssuingR();
    own = await startStack({ now: () => clock, env: { MCP_UPSTREAM_URL: issuing.url } });
    const clientId = (await registerClient(own.app)).client_id as string;
    alice = (await authorizeClient(own, new Browser('alice'), { login: 'alice', clientId })).tokens.body.access_token;
    bob = (await authorizeClient(own, new Browser('bob'), { login: 'bob', clientId })).tokens.body.access_token;
  });
  afterAll(async () => {
    await own?.close();
    await new Promise((resolve) => issuing?.server.close(resolve));
  });

  it('a binding never changes owner: R issuing alice\'s session id to bob leaves it alice\'s; bob gets 404, R untouched', async () => {
    issuing.issue = `shared-${randomUUID()}`;
    expect((await mcpPost(url(), alice, INITIALIZE)).headers.get('mcp-session-id')).toBe(issuing.issue);
    expect((await mcpPost(url(), bob, INITIALIZE)).status).toBe(200); // R's answer is passed on; the binding is not
    expect(await rows(own.app, 'SELECT subject FROM mcp_sessions WHERE id_hash = ?', sha(issuing.issue))).toEqual([{ subject: 'alice' }]);

    const before = issuing.received;
    const refused = await ping(bob, issuing.issue);
    expect(refused.status).toBe(404);
    expect(refused.messages[0]).toEqual(NOT_FOUND);
    expect(issuing.received).toBe(before);
    expect((await auditEvents(own.app)).filter((e) => e.event === 'gateway.rejected' && e.reason === 'foreign_session' && e.subject === 'bob')).toHaveLength(1);
    expect((await ping(alice, issuing.issue)).status).toBe(200);
    expect(issuing.received).toBe(before + 1);
  });

  it('a cached binding is re-read after at most a minute: a binding deleted behind the process\'s back then gets 404, R untouched', async () => {
    issuing.issue = `cached-${randomUUID()}`;
    await mcpPost(url(), alice, INITIALIZE);
    expect((await ping(alice, issuing.issue)).status).toBe(200);
    // Another replica or housekeeping ends it: this process's cache does not know.
    await own.app.runtime.stores.mcpSessions.remove(sha(issuing.issue));
    clock += 59_000;
    expect((await ping(alice, issuing.issue)).status).toBe(200); // still cached
    clock += 2_000; // 61 s after the last read of the binding
    const before = issuing.received;
    const refused = await ping(alice, issuing.issue);
    expect(refused.status).toBe(404);
    expect(refused.messages[0]).toEqual(NOT_FOUND);
    expect(issuing.received).toBe(before);
  });
});
