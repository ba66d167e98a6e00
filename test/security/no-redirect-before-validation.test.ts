/**
 * AUTHZ-02, AT-09: until the client and its exact redirect URI are validated, every error is
 * shown on P's own page — never a redirect, never reflected markup.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { authorizeUrl, pkcePair } from '../helpers/pkce.js';

let app: TestApp;
let multi: string;
beforeAll(async () => {
  app = await startTestApp();
  multi = (await registerClient(app, { redirect_uris: ['https://a.example/cb', 'https://b.example/cb'] })).client_id;
});
afterAll(() => app.close());

const pkce = () => ({ code_challenge: pkcePair().challenge, code_challenge_method: 'S256', response_type: 'code' });

describe('no redirect before validation', () => {
  it.each([
    ['an unknown client', () => ({ client_id: 'no-such-client', redirect_uri: 'https://evil.example/cb', ...pkce() }), 'invalid_client'],
    ['a missing client_id', () => ({ redirect_uri: 'https://evil.example/cb', ...pkce() }), 'invalid_request'],
    ['no redirect_uri with two registered', () => ({ client_id: multi, ...pkce() }), 'invalid_request'],
    ['a duplicated redirect_uri', () => ({ client_id: multi, ...pkce() }), 'invalid_request'],
    ['markup in client_id', () => ({ client_id: '<script>alert(1)</script>', redirect_uri: 'https://evil.example/cb', ...pkce() }), 'invalid_client'],
  ])('%s renders the error page', async (label, params, error) => {
    let url = authorizeUrl(app.url, params());
    if (label === 'a duplicated redirect_uri') url += '&redirect_uri=https%3A%2F%2Fa.example%2Fcb&redirect_uri=https%3A%2F%2Fevil.example%2Fcb';
    const res = await fetch(url, { redirect: 'manual', headers: { accept: 'text/html' } });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    const html = await res.text();
    expect(html).toContain(error);
    expect(html).not.toContain('<script>alert(1)');
    expect((await rows(app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'Interaction'"))[0].n).toBe(0);
    expect((await auditEvents(app)).at(-1)).toMatchObject({ event: 'authorization.rejected', reason: error });
  });

  it('refuses POST to the authorization endpoint (GET only)', async () => {
    const res = await fetch(`${app.url}/authorize`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'client_id=x' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
  });

  it('sends no CORS headers from the authorization endpoint (AUTHZ-11)', async () => {
    const res = await fetch(authorizeUrl(app.url, { client_id: multi, redirect_uri: 'https://a.example/cb', ...pkce() }), { redirect: 'manual', headers: { origin: 'https://evil.example' } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});
