/**
 * The redirect to U, created at the Approve POST only (STATE-01..03, UP-01..04).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { registerClient, rows } from '../helpers/app.js';
import { Browser, buildAuthorization, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

describe('upstream redirect', () => {
  it('sends U exactly P\'s static client, fixed callback, displayed scopes, and P\'s own state, nonce and PKCE (UP-01..04)', async () => {
    const client = await registerClient(stack.app);
    const auth = buildAuthorization(stack.app, { clientId: client.client_id, state: 'client-state-value' });
    const browser = new Browser();
    const page = await browser.navigate(auth.url);
    const clientChallenge = new URL(auth.url).searchParams.get('code_challenge');
    const next = await browser.submit(page, { action: 'approve' }, { stopAt: (u) => u.startsWith(stack.upstream.issuer) });
    const hop = next.hops[0];
    const to = new URL(hop?.location as string);
    const q = Object.fromEntries(to.searchParams);
    expect(to.origin + to.pathname).toBe(`${stack.upstream.issuer}/auth`);
    expect(q).toMatchObject({
      client_id: stack.upstream.clientId,
      redirect_uri: `${stack.app.url}/upstream/callback`,
      response_type: 'code',
      scope: 'openid email',
      code_challenge_method: 'S256',
    });
    expect(q.state).toMatch(/^[\w-]{43}$/);
    expect(q.nonce).toMatch(/^[\w-]{43}$/);
    expect(q.code_challenge).not.toBe(clientChallenge);
    expect(Object.keys(q).sort()).toEqual(['client_id', 'code_challenge', 'code_challenge_method', 'nonce', 'redirect_uri', 'response_type', 'scope', 'state']);
    expect(to.href).not.toContain('client-state-value');
    expect(to.href).not.toContain(encodeURIComponent(`${stack.app.url}/mcp`));

    // STATE-02/03: the transaction exists only now, bound to this browser by the cookie on the 303.
    expect(await rows(stack.app, 'SELECT state_hash FROM upstream_transactions')).toEqual([{ state_hash: createHash('sha256').update(q.state as string).digest('base64url') }]);
    const cookie = hop?.setCookies.find((c) => c.startsWith('__Host-mcp-tx='));
    expect(cookie).toMatch(/; Max-Age=600; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    const stored = JSON.stringify(await rows(stack.app, 'SELECT * FROM upstream_transactions'));
    expect(stored).not.toContain(q.state);
    expect(stored).not.toContain(q.nonce);
  });

  it('uses a fresh 256-bit state for every approval (STATE-01)', async () => {
    const client = await registerClient(stack.app);
    const auth = buildAuthorization(stack.app, { clientId: client.client_id });
    const browser = new Browser();
    const page = await browser.navigate(auth.url);
    const states = new Set<string>();
    for (let i = 0; i < 25; i++) {
      const next = await browser.submit(page, { action: 'approve' }, { stopAt: (u) => u.startsWith(stack.upstream.issuer) });
      states.add(new URL(next.hops[0]?.location as string).searchParams.get('state') as string);
    }
    expect(states.size).toBe(25);
  });
});
