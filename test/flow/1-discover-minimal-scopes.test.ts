/**
 * The minimal set of scopes (DISC-04, DISC-06; MCP 2026-07-28 Authz §Scope Selection Strategy,
 * §Refresh Tokens): with MCP_TOOL_SCOPES, the resource metadata's `scopes_supported`, the 401
 * challenge and the default for an `/authorize` without `scope` name MCP_SCOPES less the scopes
 * only a tool asks for (reached by step-up), and never `offline_access`; the authorization
 * server's metadata still offers every scope.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, startStack, type Stack } from '../helpers/stack.js';
import { registerClient } from '../helpers/app.js';
import { buildAuthorization, drive } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ env: { MCP_SCOPES: 'mcp:tools mcp:read mcp:admin', MCP_TOOL_SCOPES: 'rm=mcp:admin,ls=mcp:tools' } });
});
afterAll(() => stack.close());

describe('discovery › the minimal set of scopes', () => {
  it('names the minimal set in the resource metadata and the 401 challenge; the AS offers all', async () => {
    const prm = (await (await fetch(`${stack.app.url}/.well-known/oauth-protected-resource/mcp`)).json()) as { scopes_supported: string[] };
    expect(prm.scopes_supported).toEqual(['mcp:tools', 'mcp:read']);
    const challenge = (await fetch(`${stack.app.url}/mcp`, { method: 'POST' })).headers.get('www-authenticate');
    expect(challenge).toContain('scope="mcp:tools mcp:read"');
    const as = (await (await fetch(`${stack.app.url}/.well-known/oauth-authorization-server`)).json()) as { scopes_supported: string[] };
    expect(as.scopes_supported).toEqual(['openid', 'offline_access', 'mcp:tools', 'mcp:read', 'mcp:admin']);
  });

  it('gives an authorization without scope the minimal set', async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const auth = buildAuthorization(stack.app, { clientId });
    const result = await drive(new Browser(), auth.url, auth.redirectUri);
    const shown = [...(result.consentPage?.html ?? '').matchAll(/<code>(mcp:[^<]+)<\/code>/g)].map((m) => m[1]);
    expect(shown).toEqual(['mcp:tools', 'mcp:read']);
  });
});
