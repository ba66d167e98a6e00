/**
 * Step-up to a tool scope configured after the client registered (GW-15; review 2026-12-08).
 * Registration widens a client's `scope` — a ceiling at /authorize — with the step-up scopes of
 * MCP_TOOL_SCOPES (src/oauth/admission.ts); it did so only when the client registered, so a client
 * registered before `delete_repo=mcp:admin` was configured was told by the gateway's 403 to step up
 * to `mcp:tools mcp:admin` and was then refused at /authorize with invalid_scope, "not offered by
 * this server". The same rule now applies to every stored client as the provider loads it: the
 * step-up goes through the consent page (which asks for the new scope), the token carries it and
 * the call reaches R. The stored client itself is not rewritten, and a client registered without
 * a `scope` (no ceiling) is loaded without one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient, rows } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, drive, redeem, startStack, type Stack } from '../helpers/stack.js';
import { callTool, openSession } from '../helpers/mcp-http.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack(); // MCP_SCOPES=mcp:tools, no MCP_TOOL_SCOPES
});
afterAll(() => stack.close());

const storedScope = async (clientId: string) => {
  const [row] = await rows(stack.app, "SELECT payload FROM oidc_models WHERE model = 'Client' AND key = ?", clientId);
  return (JSON.parse(row.payload) as { scope?: string }).scope;
};

describe('step-up to a tool scope added after the client registered', () => {
  it('lets a client registered with scope "mcp:tools" step up to the new scope: consent page, token, call at R', async () => {
    const browser = new Browser();
    const first = await authorizeClient(stack, browser, { login: 'erin', register: { scope: 'mcp:tools' }, scope: 'mcp:tools' });
    const { clientId } = first;
    expect(await storedScope(clientId)).toBe('mcp:tools');
    const scopeless = (await registerClient(stack.app)).client_id as string;

    await stack.restart({ MCP_SCOPES: 'mcp:tools mcp:admin', MCP_TOOL_SCOPES: 'echo=mcp:admin' });
    const mcpUrl = `${stack.app.url}/mcp`;

    // The earlier token is refused for echo, with the step-up challenge; R sees no call.
    const oldToken = first.tokens.body.access_token as string;
    const session = await openSession(mcpUrl, oldToken);
    const before = stack.mcp.received.length;
    const refused = await callTool(mcpUrl, oldToken, session, 'echo', { message: 'hi' });
    expect(refused.status).toBe(403);
    const challenged = /scope="([^"]+)"/.exec(refused.headers.get('www-authenticate') ?? '')?.[1];
    expect(challenged).toBe('mcp:tools mcp:admin');
    expect(stack.mcp.received.length).toBe(before);

    // Step-up with exactly the challenged scopes: the consent page asks for mcp:admin (a widened ceiling is not a consent).
    const auth = buildAuthorization(stack.app, { clientId, scope: challenged });
    const result = await drive(browser, auth.url, auth.redirectUri, { login: 'erin' });
    expect(Object.fromEntries(result.callback.searchParams), 'was: error=invalid_scope, "not offered by this server"').not.toHaveProperty('error');
    expect(result.seen).toContain('consent');
    const html = result.consentPage?.html ?? '';
    expect(html).toContain('id="step-up"');
    expect(html).toContain('<code>mcp:admin</code> <span class="badge warn">New</span>');
    expect(html).toContain('<code>mcp:tools</code> <span class="badge">Already allowed</span>');
    const tokens = await redeem(stack.app, clientId, result.callback.searchParams.get('code') as string, auth.verifier);
    expect(tokens.status).toBe(200);
    expect(String(tokens.body.scope).split(' ').sort()).toEqual(['mcp:admin', 'mcp:tools']);

    const token = tokens.body.access_token as string;
    const stepped = await openSession(mcpUrl, token);
    const atR = stack.mcp.received.length;
    const echoed = await callTool(mcpUrl, token, stepped, 'echo', { message: 'stepped up' });
    expect(echoed.status).toBe(200);
    expect(echoed.messages[0].result.content).toEqual([{ type: 'text', text: 'stepped up' }]);
    expect(stack.mcp.received.length).toBe(atR + 1);

    // Nothing about the stored clients changed: the widening is applied as they are loaded.
    expect(await storedScope(clientId)).toBe('mcp:tools');
    const loaded = await stack.app.runtime.provider.Client.find(clientId);
    expect(loaded?.scope).toBe('mcp:tools mcp:admin');
    // A client registered without a scope has no ceiling to widen, and gets none.
    expect(await storedScope(scopeless)).toBeUndefined();
    expect((await stack.app.runtime.provider.Client.find(scopeless))?.scope).toBeUndefined();
  });
});
