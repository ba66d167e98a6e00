/**
 * Fuzz: the gateway, /mcp (GW-01..14, DESIGN §2 step 8, §9): headers — Authorization (none, junk,
 * a real token, a real one damaged, other schemes, several), Mcp-Session-Id (the client's own
 * session, unknown, junk), MCP-Protocol-Version, Origin, Accept, Content-Type, Last-Event-ID —
 * and JSON-RPC bodies (requests, notifications, batches, every id type, real and unknown methods
 * and tools, junk params, broken JSON), over every method. Every invariant of
 * test/helpers/fuzz.ts after each case. What P refuses itself (before R) creates nothing and
 * reaches neither U nor R; what P forwards is answered by R and may bind or end an MCP session.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import fc from 'fast-check';
import { authorizeClient, Browser, startStack, type Stack } from '../helpers/stack.js';
import { openSession } from '../helpers/mcp-http.js';
import { FuzzTarget, fuzz, fuzzTimeout, type CaseRules } from '../helpers/fuzz.js';
import { junk } from './arbitraries.js';

const FILE = 'test/fuzz/gateway.test.ts';
const CI_RUNS = 500;

let stack: Stack;
let target: FuzzTarget;
let token: string;
let session: string;

beforeAll(async () => {
  stack = await startStack({ countdownDelayMs: 1, env: { RATE_LIMIT_REJECTED: '1000000/1m', GATEWAY_MAX_BODY: '64kb' } });
  target = new FuzzTarget(stack);
  const done = await authorizeClient(stack, new Browser('fuzz'), { login: 'alice' });
  token = done.tokens.body.access_token;
  target.addSecret('access token', token);
  target.addSecret('refresh token', done.tokens.body.refresh_token);
  session = await openSession(`${stack.app.url}/mcp`, token);
});
afterAll(() => stack.close());

const id = fc.oneof(fc.integer(), fc.string({ maxLength: 10 }), fc.constant(null), fc.double(), fc.constant({}), fc.constant([]));
const method = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'initialize',
      'tools/list',
      'tools/call',
      'ping',
      'resources/list',
      'resources/read',
      'prompts/list',
      'prompts/get',
      'notifications/initialized',
      'notifications/cancelled',
      'logging/setLevel',
      'completion/complete',
    ),
  },
  { weight: 1, arbitrary: junk },
);
const toolCall = fc.record({
  name: fc.oneof(fc.constantFrom('echo', 'whoami', 'countdown', 'nope'), junk),
  arguments: fc.oneof(fc.record({ message: junk }), fc.record({ from: fc.oneof(fc.integer({ min: -2, max: 25 }), junk) }), fc.record({ greeting: junk }), fc.jsonValue({ maxDepth: 2 })),
  _meta: fc.option(fc.record({ progressToken: fc.oneof(fc.integer(), fc.string({ maxLength: 8 })) }), { nil: undefined }),
});
const params = fc.oneof(
  toolCall,
  fc.constant({ protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'fuzz', version: '1' } }),
  fc.record({ protocolVersion: junk, capabilities: fc.jsonValue({ maxDepth: 1 }), clientInfo: fc.jsonValue({ maxDepth: 1 }) }),
  fc.record({ uri: junk }),
  fc.jsonValue({ maxDepth: 2 }),
);
const message = fc.record({ jsonrpc: fc.oneof(fc.constant('2.0'), fc.constant('1.0'), junk), id, method, params }, { requiredKeys: ['method'] });
const body = fc.oneof(
  { weight: 8, arbitrary: message.map((m) => JSON.stringify(m)) },
  { weight: 2, arbitrary: fc.array(message, { maxLength: 4 }).map((m) => JSON.stringify(m)) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: junk },
  { weight: 1, arbitrary: message.map((m) => JSON.stringify(m).slice(0, -2)) },
  { weight: 1, arbitrary: fc.integer({ min: 60_000, max: 70_000 }).map((n) => `{"jsonrpc":"2.0","method":"ping","params":{"x":"${'a'.repeat(n)}"}}`) },
);

const authorization = fc.oneof(
  { weight: 4, arbitrary: fc.constant(() => `Bearer ${token}`) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      () => `bearer ${token}`,
      () => `Bearer ${token.slice(0, -2)}`,
      () => `Bearer ${token} x`,
      () => `Basic ${Buffer.from(`a:${token}`).toString('base64')}`,
      () => 'Bearer ',
      () => 'Bearer %%%\u00ff',
      () => `Bearer ${token}, Bearer x`,
      () => undefined,
    ),
  },
);

const request = fc.record({
  method: fc.oneof({ weight: 12, arbitrary: fc.constant('POST') }, { weight: 6, arbitrary: fc.constantFrom('GET', 'DELETE', 'OPTIONS', 'PUT', 'PATCH', 'HEAD') }),
  path: fc.oneof({ weight: 12, arbitrary: fc.constant('/mcp') }, { weight: 1, arbitrary: fc.constantFrom('/mcp?x=1', '/mcp?access_token=abc', '/mcp/', '/mcp%2f..', '/MCP') }),
  authorization,
  session: fc.constantFrom('mine', 'mine', 'mine', 'mine', 'none', 'unknown', 'junk'),
  version: fc.constantFrom(undefined, '2025-06-18', '2025-03-26', '1999-01-01', 'x'),
  origin: fc.oneof({ weight: 10, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('https://evil.example', 'null', 'http://127.0.0.1') }),
  accept: fc.constantFrom('application/json, text/event-stream', 'application/json, text/event-stream', 'application/json', 'text/event-stream', '*/*', undefined),
  type: fc.constantFrom('application/json', 'application/json', 'application/json', 'text/plain', 'application/json; charset=utf-16', undefined),
  lastEventId: fc.option(fc.string({ maxLength: 20 }), { nil: undefined, freq: 8 }),
  body,
});

describe('fuzz: the gateway', () => {
  it(
    '/mcp',
    async () => {
      await fuzz(FILE, '/mcp', CI_RUNS, target, request, async (r) => {
        const auth = r.authorization();
        // A GET with the client's own session would open R's event stream, which stays open by design.
        const sessionKind = r.method === 'GET' && r.session === 'mine' ? 'unknown' : r.session;
        const headers: [string, string][] = [];
        if (auth !== undefined) headers.push(['Authorization', auth]);
        if (sessionKind === 'mine') headers.push(['Mcp-Session-Id', session]);
        if (sessionKind === 'unknown') headers.push(['Mcp-Session-Id', '0f3d5c1e-0000-4000-8000-000000000000']);
        if (sessionKind === 'junk') headers.push(['Mcp-Session-Id', 'x\u00ff%ZZ']);
        if (r.version) headers.push(['MCP-Protocol-Version', r.version]);
        if (r.origin) headers.push(['Origin', r.origin]);
        if (r.accept) headers.push(['Accept', r.accept]);
        if (r.type) headers.push(['Content-Type', r.type]);
        if (r.lastEventId !== undefined) headers.push(['Last-Event-ID', r.lastEventId.replace(/[^\x20-\x7e]/g, '')]);
        const hasBody = r.method === 'POST' || r.method === 'PUT' || r.method === 'PATCH';
        const received = stack.mcp.received.length;
        const res = await target.case({ method: r.method, path: r.path, headers, body: hasBody ? r.body : undefined }, (): CaseRules => {
          // R answered (a forwarded request): its answer, its session bookkeeping.
          if (stack.mcp.received.length > received) return { forwarded: true, successMayAdd: ['mcp_sessions'], mayRemove: ['mcp_sessions'], external: ['R'] };
          return {};
        });
        // The client's session ended (a forwarded DELETE): open another for the next cases.
        if (r.method === 'DELETE' && sessionKind === 'mine' && res.status < 300) session = await openSession(`${stack.app.url}/mcp`, token);
      });
    },
    fuzzTimeout(CI_RUNS),
  );
});
