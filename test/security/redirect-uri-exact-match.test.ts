/**
 * AT-07 redirect URI manipulation at /authorize (AUTHZ-01/02): only the exact registered string
 * is a redirect target; the one relaxation is the port of a loopback redirect URI for native
 * clients (RFC 8252 §7.3). Every refusal is P's error page: no Location header, no interaction.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { authorizeUrl, pkcePair } from '../helpers/pkce.js';

let app: TestApp;
let webClient: string;
let nativeClient: string;
beforeAll(async () => {
  app = await startTestApp();
  webClient = (await registerClient(app, { redirect_uris: ['https://app.example/cb'] })).client_id;
  nativeClient = (await registerClient(app, { redirect_uris: ['http://127.0.0.1/cb', 'http://localhost:7777/oauth/callback'] })).client_id;
});
afterAll(() => app.close());

const interactions = async () => (await rows(app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'Interaction'"))[0].n as number;

function request(clientId: string, redirectUri: string) {
  return fetch(authorizeUrl(app.url, { client_id: clientId, redirect_uri: redirectUri, response_type: 'code', code_challenge: pkcePair().challenge, code_challenge_method: 'S256', state: 'st' }), {
    redirect: 'manual',
    headers: { accept: 'text/html' },
  });
}

describe('redirect URI exact match (AT-07)', () => {
  it.each([
    'https://app.example/cb/',
    'https://APP.example/cb',
    'https://app.example/CB',
    'https://app.example/cb?x=1',
    'https://app.example/cb/../evil',
    'https://app.example.evil.example/cb',
    'https://app.example@evil.example/cb',
    'https://app.example:8443/cb',
    'https://app.example/cb#frag',
    'http://app.example/cb',
    'javascript:alert(1)',
  ])('refuses %s for https://app.example/cb with an error page and no Location', async (variant) => {
    const before = await interactions();
    const res = await request(webClient, variant);
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    const html = await res.text();
    expect(html).toContain('The redirect address is not registered');
    expect(html).not.toContain('<script');
    expect(await interactions()).toBe(before);
  });

  it.each([
    ['http://localhost:9999/cb', 'another host spelling than the registered 127.0.0.1'],
    ['http://127.0.0.1/other', 'another path'],
    ['https://127.0.0.1/cb', 'another scheme'],
    ['http://127.0.0.1:5000/cb?x=1', 'an extra query'],
  ])('refuses the loopback variant %s (%s)', async (variant) => {
    const res = await request(nativeClient, variant);
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
  });

  it('lets only the port of a loopback redirect URI vary for a native client (RFC 8252 §7.3)', async () => {
    for (const uri of ['http://127.0.0.1:54321/cb', 'http://127.0.0.1/cb', 'http://localhost:7777/oauth/callback', 'http://localhost:1234/oauth/callback']) {
      const res = await request(nativeClient, uri);
      expect(res.status, uri).toBe(303);
      expect(res.headers.get('location')).toMatch(/\/interaction\//);
    }
  });
});
