/**
 * GW-13 upstream token leak (issue 9 item 3, DESIGN §9): R — the MCP server or API behind the
 * gateway — echoes U's token back, in a header, in a JSON body, in a server-sent stream split
 * across chunks, URL-encoded, and U's refresh token too. The client must never receive any of
 * them (raw or encoded) and gets a `[redacted]` marker in their place; each such response is
 * audited as `gateway.leak_blocked`, without the value. A compressed answer (which could not be
 * scanned), in a content coding or a transfer coding other than chunked, is refused with 502 and
 * none of its body reaches the client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { gzipSync } from 'node:zlib';
import { auditEvents, listenLoopback, registerClient } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, drive, redeem, startStack, type Stack } from '../helpers/stack.js';
import { INITIALIZE } from '../helpers/mcp-http.js';

// U's tokens as R will see them: standard base64 with `+`, `/` and `=`, so their URL-encoded
// forms differ from the raw ones.
const MCP_AT = 'mcpAT+Zq/8w3Kx7Lm2Np4Qr6St8Uv0Wy1Ab3Cd5Ef7G==';
const MCP_RT = 'mcpRT/9k2+Hj4Lp6Rt8Vx0Zb2Dn4Fq6Ms8Ow0Yc1E=';
const API_AT = 'apiAT+Pw3/Rb5Tc7Vd9Xf1Zh3Bj5Dl7Fn9Hp1Kr3M=';
const API_RT = 'apiRT/Qs4+Ut6Wv8Yx0Az2Cb4Ed6Gf8Ih0Kj2Ml4Q=';
const refreshOf = new Map([
  [MCP_AT, MCP_RT],
  [API_AT, API_RT],
]);
const lowerHex = (s: string) => s.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase());
/** Every way the tests' R writes a token; the client must see none of them. */
const FORBIDDEN = [MCP_AT, MCP_RT, API_AT, API_RT].flatMap((t) => [t, encodeURIComponent(t), lowerHex(encodeURIComponent(t)), t.replace('+', '%2B')]);
const expectNoToken = (text: string) => {
  for (const form of FORBIDDEN) expect(text).not.toContain(form);
};

const deferred = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};

let r: Server;
let stack: Stack;
let mcpToken: string;
let apiToken: string;
const received: { url: string; headers: IncomingHttpHeaders }[] = [];
/** R's server-sent stream waits on these between its chunks (the test releases them). */
const gates = [deferred(), deferred(), deferred()];

beforeAll(async () => {
  r = createServer((req, res) => {
    received.push({ url: req.url as string, headers: req.headers });
    const auth = req.headers.authorization ?? '';
    const at = auth.replace(/^Bearer /, '');
    const rt = refreshOf.get(at) ?? '';
    const path = new URL(req.url as string, 'http://r').pathname;
    req.resume();
    if (path === '/api/header') {
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-echo-authorization': auth,
        link: `<https://r.example/next?token=${encodeURIComponent(at)}>; rel="next"`,
        'x-refresh': rt,
      });
      res.end('{"ok":true}');
    } else if (path === '/api/json') {
      const body = JSON.stringify({ seen: auth, refresh_token: rt, note: 'fine' });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } else if (path === '/api/encoded') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<a href="https://r.example/cb?access_token=${encodeURIComponent(at)}&rt=${lowerHex(encodeURIComponent(rt))}&mixed=${rt.replace('+', '%2B')}">next</a>`);
    } else if (path === '/api/gzip') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(gzipSync(JSON.stringify({ seen: auth, refresh_token: rt, secret_words: 'R body' })));
    } else if (path === '/api/transfer-gzip') {
      // A transfer coding P cannot scan under the chunked framing (GW-13): written on the socket
      // as it is, so nothing in Node's server rewrites the header.
      const body = gzipSync(JSON.stringify({ seen: auth, refresh_token: rt, secret_words: 'R body' }));
      res.socket?.end(
        Buffer.concat([
          Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: gzip, chunked\r\nconnection: close\r\n\r\n${body.length.toString(16)}\r\n`),
          body,
          Buffer.from('\r\n0\r\n\r\n'),
        ]),
      );
    } else if (path === '/mcp') {
      // A JSON-RPC answer over SSE: a progress event, then a result carrying the access token
      // split over three chunks, then an event carrying the URL-encoded refresh token split over two.
      void (async () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\nevent: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"${at.slice(0, 5)}`);
        await gates[0]?.promise;
        res.write(at.slice(5, 20));
        await gates[1]?.promise;
        const encoded = encodeURIComponent(rt);
        res.write(`${at.slice(20)}"}]}}\n\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"${encoded.slice(0, 9)}`);
        await gates[2]?.promise;
        res.end(`${encoded.slice(9)}"}}\n\n`);
      })();
    } else {
      res.writeHead(404).end();
    }
  });
  const port = await listenLoopback(r);
  stack = await startStack({ env: { MCP_UPSTREAM_URL: `http://127.0.0.1:${port}/mcp`, GATEWAY_ROUTES: `/api/r=http://127.0.0.1:${port}/api` } });
  const { runtime } = stack.app;

  const mcp = await authorizeClient(stack, new Browser(), { login: 'leaky' });
  mcpToken = mcp.tokens.body.access_token;
  const client = await registerClient(stack.app);
  const resource = `${stack.app.url}/api/r`;
  const auth = buildAuthorization(stack.app, { clientId: client.client_id, resource });
  const { callback } = await drive(new Browser(), auth.url, auth.redirectUri, { login: 'leaky' });
  apiToken = (await redeem(stack.app, client.client_id, callback.searchParams.get('code') as string, auth.verifier, auth.redirectUri, { resource })).body.access_token;

  // Give both grants U tokens in standard base64 (U's own are base64url JWTs).
  const far = Date.now() + 3600_000;
  const grantOf = async (clientId: string) => (await runtime.stores.consents.unrevokedForClient(clientId))[0]?.grant_id as string;
  await runtime.stores.upstreamTokens.save(await grantOf(mcp.clientId), 'leaky', { accessToken: MCP_AT, refreshToken: MCP_RT, expiresAt: far });
  await runtime.stores.upstreamTokens.save(await grantOf(client.client_id), 'leaky', { accessToken: API_AT, refreshToken: API_RT, expiresAt: far });
});
afterAll(async () => {
  for (const gate of gates) gate.resolve();
  await stack.close();
  r.closeAllConnections();
  r.close();
});

const api = (path: string, headers: Record<string, string> = {}) => fetch(`${stack.app.url}/api/r${path}`, { headers: { authorization: `Bearer ${apiToken}`, ...headers } });
const leakRows = async () => (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.leak_blocked');

describe('GW-13 upstream token leak: R echoing U\'s tokens never reaches the client', () => {
  it('redacts the access and refresh token from every response header, raw and URL-encoded', async () => {
    const before = (await leakRows()).length;
    const res = await api('/header');
    const body = await res.text();
    expect(res.status).toBe(200);
    expect(received.at(-1)?.headers.authorization).toBe(`Bearer ${API_AT}`); // R did get U's token
    const headers = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n');
    expectNoToken(headers);
    expect(res.headers.get('x-echo-authorization')).toBe(`Bearer [redacted]${'*'.repeat(API_AT.length - 10)}`);
    expect(res.headers.get('link')).toContain('?token=[redacted]');
    expect(res.headers.get('x-refresh')).toMatch(/^\[redacted\]\**$/);
    expect(body).toBe('{"ok":true}');
    const rows = (await leakRows()).slice(before);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ reason: 'upstream_token_in_response', subject: 'leaky' });
    expect(JSON.parse(rows[0]?.details as string).found).toEqual(['header:x-echo-authorization', 'header:link', 'header:x-refresh']);
  });

  it('redacts them from a JSON body, keeping Content-Length true', async () => {
    const before = (await leakRows()).length;
    const res = await api('/json');
    const text = await res.text();
    expect(res.status).toBe(200);
    expectNoToken(text);
    const json = JSON.parse(text);
    expect(json).toEqual({ seen: `Bearer [redacted]${'*'.repeat(API_AT.length - 10)}`, refresh_token: `[redacted]${'*'.repeat(API_RT.length - 10)}`, note: 'fine' });
    expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(text));
    const rows = (await leakRows()).slice(before);
    expect(rows).toHaveLength(1);
    expect(JSON.parse(rows[0]?.details as string).found).toEqual(['body']);
  });

  it('redacts URL-encoded forms in a body (upper- and lower-case hex, partly encoded)', async () => {
    const res = await api('/encoded');
    const text = await res.text();
    expect(res.status).toBe(200);
    expectNoToken(text);
    expect(text).toMatch(/^<a href="https:\/\/r\.example\/cb\?access_token=\[redacted\]\**&rt=\[redacted\]\**&mixed=\[redacted\]\**">next<\/a>$/);
  });

  it('redacts an SSE stream split across chunks, passing each finished event on at once', async () => {
    const before = (await leakRows()).length;
    const res = await fetch(`${stack.app.url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${mcpToken}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify(INITIALIZE),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let seen = '';
    const readUntil = async (needle: string) => {
      for (let i = 0; i < 1000 && !seen.includes(needle); i++) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += decoder.decode(value, { stream: true });
      }
      return seen.includes(needle);
    };
    // The progress event arrives while R still holds back the rest of the stream.
    expect(await readUntil('"params":{"progress":1}}\n\n')).toBe(true);
    gates[0]?.resolve();
    gates[1]?.resolve();
    expect(await readUntil('"}]}}\n\n')).toBe(true);
    expect(seen).toContain(`"text":"[redacted]${'*'.repeat(MCP_AT.length - 10)}"}]}}\n\n`);
    gates[2]?.resolve();
    await readUntil('\u0000never');
    expectNoToken(seen);
    expect(seen.endsWith(`"params":{"data":"[redacted]${'*'.repeat(encodeURIComponent(MCP_RT).length - 10)}"}}\n\n`)).toBe(true);
    const rows = (await leakRows()).slice(before);
    expect(rows).toHaveLength(1);
    expect(JSON.parse(rows[0]?.details as string).found).toEqual(['body']);
  });

  it('refuses a compressed answer with 502 (R was asked for identity); none of R\'s body reaches the client', async () => {
    const before = (await auditEvents(stack.app)).length;
    const res = await api('/gzip', { 'accept-encoding': 'gzip, br' });
    const text = await res.text();
    expect(res.status).toBe(502);
    expect(res.headers.get('content-encoding')).toBeNull();
    expect(JSON.parse(text)).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'The MCP server answered in an encoding the gateway cannot check' } });
    expect(text).not.toContain('R body');
    expectNoToken(text);
    expect(received.at(-1)?.url).toBe('/api/gzip');
    expect(received.at(-1)?.headers['accept-encoding']).toBe('identity');
    const events = (await auditEvents(stack.app)).slice(before);
    expect(events.map((e) => [e.event, e.reason])).toEqual([['gateway.upstream_failed', 'upstream_encoding']]);
  });

  it('refuses an answer in a transfer coding other than chunked (gzip, chunked) with 502; none of R\'s body reaches the client', async () => {
    const before = (await auditEvents(stack.app)).length;
    const res = await api('/transfer-gzip');
    const text = await res.text();
    expect(res.status).toBe(502);
    expect(JSON.parse(text)).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'The MCP server answered in an encoding the gateway cannot check' } });
    expect(text).not.toContain('R body');
    expectNoToken(text);
    expect(received.at(-1)?.url).toBe('/api/transfer-gzip');
    const events = (await auditEvents(stack.app)).slice(before);
    expect(events.map((e) => [e.event, e.reason])).toEqual([['gateway.upstream_failed', 'upstream_encoding']]);
  });

  it('keeps every token value out of the audit log and the logs', async () => {
    expect((await leakRows()).length).toBeGreaterThanOrEqual(4);
    expectNoToken(JSON.stringify(await auditEvents(stack.app)));
    expectNoToken(stack.app.logLines.join('\n'));
  });
});
