/**
 * Dynamic Client Registration through the whole stack (REG-01..13): the admission policy, the
 * provider, provenance and the audit row for every decision.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient as sdkRegisterClient, discoverAuthorizationServerMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import { auditEvents, mcpClientMetadata, rows, startTestApp, type TestApp } from '../helpers/app.js';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ env: { REDIRECT_SCHEMES: 'cursor' } });
});
afterAll(() => app.close());

async function register(body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  const res = await fetch(`${app.url}/register`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
}

const clientCount = async () => (await rows(app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'Client'"))[0].n as number;

describe('registration › accepted', () => {
  it('registers a public MCP client: 201, no secret, echoes what was stored, no-store (REG-01/08/09)', async () => {
    const { status, headers, body } = await register(mcpClientMetadata({ x_unknown: 1, logo_uri: '', scope: '' }));
    expect(status).toBe(201);
    expect(headers.get('cache-control')).toBe('no-store');
    expect(body).toMatchObject({
      client_name: 'Test MCP client',
      redirect_uris: ['http://127.0.0.1:33418/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    });
    expect(body.client_id).toMatch(/^[\w-]{20,}$/);
    expect(body).not.toHaveProperty('client_secret');
    expect(body).not.toHaveProperty('x_unknown');
    expect(body).not.toHaveProperty('logo_uri');
    expect(body).not.toHaveProperty('registration_access_token');
    expect(body).not.toHaveProperty('registration_client_uri');
    const meta = (await rows(app, 'SELECT * FROM clients_meta WHERE client_id = ?', body.client_id))[0];
    expect(meta).toMatchObject({ client_name: 'Test MCP client', redirect_hosts: '127.0.0.1:33418', ip: '127.0.0.1', last_used_at: null });
    const audit = (await auditEvents(app)).filter((e) => e.client_id === body.client_id);
    expect(audit.map((e) => e.event)).toEqual(['registration.accepted']);
  });

  it('treats a client that omits token_endpoint_auth_method as public (no unused secret)', async () => {
    const { status, body } = await register({ redirect_uris: ['https://app.example.com/cb'] });
    expect(status).toBe(201);
    expect(body.token_endpoint_auth_method).toBe('none');
    expect(body.application_type).toBe('web');
    expect(body).not.toHaveProperty('client_secret');
  });

  it('issues a secret to a confidential client, with its expiry, and stores it sealed', async () => {
    const { status, body } = await register({ redirect_uris: ['https://app.example.com/cb'], token_endpoint_auth_method: 'client_secret_basic' });
    expect(status).toBe(201);
    expect(body.client_secret).toMatch(/.{32,}/);
    expect(body.client_secret_expires_at).toBe(0);
    const stored = (await rows(app, "SELECT payload FROM oidc_models WHERE model = 'Client' AND key = ?", body.client_id))[0].payload as string;
    expect(stored).not.toContain(body.client_secret);
    expect(stored).toContain('client_secret_sealed');
  });

  it('accepts allow-listed private-use schemes as native clients (REG-06, F9)', async () => {
    const { status, body } = await register({ redirect_uris: ['cursor://anysphere.cursor-mcp/oauth/callback'], client_name: 'Cursor' });
    expect(status).toBe(201);
    expect(body.application_type).toBe('native');
  });

  it('accepts what the MCP TypeScript SDK sends from registerClient', async () => {
    const metadata = await discoverAuthorizationServerMetadata(app.url);
    const info = await sdkRegisterClient(app.url, {
      metadata,
      clientMetadata: {
        client_name: 'sdk',
        redirect_uris: ['http://localhost:9876/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
    });
    expect(info.client_id).toBeTruthy();
    expect(info.redirect_uris).toEqual(['http://localhost:9876/callback']);
  });

  it('answers the CORS preflight for browser-based clients', async () => {
    const res = await fetch(`${app.url}/register`, { method: 'OPTIONS', headers: { origin: 'https://inspector.example', 'access-control-request-method': 'POST' } });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
  });
});

describe('registration › refused, with the RFC 7591 error, no client written, one audit row each', () => {
  const cases: [string, unknown, string, string][] = [
    ['javascript: redirect', { redirect_uris: ['javascript:alert(1)'] }, 'invalid_redirect_uri', 'invalid_redirect_uri:scheme_forbidden'],
    ['data: redirect', { redirect_uris: ['data:text/html,hi'] }, 'invalid_redirect_uri', 'invalid_redirect_uri:scheme_forbidden'],
    ['http on a public host', { redirect_uris: ['http://evil.example/cb'] }, 'invalid_redirect_uri', 'invalid_redirect_uri:http_not_loopback'],
    ['fragment', { redirect_uris: ['https://app.example.com/cb#x'] }, 'invalid_redirect_uri', 'invalid_redirect_uri:fragment'],
    ['wildcard', { redirect_uris: ['https://*.example.com/cb'] }, 'invalid_redirect_uri', 'invalid_redirect_uri:wildcard'],
    ['userinfo', { redirect_uris: ['https://app.example.com@evil.example/cb'] }, 'invalid_redirect_uri', 'invalid_redirect_uri:userinfo'],
    ['11 redirect URIs', { redirect_uris: Array.from({ length: 11 }, (_, i) => `https://app.example.com/cb${i}`) }, 'invalid_redirect_uri', 'invalid_redirect_uri:too_many'],
    ['custom scheme not on the allowlist', { redirect_uris: ['myapp:/callback'] }, 'invalid_redirect_uri', 'invalid_redirect_uri:scheme_not_allowed'],
    ['no redirect URIs', { client_name: 'x' }, 'invalid_redirect_uri', 'invalid_redirect_uri:missing'],
    ['control characters in client_name', { redirect_uris: ['https://app.example.com/cb'], client_name: 'Claude\u0007\u202E' }, 'invalid_client_metadata', 'invalid_client_metadata:client_name'],
    ['an over-long client_name', { redirect_uris: ['https://app.example.com/cb'], client_name: 'A'.repeat(10_000) }, 'invalid_client_metadata', 'invalid_client_metadata:client_name'],
    [
      'private_key_jwt',
      { redirect_uris: ['https://app.example.com/cb'], token_endpoint_auth_method: 'private_key_jwt' },
      'invalid_client_metadata',
      'invalid_client_metadata:token_endpoint_auth_method',
    ],
  ];

  it.each(cases)('%s', async (_label, body, error, reason) => {
    const before = await clientCount();
    const res = await register(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe(error);
    expect(typeof res.body.error_description).toBe('string');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await clientCount()).toBe(before);
    expect((await auditEvents(app)).at(-1)).toMatchObject({ event: 'registration.rejected', reason });
  });

  it('a 100 KB body: 413 before parsing', async () => {
    const before = await clientCount();
    const res = await register({ redirect_uris: ['https://app.example.com/cb'], client_name: 'x', padding: 'x'.repeat(100 * 1024) });
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('invalid_client_metadata');
    expect(await clientCount()).toBe(before);
    expect((await auditEvents(app)).at(-1)).toMatchObject({ event: 'registration.rejected', reason: 'body_too_large' });
  });

  it('the body limit is 16 KiB exactly: 16,384 bytes register, 16,385 are refused with 413 and register nothing', async () => {
    const sized = (bytes: number) => {
      const base = JSON.stringify({ redirect_uris: ['https://app.example.com/cb'], client_name: 'Sized', padding: '' });
      return JSON.stringify({ redirect_uris: ['https://app.example.com/cb'], client_name: 'Sized', padding: 'x'.repeat(bytes - base.length) });
    };
    expect(Buffer.byteLength(sized(16 * 1024))).toBe(16_384);
    expect((await register(sized(16 * 1024))).status).toBe(201);
    const before = await clientCount();
    const over = await register(sized(16 * 1024 + 1));
    expect(over.status).toBe(413);
    expect(await clientCount()).toBe(before);
    expect((await auditEvents(app)).at(-1)).toMatchObject({ event: 'registration.rejected', reason: 'body_too_large' });
  });

  it('malformed JSON and a non-JSON content type', async () => {
    expect((await register('{ "redirect_uris": [')).body).toEqual({ error: 'invalid_client_metadata', error_description: 'registration body is not valid JSON' });
    const form = await register('redirect_uris=https://a.example/cb', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(400);
    expect(form.body.error).toBe('invalid_client_metadata');
  });
});

describe('registration › rate limit (REG-11, SEC-01)', () => {
  it('answers 429 with Retry-After once the per-IP budget is spent (every answer with the draft RateLimit headers), and audits it (tallied per address and minute)', async () => {
    const limited = await startTestApp({ env: { RATE_LIMIT_REGISTER: '3/1m' } });
    try {
      const answers: Response[] = [];
      for (let i = 0; i < 5; i++) {
        answers.push(await fetch(`${limited.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(mcpClientMetadata()) }));
      }
      expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 429, 429]);
      const last = answers.at(-1);
      expect(Number(last?.headers.get('retry-after'))).toBeGreaterThan(0);
      // draft-ietf-httpapi-ratelimit-headers (express-rate-limit's draft-8): what is left, and the policy
      expect(answers.map((a) => /; r=(\d+); t=\d+$/.exec(a.headers.get('ratelimit') ?? '')?.[1])).toEqual(['2', '1', '0', '0', '0']);
      expect(last?.headers.get('ratelimit-policy')).toMatch(/; q=3; w=60; pk=:[A-Za-z0-9+/=]+:$/);
      expect(await last?.json()).toMatchObject({ error: 'too_many_requests' });
      expect((await rows(limited, "SELECT count(*) AS n FROM oidc_models WHERE model = 'Client'"))[0].n).toBe(3);
      // Requests beyond the budget: one row per address and minute with the count (DESIGN §9).
      expect((await auditEvents(limited)).filter((e) => e.reason === 'rate_limited')).toHaveLength(0);
      limited.runtime.refusals.tally.flush();
      const tallied = (await auditEvents(limited)).filter((e) => e.reason === 'rate_limited');
      expect(tallied.map((e) => [e.event, JSON.parse(e.details as string).count])).toEqual([['registration.rejected_aggregate', 2]]);
    } finally {
      await limited.close();
    }
  });
});
