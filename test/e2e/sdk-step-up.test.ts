/**
 * Step-up with the real MCP SDK client (issue 12 §2; GW-15; MCP 2026-07-28 Authz §Step-Up
 * Authorization Flow). `@modelcontextprotocol/client` 2.3.1 (SDK v2) steps up on 403
 * `insufficient_scope`: it re-authorizes with the union of its scopes and the challenge's, skipping
 * the refresh that could not widen the grant. (SDK v1, `@modelcontextprotocol/sdk` 1.32.2, reacts to
 * the 403 too but refreshes first when it holds a refresh token — a refresh never widens the scope
 * (RT-04) — and then gives up; so v2 is the client tested here.)
 * The client first gets the minimal set (PRM and the 401 name `mcp:tools`, not the tool's
 * `mcp:admin`); a call to the tool that needs `mcp:admin` is refused without reaching R; the
 * re-authorization shows P's consent page with `mcp:admin` marked new next to what was already
 * allowed; the call then succeeds, and the remembered consent covers the union.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';
import { auditEvents, rows } from '../helpers/app.js';
import { MemoryV2Provider } from '../helpers/mcp-client-v2.js';
import { Browser, buildAuthorization, drive, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
let mcpUrl: URL;
beforeAll(async () => {
  stack = await startStack({ env: { MCP_SCOPES: 'mcp:tools mcp:admin', MCP_TOOL_SCOPES: 'echo=mcp:admin' } });
  mcpUrl = new URL(`${stack.app.url}/mcp`);
});
afterAll(() => stack.close());

/** The URL the SDK last asked the host to open (read through a call: the test resets it). */
const opened = (provider: MemoryV2Provider) => provider.authorizationUrl;
const scopesOf = (url: URL | undefined) => (url?.searchParams.get('scope') ?? '').split(' ').sort();

describe('GW-15 step-up with the MCP SDK v2 client', () => {
  it('starts with the minimal set, steps up through the consent page on 403 insufficient_scope, then calls the tool', async () => {
    const provider = new MemoryV2Provider('http://127.0.0.1:48141/callback', 'SDK v2 step-up', { statePrefix: 'up' });
    const browser = new Browser('step-up-user');
    const first = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
    await expect(new Client({ name: 'step-up', version: '1.0.0' }).connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
    expect(scopesOf(provider.authorizationUrl)).toEqual(['mcp:tools', 'offline_access']);
    const initial = await drive(browser, (provider.authorizationUrl as URL).href, provider.callbackUrl, { login: 'carol' });
    expect(initial.seen).toContain('consent');
    await first.finishAuth(initial.callback.searchParams);

    const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
    const client = new Client({ name: 'step-up', version: '1.0.0' });
    await client.connect(transport);
    expect((await client.callTool({ name: 'whoami', arguments: {} })).isError).toBeFalsy();

    // The tool that needs mcp:admin: refused by P (R never sees the call), the SDK re-authorizes.
    const before = stack.mcp.received.length;
    provider.authorizationUrl = undefined;
    await expect(client.callTool({ name: 'echo', arguments: { message: 'stepped up' } })).rejects.toBeInstanceOf(UnauthorizedError);
    expect(stack.mcp.received.length).toBe(before);
    expect(scopesOf(opened(provider))).toEqual(['mcp:admin', 'mcp:tools', 'offline_access']);
    const refused = (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.tool_refused');
    expect(refused).toHaveLength(1);
    expect(JSON.parse(refused[0]?.details ?? '{}')).toMatchObject({ tools: ['echo'], missing: ['mcp:admin'] });

    // The consent page shows what is new next to what was already allowed.
    const stepUp = await drive(browser, (opened(provider) as URL).href, provider.callbackUrl, { login: 'carol' });
    expect(stepUp.seen[0]).toBe('consent');
    const html = stepUp.consentPage?.html ?? '';
    expect(html).toContain('id="step-up"');
    expect(html).toMatch(/<code>mcp:admin<\/code> <span class="badge warn">New<\/span>/);
    expect(html).toMatch(/<code>mcp:tools<\/code> <span class="badge">Already allowed<\/span>/);
    await transport.finishAuth(stepUp.callback.searchParams);
    expect(provider.tokens()?.scope?.split(' ')).toContain('mcp:admin');

    const echoed = await client.callTool({ name: 'echo', arguments: { message: 'stepped up' } });
    expect(echoed.content).toEqual([{ type: 'text', text: 'stepped up' }]);
    await client.close();

    // The remembered consent covers the union: neither set is asked again in this browser.
    const clientId = provider.info?.client_id as string;
    const live = await rows(stack.app, 'SELECT scopes FROM consents WHERE client_id = ? AND revoked_at IS NULL', clientId);
    expect(live.map((r) => r.scopes.split(' ').sort())).toEqual([['mcp:admin', 'mcp:tools', 'offline_access']]);
    for (const scope of ['mcp:tools', 'mcp:admin mcp:tools']) {
      const again = buildAuthorization(stack.app, { clientId, scope, redirectUri: provider.callbackUrl });
      const result = await drive(browser, again.url, again.redirectUri);
      expect(result.seen, scope).not.toContain('consent');
      expect(result.callback.searchParams.get('code'), scope).toBeTruthy();
    }
  });
});
