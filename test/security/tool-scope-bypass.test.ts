/**
 * GW-15 per-tool scopes (MCP_TOOL_SCOPES): a token that lacks a listed tool's scope cannot call
 * that tool — not alone, not inside a batch, not behind an `Mcp-Method` header that names another
 * method (under a revision that does not oblige R to check the header), not in a chunked body.
 * The answer is 403 with one `insufficient_scope` challenge naming every scope the call needs
 * and the token's own MCP scopes, and the 401 challenge's `resource_metadata`; R receives nothing;
 * a `gateway.tool_refused` row names the tool and the missing scope.
 * Found by review (2026-12-06), each refused before R is contacted: a body P reads as UTF-8 JSON
 * and R would decode otherwise (`charset=utf-7`: `"+AGU-cho"` is `"echo"` to R's body-parser; a
 * Content-Encoding) — 415; a consent revoked while the body was still arriving — 401.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CHECK_FRESH_MS } from '../../src/gateway/exchange.js';
import { auditEvents } from '../helpers/app.js';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { rows } from '../helpers/app.js';
import type { IncomingMessage } from 'node:http';
import { mcpPost, openSession } from '../helpers/mcp-http.js';

let stack: Stack;
let narrow: string;
let wide: string;
let mcpUrl: string;
beforeAll(async () => {
  stack = await startStack({ env: { MCP_SCOPES: 'mcp:tools mcp:admin mcp:echo', MCP_TOOL_SCOPES: 'echo=mcp:echo,echo=mcp:admin,whoami=mcp:admin' } });
  mcpUrl = `${stack.app.url}/mcp`;
  narrow = (await authorizeClient(stack, new Browser(), { scope: 'mcp:tools mcp:echo' })).tokens.body.access_token;
  wide = (await authorizeClient(stack, new Browser(), { scope: 'mcp:tools mcp:admin mcp:echo' })).tokens.body.access_token;
});
afterAll(() => stack.close());

const call = (name: string, id = 7) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: { message: 'hi' } } });

/** The 403 answer and the absence of any request at R. */
async function expectRefused(send: () => Promise<{ status: number; headers: Headers }>, needed: string) {
  const before = stack.mcp.received.length;
  const res = await send();
  expect(res.status).toBe(403);
  const challenge = res.headers.get('www-authenticate') ?? '';
  expect(challenge).toMatch(/^Bearer /);
  expect(challenge).toContain('error="insufficient_scope"');
  expect(challenge).toContain(`scope="${needed}"`);
  expect(challenge).toContain(`resource_metadata="${stack.app.url}/.well-known/oauth-protected-resource/mcp"`);
  expect(stack.mcp.received.length).toBe(before);
}

describe('GW-15 tool-scope bypass', () => {
  it('refuses a tools/call for a listed tool whose scope the token lacks, naming every scope the call needs; R sees nothing', async () => {
    const sessionId = await openSession(mcpUrl, narrow);
    await expectRefused(() => mcpPost(mcpUrl, narrow, call('echo'), { 'mcp-session-id': sessionId }), 'mcp:tools mcp:echo mcp:admin');
    const row = (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.tool_refused').at(-1);
    expect(row?.reason).toBe('insufficient_scope');
    expect(JSON.parse(row?.details ?? '{}')).toMatchObject({ tools: ['echo'], missing: ['mcp:admin'] });
  });

  it('checks each call of a batch: one refused call refuses the batch, with the union of their scopes', async () => {
    const batch = [{ jsonrpc: '2.0', id: 1, method: 'tools/list' }, call('echo', 2), call('whoami', 3)];
    await expectRefused(() => mcpPost(mcpUrl, narrow, batch), 'mcp:tools mcp:echo mcp:admin');
  });

  it('does not trust an Mcp-Method header, of any revision (2026-07-28 obliges R to check it, but P does not delegate its policy to R): the body is read, the lie refused', async () => {
    const before = stack.mcp.received.length;
    for (const version of ['2026-07-28', '2025-11-25', '2025-06-18', 'not-a-date']) {
      const res = await mcpPost(mcpUrl, narrow, call('whoami'), { 'mcp-method': 'tools/list', 'mcp-protocol-version': version });
      expect(res.status, version).toBe(400);
      expect(res.messages[0].error.code).toBe(-32020);
    }
    expect(stack.mcp.received.length).toBe(before);
    // Without the header the call itself is judged.
    await expectRefused(() => mcpPost(mcpUrl, narrow, call('whoami'), { 'mcp-protocol-version': '2025-11-25' }), 'mcp:tools mcp:admin mcp:echo');
  });

  it('reads a chunked body too (no Content-Length)', async () => {
    const send = () =>
      new Promise<{ status: number; headers: Headers }>((resolve, reject) => {
        const url = new URL(mcpUrl);
        const req = request(
          {
            host: url.hostname,
            port: url.port,
            path: url.pathname,
            method: 'POST',
            headers: { authorization: `Bearer ${narrow}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'transfer-encoding': 'chunked' },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: new Headers(res.headers as Record<string, string>) }));
          },
        );
        req.on('error', reject);
        const body = JSON.stringify(call('echo'));
        req.write(body.slice(0, 20));
        req.end(body.slice(20));
      });
    await expectRefused(send, 'mcp:tools mcp:echo mcp:admin');
  });

  it('lets the call through, body intact, when the token carries every scope; unlisted tools need only the route scope', async () => {
    const sessionId = await openSession(mcpUrl, wide);
    const ok = await mcpPost(mcpUrl, wide, call('echo'), { 'mcp-session-id': sessionId });
    expect(ok.status).toBe(200);
    expect(ok.messages[0].result.content[0].text).toBe('hi');
    const forwarded = (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.forwarded').at(-1);
    expect(JSON.parse(forwarded?.details ?? '{}'), 'the forwarded row names the tool called (review 2026-12-06)').toMatchObject({ status: 200, tools: ['echo'] });
    const narrowSession = await openSession(mcpUrl, narrow);
    const list = await mcpPost(mcpUrl, narrow, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, { 'mcp-session-id': narrowSession });
    expect(list.status).toBe(200);
    const countdown = await mcpPost(mcpUrl, narrow, { jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: 'countdown', arguments: { from: 1 } } }, { 'mcp-session-id': narrowSession });
    expect(countdown.status).toBe(200);
  });

  it('refuses a body R would decode otherwise than P judged it — a charset other than UTF-8, a Content-Encoding — with 415; UTF-8 spelled either way passes', async () => {
    const sessionId = await openSession(mcpUrl, narrow);
    const before = stack.mcp.received.length;
    const disguised = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: '+AGU-cho', arguments: { message: 'PWNED' } } };
    for (const [header, value] of [
      ['content-type', 'application/json; charset=utf-7'],
      ['content-type', 'application/json; charset="UTF-7"'],
      ['content-type', 'application/json;charset=utf-16le'],
      ['content-type', 'application/json; charset=utf-8; charset=utf-7'],
      ['content-encoding', 'br'],
      ['content-encoding', 'gzip'],
    ] as const) {
      const res = await mcpPost(mcpUrl, narrow, disguised, { 'mcp-session-id': sessionId, [header]: value });
      expect(res.status, `${header}: ${value}`).toBe(415);
      expect(res.messages[0].error.code).toBe(-32600);
    }
    expect(stack.mcp.received.length, 'R received nothing').toBe(before);
    const rejected = (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected' && e.reason === 'unsupported_encoding');
    expect(rejected).toHaveLength(6);
    for (const value of ['application/json; charset=utf-8', 'application/json;charset="UTF-8"']) {
      const ok = await mcpPost(mcpUrl, narrow, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, { 'mcp-session-id': sessionId, 'content-type': value });
      expect(ok.status, value).toBe(200);
    }
  });

  it('refuses a body whose member names two parsers may read differently — "name" twice, a case variant — with 400 before judging it; R sees nothing (review 2026-12-06)', async () => {
    const sessionId = await openSession(mcpUrl, narrow);
    const before = stack.mcp.received.length;
    const raw = (body: string) =>
      fetch(mcpUrl, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${narrow}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-06-18',
          'mcp-session-id': sessionId,
        },
        body,
      });
    for (const body of [
      // JSON.parse keeps the last "name" (whoami, allowed); a parser keeping the first runs echo.
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","name":"whoami","arguments":{"message":"PWNED"}}}',
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","NAME":"echo","arguments":{"message":"PWNED"}}}',
      // P sees no method (nothing to judge); a parser matching names ignoring case sees a tools/call of echo.
      '{"jsonrpc":"2.0","id":7,"Method":"tools/call","Params":{"Name":"echo","arguments":{"message":"PWNED"}}}',
    ]) {
      const res = await raw(body);
      expect(res.status, body).toBe(400);
      expect(((await res.json()) as { error: { code: number } }).error.code).toBe(-32600);
    }
    expect(stack.mcp.received.length, 'R received nothing').toBe(before);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected' && e.reason === 'ambiguous_json')).toHaveLength(3);
  });

  it(`checks the token again once a body that took over ${CHECK_FRESH_MS} ms is in: a consent revoked meanwhile is 401, R sees nothing, no tool call forwarded`, async () => {
    const late = await authorizeClient(stack, new Browser(), { scope: 'mcp:tools mcp:admin mcp:echo' });
    const token = late.tokens.body.access_token as string;
    const [{ grant_id: grantId }] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', late.clientId);
    const sessionId = await openSession(mcpUrl, token);
    const before = stack.mcp.received.length;
    let seen: IncomingMessage | undefined;
    const onRequest = (req: IncomingMessage) => {
      if (req.headers.authorization === `Bearer ${token}` && req.method === 'POST') seen = req;
    };
    stack.app.server.on('request', onRequest);
    try {
      const url = new URL(mcpUrl);
      const body = JSON.stringify(call('echo'));
      const answer = new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: url.hostname,
            port: url.port,
            path: url.pathname,
            method: 'POST',
            headers: {
              authorization: `Bearer ${token}`,
              'content-type': 'application/json',
              accept: 'application/json, text/event-stream',
              'mcp-session-id': sessionId,
              'content-length': Buffer.byteLength(body),
            },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.write(body.slice(0, 10));
        // The token was checked and P waits for the rest of the body (it reads it once the check passed).
        void (async () => {
          for (let i = 0; i < 200 && !(seen && seen.listenerCount('data') > 0); i++) await new Promise((r) => setTimeout(r, 10));
          expect(seen?.listenerCount('data'), 'P is reading the body').toBeGreaterThan(0);
          await stack.app.runtime.revocation.revokeGrant(grantId, 'admin');
          vi.useFakeTimers({ toFake: ['Date'] });
          vi.setSystemTime(Date.now() + CHECK_FRESH_MS + 1000); // the rest of the body comes late
          req.end(body.slice(10));
        })().catch(reject);
      });
      expect(await answer).toBe(401);
    } finally {
      vi.useRealTimers();
      stack.app.server.off('request', onRequest);
    }
    expect(stack.mcp.received.length, 'R received nothing').toBe(before);
    const forwarded = (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.forwarded' && e.client_id === late.clientId);
    expect(forwarded.length, 'the session set-up only').toBeGreaterThan(0);
    expect(
      forwarded.every((e) => !JSON.parse(e.details ?? '{}').tools),
      'no tool call was forwarded',
    ).toBe(true);
  });

  it('lets a browser client on an allowed origin send the 2026-07-28 headers (Mcp-Method, Mcp-Name, Mcp-Param-*)', async () => {
    const res = await fetch(mcpUrl, {
      method: 'OPTIONS',
      headers: {
        origin: stack.app.url,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, mcp-method, mcp-name, mcp-param-region, Mcp-Param-Repo, mcp-param-file_path, Mcp-Param-X.Y',
      },
    });
    expect(res.status).toBe(204);
    const allowed = (res.headers.get('access-control-allow-headers') ?? '').split(', ');
    expect(allowed).toEqual(expect.arrayContaining(['authorization', 'mcp-method', 'mcp-name', 'mcp-param-region', 'mcp-param-repo', 'mcp-param-file_path', 'mcp-param-x.y']));
    const other = await fetch(mcpUrl, { method: 'OPTIONS', headers: { origin: stack.app.url, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-custom' } });
    expect(other.headers.get('access-control-allow-headers')).not.toContain('x-custom');
  });

  /** A request by node:http (fetch sends no body with GET): status, headers and the JSON-RPC error code. */
  const rawSend = (method: string, body: string, token = narrow) =>
    new Promise<{ status: number; headers: Headers; code?: number }>((resolve, reject) => {
      const url = new URL(mcpUrl);
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(body), 'mcp-protocol-version': '2025-06-18' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            let code: number | undefined;
            try {
              code = JSON.parse(Buffer.concat(chunks).toString()).error?.code;
            } catch {}
            resolve({ status: res.statusCode ?? 0, headers: new Headers(res.headers as Record<string, string>), code });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  it('refuses a tools/call P cannot read the tool of — positional params, a name that is not a string, no params, a batch in a batch, a message that is not an object — with 400 before R (review 2026-12-07: forwarded as "no tool")', async () => {
    const before = stack.mcp.received.length;
    const rejectedBefore = (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected' && e.reason === 'invalid_request').length;
    const bodies = [
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":["whoami",{}]}',
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":["whoami"],"arguments":{}}}',
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":{"toString":"whoami"}}}',
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":null}}',
      '{"jsonrpc":"2.0","id":7,"method":"tools/call"}',
      '[[{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami"}}]]',
      '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},"tools/call"]',
      '"tools/call"',
      // A method that is not a string: a lookup table reads ["tools/call"] as "tools/call" (review 2026-12-07).
      '{"jsonrpc":"2.0","id":7,"method":["tools/call"],"params":{"name":"whoami"}}',
    ];
    for (const body of bodies) {
      const res = await rawSend('POST', body);
      expect(res.status, body).toBe(400);
      expect(res.code, body).toBe(-32600);
    }
    expect(stack.mcp.received.length, 'R received nothing').toBe(before);
    const rejected = (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected' && e.reason === 'invalid_request');
    expect(rejected).toHaveLength(rejectedBefore + bodies.length);
    // What the transport sends is judged as before: a well-formed message still reaches R.
    await rawSend('POST', JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'tools/list' }));
    expect(stack.mcp.received.length).toBe(before + 1);
  });

  it('judges a body sent with GET or DELETE too (review 2026-12-07: forwarded unjudged; an R that dispatches JSON-RPC whatever the method would run it)', async () => {
    const before = stack.mcp.received.length;
    for (const method of ['GET', 'DELETE']) {
      await expectRefused(() => rawSend(method, JSON.stringify(call('whoami'))), 'mcp:tools mcp:admin mcp:echo');
      const garbage = await rawSend(method, 'not json');
      expect(garbage.status, method).toBe(400);
      expect(garbage.code, method).toBe(-32700);
    }
    expect(stack.mcp.received.length, 'R received nothing').toBe(before);
  });
});
