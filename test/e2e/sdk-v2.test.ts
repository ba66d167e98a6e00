/**
 * MCP TypeScript SDK v2 (`@modelcontextprotocol/client`) end to end (issue 5, interop.md §3, §8.1):
 * the stricter client. It registers as a native app, adds `offline_access` with `prompt=consent`
 * when the metadata lists it, and enforces RFC 9207: `finishAuth` must see the callback's `iss`,
 * equal to our issuer. Driven unattended through P's consent page and U's login.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { Client, StreamableHTTPClientTransport, UnauthorizedError, auth } from '@modelcontextprotocol/client';
import { auditEvents, rows } from '../helpers/app.js';
import { MemoryV2Provider } from '../helpers/mcp-client-v2.js';
import { Browser, drive, startStack, type Stack } from '../helpers/stack.js';
import { sha256 } from '../../src/crypto/keys.js';

let stack: Stack;
let mcpUrl: URL;
beforeAll(async () => {
  stack = await startStack();
  mcpUrl = new URL(`${stack.app.url}/mcp`);
});
afterAll(() => stack.close());

const codesRedeemed = async () => (await auditEvents(stack.app)).filter((e) => e.event === 'token.issued' && e.reason === 'authorization_code').length;

describe('MCP SDK v2 client', () => {
  it('registers as a native app, authorizes through consent and U, checks iss, calls tools; a second client reuses the tokens', async () => {
    const provider = new MemoryV2Provider('http://127.0.0.1:48131/callback', 'SDK v2 e2e');
    const first = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
    await expect(new Client({ name: 'e2e-v2', version: '1.0.0' }).connect(first)).rejects.toBeInstanceOf(UnauthorizedError);

    const url = provider.authorizationUrl as URL;
    expect(url.searchParams.get('resource')).toBe(mcpUrl.href);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    const clientId = provider.info?.client_id as string;
    expect(await rows(stack.app, 'SELECT client_id FROM clients_meta WHERE client_id = ?', clientId)).toHaveLength(1);
    expect((await stack.app.runtime.ops.client(clientId))?.metadata).toMatchObject({ application_type: 'native', token_endpoint_auth_method: 'none' });
    // offline_access is in our metadata, so v2 asks for it, with prompt=consent (interop.md §3).
    expect(url.searchParams.get('scope')?.split(' ').sort()).toEqual(['mcp:tools', 'offline_access']);
    expect(url.searchParams.get('prompt')).toBe('consent');

    const result = await drive(new Browser('v2-user'), url.href, provider.callbackUrl, { login: 'v2-alice' });
    expect(result.seen).toEqual(['consent', 'upstream-login', 'upstream-consent']);
    expect(result.callback.searchParams.get('iss')).toBe(stack.app.url);
    expect(result.callback.searchParams.get('state')).toBe(provider.lastState);
    await first.finishAuth(result.callback.searchParams);
    expect(provider.tokens()).toMatchObject({ token_type: 'Bearer' });
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(provider.tokens()?.access_token as string))).toMatchObject({ aud: mcpUrl.href, accountId: 'v2-alice', clientId });

    const client = new Client({ name: 'e2e-v2', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider }));
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['whoami', 'echo', 'countdown']);
    const who = await client.callTool({ name: 'whoami', arguments: {} });
    const upstreamToken = stack.upstream.issued.filter((t) => t.sub === 'v2-alice').at(-1)?.token as string;
    expect(who.structuredContent).toEqual({ upstream_user: 'v2-alice', upstream_token_sha256: createHash('sha256').update(upstreamToken).digest('hex') });
    await client.close();

    // A second client of the same host reuses the stored tokens: no new authorization, no new code.
    const redeemed = await codesRedeemed();
    const again = new Client({ name: 'e2e-v2-again', version: '1.0.0' });
    await again.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider }));
    expect((await again.callTool({ name: 'echo', arguments: { message: 'reused' } })).content).toEqual([{ type: 'text', text: 'reused' }]);
    await again.close();
    expect(await codesRedeemed()).toBe(redeemed);
    expect(provider.authorizationUrl).toBe(url);

    // Refresh with the stored refresh token: rotated, same audience.
    const before = provider.tokens();
    expect(before?.refresh_token).toBeTruthy();
    expect(await auth(provider, { serverUrl: mcpUrl })).toBe('AUTHORIZED');
    expect(provider.tokens()?.refresh_token).not.toBe(before?.refresh_token);
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(provider.tokens()?.access_token as string))).toMatchObject({ aud: mcpUrl.href });
  });

  it('refuses a callback without iss, or with another issuer, and redeems nothing (RFC 9207)', async () => {
    for (const [label, iss] of [
      ['missing iss', undefined],
      ['foreign iss', 'https://evil.example'],
    ] as const) {
      const provider = new MemoryV2Provider('http://127.0.0.1:48132/callback', 'SDK v2 e2e');
      const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
      await expect(new Client({ name: 'e2e-v2', version: '1.0.0' }).connect(transport)).rejects.toBeInstanceOf(UnauthorizedError);
      const result = await drive(new Browser(`v2-${label}`), (provider.authorizationUrl as URL).href, provider.callbackUrl, { login: 'v2-bob' });
      const params = new URLSearchParams(result.callback.searchParams);
      if (iss) params.set('iss', iss);
      else params.delete('iss');
      const redeemed = await codesRedeemed();
      await expect(transport.finishAuth(params), label).rejects.toThrow(/iss/i);
      expect(provider.tokens(), label).toBeUndefined();
      expect(await codesRedeemed(), label).toBe(redeemed);
    }
  });
});
