/**
 * AT-14 token passthrough and audience confusion (GW-02/03/04/11/13, UP-07): only P's tokens for
 * this resource are accepted; R sees U's token and nothing of the client's credentials. GW-12: a
 * path below an API route never reaches R when R could resolve it outside the route's base.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { listenLoopback } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, drive, redeem, startStack, type Stack } from '../helpers/stack.js';
import { callTool, mcpPost, openSession, INITIALIZE } from '../helpers/mcp-http.js';
import { registerClient } from '../helpers/app.js';
import { sha256 } from '../../src/crypto/keys.js';
import { rawRequest } from '../helpers/raw-http.js';

let stack: Stack;
let api: Server;
const apiSeen: Record<string, string | string[] | undefined>[] = [];
const apiPaths: string[] = [];
beforeAll(async () => {
  api = createServer((req, res) => {
    apiSeen.push(req.headers);
    apiPaths.push(req.url as string);
    res.setHeader('content-type', 'application/json');
    res.end('{"ok":true}');
  });
  const port = await listenLoopback(api);
  stack = await startStack({ env: { GATEWAY_ROUTES: `/api/things=http://127.0.0.1:${port}/v1` } });
});
afterAll(async () => {
  await stack.close();
  api.close();
});

describe('AT-14 token passthrough', () => {
  it('refuses U\'s own token sent directly; R sees nothing', async () => {
    await authorizeClient(stack, new Browser(), { login: 'alice' });
    const upstreamToken = stack.upstream.issued.find((t) => t.sub === 'alice')?.token as string;
    const before = stack.mcp.received.length;
    const res = await mcpPost(`${stack.app.url}/mcp`, upstreamToken, INITIALIZE);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(stack.mcp.received.length).toBe(before);
  });

  it('refuses a P token minted for another resource of P, both ways', async () => {
    const client = await registerClient(stack.app);
    const browser = new Browser();
    const resource = `${stack.app.url}/api/things`;
    const auth = buildAuthorization(stack.app, { clientId: client.client_id, resource });
    const { callback } = await drive(browser, auth.url, auth.redirectUri, { login: 'alice' });
    const apiToken = (await redeem(stack.app, client.client_id, callback.searchParams.get('code') as string, auth.verifier, auth.redirectUri, { resource })).body.access_token;
    expect((await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(apiToken)))?.aud).toBe(resource);
    const before = stack.mcp.received.length;
    const onMcp = await mcpPost(`${stack.app.url}/mcp`, apiToken, INITIALIZE);
    expect(onMcp.status).toBe(401);
    expect(stack.mcp.received.length).toBe(before);

    const apiRes = await fetch(`${resource}/items?x=1`, { headers: { authorization: `Bearer ${apiToken}` } });
    expect(apiRes.status).toBe(200);
    expect(apiSeen.at(-1)?.authorization).toMatch(/^Bearer eyJ/);
    const mcpToken = (await authorizeClient(stack, browser, { login: 'alice' })).tokens.body.access_token;
    const seen = apiSeen.length;
    const wrong = await fetch(`${resource}/items`, { headers: { authorization: `Bearer ${mcpToken}` } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain(`resource_metadata="${new URL(stack.app.url).origin}/.well-known/oauth-protected-resource/api/things"`);
    expect(apiSeen.length).toBe(seen);
  });

  it('R receives U\'s token and none of the client\'s credentials, cookies or forwarding headers', async () => {
    const browser = new Browser();
    const { tokens } = await authorizeClient(stack, browser, { login: 'bob' });
    const token = tokens.body.access_token as string;
    const sessionId = await openSession(`${stack.app.url}/mcp`, token);
    const res = await callTool(`${stack.app.url}/mcp`, token, sessionId, 'whoami');
    expect(res.status).toBe(200);
    // Same call again with cookies and spoofed forwarding headers from the client.
    await mcpPost(`${stack.app.url}/mcp`, token, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, {
      'mcp-session-id': sessionId,
      cookie: `__Host-mcp-session=${browser.cookie('127.0.0.1', '__Host-mcp-session')}; other=1`,
      'x-forwarded-for': '6.6.6.6',
      forwarded: 'for=6.6.6.6',
      'x-forwarded-host': 'evil.example',
    });
    const upstreamToken = stack.upstream.issued.filter((t) => t.sub === 'bob').at(-1)?.token as string;
    const received = stack.mcp.received.filter((r) => r.headers['mcp-session-id'] === sessionId);
    expect(received.length).toBeGreaterThanOrEqual(3);
    for (const r of received) {
      expect(r.headers.authorization).toBe(`Bearer ${upstreamToken}`);
      expect(r.headers.cookie).toBeUndefined();
      expect(r.headers['x-forwarded-for']).toBeUndefined();
      expect(r.headers.forwarded).toBeUndefined();
      expect(r.headers['x-forwarded-host']).toBeUndefined();
      expect(r.headers.origin).toBeUndefined();
      expect(JSON.stringify(r.headers)).not.toContain(token);
    }
    // UP-07: and P never hands U's token to the client.
    expect(JSON.stringify(tokens.body)).not.toContain(upstreamToken);
    expect(res.text).not.toContain(upstreamToken);
  });

  it('refuses a path R could resolve outside the route\'s base (GW-12): `..;` segments, twice-encoded dots and slashes; R sees nothing', async () => {
    const client = await registerClient(stack.app);
    const resource = `${stack.app.url}/api/things`;
    const auth = buildAuthorization(stack.app, { clientId: client.client_id, resource });
    const { callback } = await drive(new Browser(), auth.url, auth.redirectUri, { login: 'alice' });
    const apiToken = (await redeem(stack.app, client.client_id, callback.searchParams.get('code') as string, auth.verifier, auth.redirectUri, { resource })).body.access_token;
    const port = Number(new URL(stack.app.url).port);
    const get = (path: string) => rawRequest(port, `GET /api/things${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${apiToken}\r\nConnection: close\r\n\r\n`);
    const seen = apiPaths.length;
    // Tomcat, Jetty and Spring read `..;` as `..` (path parameters); an R that decodes twice reads %252e as `.`.
    for (const path of ['/..;/admin', '/.;/..;/admin', '/x/..;', '/..;jsessionid=1/admin', '/.;x', '/%2e%2e;/admin', '/%252e%252e/x', '/%252E%252e/x', '/a%252fadmin', '/a%252F..', '/a%255cadmin', '/%25%32%65%25%32%65/x', '/..%3b/admin', '/%25252e%25252e/x', '/..%3f/x', '/..%3F/x', '/..%23/x', '/..%00/x', '/..%20/x', '/.%3f/x']) {
      const res = await get(path);
      expect(res.status, path).toBe(400);
      expect(JSON.parse(res.body), path).toMatchObject({ error: { message: 'Invalid path' } });
    }
    expect(apiPaths.slice(seen)).toEqual([]);
    // What stays below the base is forwarded as sent: path parameters, dots inside a name, a literal %.
    for (const path of ['/items;v=1', '/a..b/..c/...', '/50%2541', '/.well/x']) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect(apiPaths.at(-1), path).toBe(`/v1${path}`);
    }
  });
});
