/**
 * AT-23 scope escalation between consent and upstream (UP-03, CONS-06, CONS-13, RT-04): the
 * scopes P sends to U are exactly the upstream scopes the page showed; P's token carries exactly
 * the scopes the page listed; asking for more later means a new consent page.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient, rows } from '../helpers/app.js';
import { Browser, buildAuthorization, drive, redeem, refresh, startStack, type Stack } from '../helpers/stack.js';
import { sha256 } from '../../src/crypto/keys.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ env: { MCP_SCOPES: 'mcp:read mcp:write', UPSTREAM_SCOPES: 'openid email' } });
});
afterAll(() => stack.close());

describe('AT-23 scopes shown = scopes at U = scopes in the token', () => {
  it('keeps the three equal and refuses escalation', async () => {
    const client = await registerClient(stack.app);
    const browser = new Browser();
    const auth = buildAuthorization(stack.app, { clientId: client.client_id, scope: 'mcp:read' });
    const result = await drive(browser, auth.url, auth.redirectUri, { login: 'alice' });
    const page = result.consentPage?.html ?? '';
    const shownMcp = [...page.matchAll(/<li><span>[^<]*<\/span> <code>([^<]+)<\/code><\/li>/g)].map((m) => m[1]);
    expect(shownMcp).toEqual(['mcp:read']);
    expect(page).toContain('which this server will ask for\n    <code>openid</code>, <code>email</code>.');
    expect(stack.upstream.authorizations.at(-1)?.query.scope).toBe('openid email');

    const tokens = await redeem(stack.app, client.client_id, result.callback.searchParams.get('code') as string, auth.verifier);
    expect(tokens.body.scope).toBe('mcp:read');
    const stored = await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(tokens.body.access_token));
    expect(stored?.scope).toBe('mcp:read');
    expect(stored?.aud).toBe(`${stack.app.url}/mcp`);
    expect(await rows(stack.app, 'SELECT scopes, upstream_scopes FROM consents WHERE client_id = ?', client.client_id)).toEqual([{ scopes: 'mcp:read', upstream_scopes: 'openid email' }]);

    expect(await refresh(stack.app, client.client_id, tokens.body.refresh_token, { scope: 'mcp:read mcp:write' })).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });

    // A wider authorization in the same browser is asked again (CONS-13).
    const wider = buildAuthorization(stack.app, { clientId: client.client_id, scope: 'mcp:read mcp:write' });
    const again = await drive(browser, wider.url, wider.redirectUri);
    expect(again.seen).toEqual(['consent']);
  });
});
