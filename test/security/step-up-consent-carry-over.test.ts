/**
 * Step-up consent carry-over (CONS-13, CONS-16; src/consent/decision.ts `grantedBefore`): an
 * approval keeps what the same user already granted the same client, redirect URI and resource
 * only when that consent was approved in THIS browser and is still active. Another browser of the
 * same user, or a revoked consent, carries nothing over: the page shows no "already allowed"
 * scope and the recorded consent (and grant, and token) holds only what this page asked for.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient, rows } from '../helpers/app.js';
import { Browser, buildAuthorization, drive, redeem, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ env: { MCP_SCOPES: 'mcp:tools mcp:admin', MCP_TOOL_SCOPES: 'echo=mcp:admin' } });
});
afterAll(() => stack.close());

async function authorize(browser: Browser, clientId: string, scope: string) {
  const auth = buildAuthorization(stack.app, { clientId, scope });
  const result = await drive(browser, auth.url, auth.redirectUri, { login: 'dave' });
  const tokens = await redeem(stack.app, clientId, result.callback.searchParams.get('code') as string, auth.verifier);
  return { html: result.consentPage?.html ?? '', tokens: tokens.body };
}

const liveScopes = async (clientId: string) => (await rows(stack.app, 'SELECT scopes FROM consents WHERE client_id = ? AND revoked_at IS NULL', clientId)).map((r) => r.scopes.split(' ').sort());

describe('step-up consent carry-over', () => {
  it('keeps the earlier scopes in the browser that approved them, marked as already allowed', async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const browser = new Browser();
    await authorize(browser, clientId, 'mcp:tools');
    const up = await authorize(browser, clientId, 'mcp:admin');
    expect(up.html).toMatch(/<code>mcp:tools<\/code> <span class="badge">Already allowed<\/span>/);
    // What the new scope unlocks, in plain words (CONS-06; review 2026-12-07: only its name was shown).
    expect(up.html).toContain('Needed to call these tools on your behalf: echo');
    expect(await liveScopes(clientId)).toEqual([['mcp:admin', 'mcp:tools']]);
    expect(up.tokens.scope).toBe('mcp:admin');
  });

  it('carries nothing over from another browser of the same user', async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    await authorize(new Browser(), clientId, 'mcp:tools');
    const other = await authorize(new Browser(), clientId, 'mcp:admin');
    expect(other.html).not.toContain('id="step-up"');
    expect(other.html).not.toContain('Already allowed');
    expect(await liveScopes(clientId)).toEqual([['mcp:admin']]);
  });

  it('carries nothing over from a revoked consent', async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const browser = new Browser();
    await authorize(browser, clientId, 'mcp:tools');
    await stack.app.runtime.sql.run('UPDATE consents SET revoked_at = ?, revoked_reason = ? WHERE client_id = ?', [Date.now(), 'user', clientId]);
    const after = await authorize(browser, clientId, 'mcp:admin');
    expect(after.html).not.toContain('Already allowed');
    expect(await liveScopes(clientId)).toEqual([['mcp:admin']]);
  });

  it("carries over only what the page showed as already allowed: after P's sign-in ended, the page shows nothing kept, and nothing is (review 2026-12-06, AT-23)", async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const browser = new Browser();
    await authorize(browser, clientId, 'mcp:admin');
    expect(await liveScopes(clientId)).toEqual([['mcp:admin']]);
    // P's session in this browser ends (sign-out, expiry); the browser's own cookie stays.
    await stack.app.runtime.sql.run('DELETE FROM browser_sessions');
    const { html } = await authorize(browser, clientId, 'mcp:tools');
    expect(html, 'the page was shown').toContain('name="action" value="approve"');
    expect(html, 'and showed nothing as already allowed').not.toContain('Already allowed');
    expect(await liveScopes(clientId), 'the consent holds what the page showed (was: mcp:admin carried over unseen, its lifetime restarted)').toEqual([['mcp:tools']]);
  });
});
