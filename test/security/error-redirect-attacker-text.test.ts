/**
 * Finding (issue 9 §5): error redirects carried attacker text
 * (`error_description=requested scope is not offered: bogus`, `scope=bogus`). Every error sent to
 * a client's redirect URI now carries only `error`, `state`, `iss` and a description from P's own
 * fixed wording (AUTHZ-12, AT-09, RFC 6749 §4.1.2.1) — in every response mode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { authorizeUrl, pkcePair } from '../helpers/pkce.js';
import { CLIENT_ERROR_DESCRIPTIONS } from '../../src/provider/error-redirect.js';

let app: TestApp;
let clientId: string;
const redirectUri = 'http://127.0.0.1:33418/callback';
const ATTACKER = 'bogus<script>alert(1)</script>evil.example';
beforeAll(async () => {
  app = await startTestApp();
  clientId = (await registerClient(app)).client_id;
});
afterAll(() => app.close());

const interactions = async () => (await rows(app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'Interaction'"))[0].n as number;
const base = () => ({ client_id: clientId, redirect_uri: redirectUri, response_type: 'code', code_challenge: pkcePair().challenge, code_challenge_method: 'S256', state: 's+/=%x' });

describe('error redirects carry attacker text', () => {
  it.each([
    ['an unknown scope', { scope: `mcp:tools ${ATTACKER}` }, 'invalid_scope'],
    ['a bad resource', { resource: `https://evil.example/${ATTACKER}` }, 'invalid_target'],
    ['a resource that is not a URI', { resource: ATTACKER }, 'invalid_target'],
    ['missing PKCE', { code_challenge: undefined, code_challenge_method: undefined, scope: ATTACKER }, 'invalid_request'],
    ['plain PKCE', { code_challenge_method: 'plain', nonce: ATTACKER }, 'invalid_request'],
  ])('%s: the Location carries only error, state, iss and our description', async (_label, extra, error) => {
    const before = await interactions();
    const res = await fetch(authorizeUrl(app.url, { ...base(), ...extra }), { redirect: 'manual' });
    expect(res.status).toBe(303);
    const location = res.headers.get('location') as string;
    const url = new URL(location);
    expect(url.origin + url.pathname).toBe(redirectUri);
    expect(Object.fromEntries(url.searchParams)).toEqual({ error, error_description: CLIENT_ERROR_DESCRIPTIONS[error], state: 's+/=%x', iss: app.url });
    expect(url.hash).toBe('');
    for (const fragment of ['bogus', 'evil.example', 'alert(1)']) {
      expect(location).not.toContain(fragment);
      expect(decodeURIComponent(location.replace(/\+/g, ' '))).not.toContain(fragment);
    }
    expect(await interactions()).toBe(before); // nothing else happened
    expect((await auditEvents(app)).at(-1)).toMatchObject({ event: 'authorization.rejected', reason: error, client_id: clientId });
  });

  it('the fragment response mode (response_type=token) carries only the same four members', async () => {
    const res = await fetch(authorizeUrl(app.url, { ...base(), response_type: 'token', scope: ATTACKER }), { redirect: 'manual' });
    const location = res.headers.get('location') as string;
    const params = Object.fromEntries(new URLSearchParams(new URL(location).hash.slice(1)));
    expect(params).toEqual({ error: 'unsupported_response_type', error_description: CLIENT_ERROR_DESCRIPTIONS.unsupported_response_type, state: 's+/=%x', iss: app.url });
    expect(location).not.toContain('bogus');
  });

  it('response_mode=form_post posts only the same four members to the client', async () => {
    const res = await fetch(authorizeUrl(app.url, { ...base(), response_mode: 'form_post', scope: `mcp:tools ${ATTACKER}` }), { redirect: 'manual' });
    expect(res.headers.get('location')).toBeNull();
    const html = await res.text();
    const inputs = Object.fromEntries([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)].map((m) => [m[1], m[2]]));
    expect(Object.keys(inputs).sort()).toEqual(['error', 'error_description', 'iss', 'state']);
    expect(inputs.error).toBe('invalid_scope');
    expect(html).not.toContain('bogus');
    expect(html).not.toContain('evil.example');
  });
});
