/**
 * AT-11 PKCE downgrade; AUTHZ-03/04: every authorization request needs an S256 challenge. The
 * refusal goes back to the validated redirect URI (with state and iss) and nothing else happens:
 * no interaction, no consent page, no code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { authorizeUrl, pkcePair } from '../helpers/pkce.js';
import { CLIENT_ERROR_DESCRIPTIONS } from '../../src/provider/error-redirect.js';

let app: TestApp;
let clientId: string;
const redirectUri = 'http://127.0.0.1:33418/callback';
beforeAll(async () => {
  app = await startTestApp();
  clientId = (await registerClient(app)).client_id;
});
afterAll(() => app.close());

const interactions = async () => (await rows(app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'Interaction'"))[0].n as number;

describe('PKCE is required (AT-11)', () => {
  it.each([
    ['no code_challenge', {}],
    ['code_challenge_method=plain', { code_challenge: pkcePair().challenge, code_challenge_method: 'plain' }],
    ['an unknown method', { code_challenge: pkcePair().challenge, code_challenge_method: 'S512' }],
    ['a malformed challenge', { code_challenge: 'too-short', code_challenge_method: 'S256' }],
  ])('refuses %s with invalid_request to the registered redirect URI, with state and iss', async (_label, pkce) => {
    const before = await interactions();
    const res = await fetch(authorizeUrl(app.url, { client_id: clientId, redirect_uri: redirectUri, response_type: 'code', state: 's+/=%x', ...pkce }), { redirect: 'manual' });
    expect(res.status).toBe(303);
    const location = new URL(res.headers.get('location') as string);
    expect(location.origin + location.pathname).toBe(redirectUri);
    expect(Object.fromEntries(location.searchParams)).toEqual({ error: 'invalid_request', error_description: CLIENT_ERROR_DESCRIPTIONS.invalid_request, state: 's+/=%x', iss: app.url });
    expect(location.searchParams.has('code')).toBe(false);
    expect(await interactions()).toBe(before);
    expect((await auditEvents(app)).at(-1)).toMatchObject({ event: 'authorization.rejected', reason: 'invalid_request', client_id: clientId });
  });

  it('refuses a code_verifier for a code that does not exist at the token endpoint', async () => {
    const res = await fetch(`${app.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: 'forged', code_verifier: pkcePair().verifier, client_id: clientId, redirect_uri: redirectUri }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error).toBe('invalid_grant');
    expect((await auditEvents(app)).at(-1)).toMatchObject({ event: 'token.rejected', reason: 'invalid_grant', client_id: clientId });
  });
});
