/**
 * The MCP TypeScript SDK's `auth()` completes the whole flow unattended: discovery from the 401,
 * DCR, PKCE, P's consent page and U's login (played by the fetch driver), the code exchange —
 * and receives P's tokens for the MCP resource.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { Browser, drive, startStack, type Stack } from '../helpers/stack.js';
import { MemoryOAuthProvider } from '../helpers/mcp-client.js';
import { sha256 } from '../../src/crypto/keys.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

describe('MCP SDK v1 auth()', () => {
  it('registers, authorizes through consent and U, and receives tokens whose audience is the MCP resource', async () => {
    const serverUrl = `${stack.app.url}/mcp`;
    const provider = new MemoryOAuthProvider('http://127.0.0.1:48123/callback');
    expect(await auth(provider, { serverUrl })).toBe('REDIRECT');
    const authorizationUrl = provider.authorizationUrl as URL;
    expect(authorizationUrl.searchParams.get('resource')).toBe(serverUrl);
    expect(authorizationUrl.searchParams.get('scope')).toBe('mcp:tools');
    expect(authorizationUrl.searchParams.get('code_challenge_method')).toBe('S256');

    const result = await drive(new Browser(), authorizationUrl.href, provider.callbackUrl, { login: 'sdk-user' });
    expect(result.seen).toEqual(['consent', 'upstream-login', 'upstream-consent']);
    expect(result.callback.searchParams.get('state')).toBe(provider.lastState);
    expect(result.callback.searchParams.get('iss')).toBe(stack.app.url);

    expect(await auth(provider, { serverUrl, authorizationCode: result.callback.searchParams.get('code') as string })).toBe('AUTHORIZED');
    const tokens = provider.tokens();
    expect(tokens).toMatchObject({ token_type: 'Bearer', scope: 'mcp:tools' });
    const stored = await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(tokens?.access_token as string));
    expect(stored).toMatchObject({ aud: serverUrl, accountId: 'sdk-user', clientId: provider.info?.client_id });

    // With a refresh token on hand the SDK refreshes; the new token keeps the audience.
    expect(await auth(provider, { serverUrl })).toBe('AUTHORIZED');
    const refreshed = provider.tokens();
    expect(refreshed?.refresh_token).not.toBe(tokens?.refresh_token);
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(refreshed?.access_token as string))).toMatchObject({ aud: serverUrl });
  });
});
