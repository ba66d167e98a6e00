/**
 * Finding (issue 9 §5): non-canonical redirect URIs (`https:evil.example/cb`, `HTTPS://EVIL…`,
 * default ports, backslashes…) were stored as given. They are now refused at registration
 * (AUTHZ-01, REG-05): exact matching at /authorize compares the client's string with the
 * registered one, so one URL must have one spelling. Redirect URIs of real clients (interop.md)
 * are canonical already and are stored byte for byte.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { authorizeUrl, pkcePair } from '../helpers/pkce.js';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ env: { REDIRECT_SCHEMES: 'cursor' } });
});
afterAll(() => app.close());

async function register(redirectUris: string[], extra: Record<string, unknown> = {}) {
  const res = await fetch(`${app.url}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'probe', redirect_uris: redirectUris, token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], ...extra }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

const clients = async () => (await rows(app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'Client'"))[0].n as number;

describe('non-canonical redirect URIs are stored as given', () => {
  it.each([
    ['https:evil.example/cb'],
    ['HTTPS://EVIL.EXAMPLE/cb'],
    ['https://EVIL.example/cb'],
    ['Https://evil.example/cb'],
    ['https://evil.example:443/cb'],
    ['http://localhost:80/cb'],
    ['https://evil.example\\cb'],
    ['https:\\\\evil.example\\cb'],
    ['https:/evil.example/cb'],
    ['https://évil.example/cb'],
    ['http://127.1:3000/cb'],
    ['http://0x7f.0.0.1/cb'],
    ['http://[0:0:0:0:0:0:0:1]/cb'],
    ['https://app.example/café'],
    ['Cursor://anysphere.cursor-mcp/oauth/callback'],
  ])('refuses %j: 400 invalid_redirect_uri, no client written, audited', async (uri) => {
    const before = await clients();
    const res = await register([uri]);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_redirect_uri');
    expect(res.body.error_description).toContain('canonical form');
    expect(res.body).not.toHaveProperty('client_id');
    expect(await clients()).toBe(before);
    expect((await auditEvents(app)).at(-1)).toMatchObject({ event: 'registration.rejected', reason: 'invalid_redirect_uri:not_canonical' });
  });

  it.each([
    ['VS Code', ['https://vscode.dev/redirect', 'https://insiders.vscode.dev/redirect', 'http://localhost/', 'http://127.0.0.1/', 'http://localhost:33418/', 'http://127.0.0.1:33418/']],
    ['Claude', ['https://claude.ai/api/mcp/auth_callback']],
    ['mcp-remote', ['http://localhost:3334/oauth/callback']],
    ['MCP Inspector', ['http://127.0.0.1:6274/oauth/callback']],
    ['Cursor', ['cursor://anysphere.cursor-mcp/oauth/callback']],
    ['a loopback callback with an empty path', ['http://127.0.0.1:8080']],
    ['an https callback with a query', ['https://app.example.com:8443/oauth/callback?x=1']],
  ])('accepts %s and stores its redirect URIs byte for byte', async (_client, uris) => {
    const res = await register(uris);
    expect(res.status).toBe(201);
    expect(res.body.redirect_uris).toEqual(uris);
    const [stored] = await rows(app, "SELECT payload FROM oidc_models WHERE model = 'Client' AND key = ?", res.body.client_id);
    expect(JSON.parse(stored.payload).redirect_uris).toEqual(uris);
  });

  it("still lets VS Code's loopback redirect vary only its port at /authorize (RFC 8252 §7.3)", async () => {
    const { body } = await register(['https://vscode.dev/redirect', 'http://127.0.0.1/', 'http://127.0.0.1:33418/']);
    const go = (redirect_uri: string) =>
      fetch(authorizeUrl(app.url, { client_id: body.client_id, redirect_uri, response_type: 'code', code_challenge: pkcePair().challenge, code_challenge_method: 'S256', state: 's' }), { redirect: 'manual', headers: { accept: 'text/html' } });
    expect((await go('http://127.0.0.1:54321/')).headers.get('location')).toMatch(/^\/interaction\//);
    const other = await go('http://127.0.0.1:54321');
    expect(other.status).toBe(400);
    expect(other.headers.get('location')).toBeNull();
  });
});
