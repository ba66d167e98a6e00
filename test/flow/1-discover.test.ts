/**
 * Discovery (DISC-01..15): both metadata documents, protected-resource metadata and the 401
 * challenge, checked by oauth4webapi's strict processing (interop §5).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import { startTestApp, type TestApp } from '../helpers/app.js';

const insecure = { [oauth.allowInsecureRequests]: true };

describe.each([
  { label: 'issuer at the origin root', basePath: '' },
  { label: 'issuer with a base path', basePath: '/gateway' },
])('discovery › $label', ({ basePath }) => {
  let app: TestApp;
  let origin: string;
  beforeAll(async () => {
    app = await startTestApp({ basePath });
    origin = new URL(app.url).origin;
  });
  afterAll(() => app.close());

  it('serves RFC 8414 metadata that passes oauth4webapi in oauth2 and oidc mode (DISC-07/08/09/10)', async () => {
    const issuer = new URL(app.url);
    for (const algorithm of ['oauth2', 'oidc'] as const) {
      const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm, ...insecure }));
      expect(as.issuer).toBe(app.url);
      expect(as.code_challenge_methods_supported).toEqual(['S256']);
      expect(as.response_types_supported).toEqual(['code']);
      expect(as.grant_types_supported).toEqual(['authorization_code', 'refresh_token']);
      expect(as.token_endpoint_auth_methods_supported).toContain('none');
      expect(as.authorization_response_iss_parameter_supported).toBe(true);
      expect(as.registration_endpoint).toBe(`${app.url}/register`);
      expect(as.authorization_endpoint).toBe(`${app.url}/authorize`);
      expect(as.token_endpoint).toBe(`${app.url}/token`);
      expect(as.scopes_supported).toEqual(['openid', 'offline_access', 'mcp:tools']);
    }
  });

  it("answers the probes under the issuer's path and at the root of P's port (the container's HEALTHCHECK, a balancer's probe)", async () => {
    for (const base of basePath ? [app.url, origin] : [app.url]) {
      const health = await fetch(`${base}/healthz`);
      expect(health.status, `${base}/healthz`).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });
      expect((await fetch(`${base}/readyz`)).status, `${base}/readyz answers`).not.toBe(404);
    }
    // The Dockerfile's own HEALTHCHECK command, run against this server's port.
    const healthcheck = /HEALTHCHECK [^\n]* CMD node -e "([^\n]*)"/.exec(readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8'))?.[1];
    expect(healthcheck).toBeDefined();
    const exit = await new Promise<number | null>((resolve) => {
      const child = execFile(process.execPath, ['-e', healthcheck as string], { env: { ...process.env, PORT: new URL(origin).port }, timeout: 10_000 });
      child.on('exit', (code) => resolve(code));
      child.on('error', () => resolve(null)); // node could not be started: a failure, not a hang
    });
    expect(exit, 'the HEALTHCHECK command exits 0').toBe(0);
  });

  it('answers every metadata URL a client tries with the same document, with no-store caching off the issuer', async () => {
    const urls = basePath
      ? [`${origin}/.well-known/oauth-authorization-server${basePath}`, `${origin}/.well-known/openid-configuration${basePath}`, `${app.url}/.well-known/openid-configuration`, `${app.url}/.well-known/oauth-authorization-server`]
      : [`${origin}/.well-known/oauth-authorization-server`, `${origin}/.well-known/openid-configuration`];
    const docs = await Promise.all(urls.map(async (u) => {
      const res = await fetch(u);
      expect(res.status, u).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      return res.json() as Promise<any>;
    }));
    for (const doc of docs) expect(doc.issuer).toBe(app.url);
  });

  it('pins endpoint URLs to PUBLIC_URL whatever Host header arrives (F12)', async () => {
    const res = await fetch(`${app.url}/.well-known/openid-configuration`, { headers: { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } });
    const doc = (await res.json()) as any;
    expect(doc.token_endpoint).toBe(`${app.url}/token`);
  });

  it('serves RFC 9728 metadata whose resource equals the audience, at the path-inserted and root URLs (DISC-01..04)', async () => {
    const resource = new URL(`${app.url}/mcp`);
    const prm = await oauth.processResourceDiscoveryResponse(resource, await oauth.resourceDiscoveryRequest(resource, insecure));
    expect(prm).toEqual({
      resource: `${app.url}/mcp`,
      authorization_servers: [app.url],
      scopes_supported: ['mcp:tools'],
      bearer_methods_supported: ['header'],
      resource_name: 'MCP server (via MCP Consent Proxy)',
    });
    const root = await fetch(`${origin}/.well-known/oauth-protected-resource`);
    expect(await root.json()).toEqual(prm);
  });

  it('challenges an unauthenticated /mcp with resource_metadata and scope (DISC-05/06, GW-05)', async () => {
    const mcp = new URL(`${app.url}/mcp`);
    const initialize = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} });
    const plain = await fetch(mcp, { method: 'POST', headers: { 'content-type': 'application/json' }, body: initialize });
    expect(plain.status).toBe(401);
    expect(plain.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${origin}/.well-known/oauth-protected-resource${basePath}/mcp", scope="mcp:tools"`);
    const err = await oauth.protectedResourceRequest('bogus-token', 'POST', mcp, new Headers({ 'content-type': 'application/json' }), initialize, insecure).catch((e) => e);
    expect(err).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const [challenge] = (err as oauth.WWWAuthenticateChallengeError).cause;
    expect(challenge?.scheme).toBe('bearer');
    expect(challenge?.parameters).toMatchObject({
      resource_metadata: `${origin}/.well-known/oauth-protected-resource${basePath}/mcp`,
      scope: 'mcp:tools',
      error: 'invalid_token',
    });
  });
});

describe('discovery › operations endpoints and headers', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app.close());

  it('answers /healthz, and /readyz false while the upstream cannot be discovered', async () => {
    expect(await (await fetch(`${app.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${app.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ ready: false, checks: { database: true, upstream: false } });
  });

  it('serves Prometheus metrics', async () => {
    await fetch(`${app.url}/.well-known/oauth-authorization-server`);
    const text = await (await fetch(`${app.url}/metrics`)).text();
    expect(text).toContain('mcp_proxy_http_requests_total');
    expect(text).toContain('mcp_proxy_process_cpu_seconds_total');
  });

  it('sends security headers and a request id on every response, and its own 404 page', async () => {
    const res = await fetch(`${app.url}/no-such-page`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(404);
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const html = await res.text();
    expect(html).toContain('Page not found');
    expect(html).toContain(res.headers.get('x-request-id'));
    const json = await fetch(`${app.url}/no-such-page`);
    expect(await json.json()).toEqual({ error: 'not_found', error_description: 'The requested page does not exist.' });
  });
});
