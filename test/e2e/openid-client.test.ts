/**
 * openid-client v6 as a relying party of P (issue 5, interop.md §5): DCR through discovery in
 * `oauth2` mode, the PKCE code flow through P's consent page and U's login with its state and
 * RFC 9207 `iss` checks, the MCP call with `fetchProtectedResource`, refresh; and in `oidc` mode
 * an ID token that openid-client validates (signature from our JWKS, iss, aud, nonce).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as client from 'openid-client';
import { Browser, drive, startStack, type Stack } from '../helpers/stack.js';
import { INITIALIZE } from '../helpers/mcp-http.js';
import { sha256 } from '../../src/crypto/keys.js';

let stack: Stack;
let mcpUrl: string;
beforeAll(async () => {
  stack = await startStack();
  mcpUrl = `${stack.app.url}/mcp`;
});
afterAll(() => stack.close());

async function signIn(config: client.Configuration, redirectUri: string, scope: string, login: string, nonce?: string) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    state,
    resource: mcpUrl,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...(nonce ? { nonce } : {}),
  });
  const { callback } = await drive(new Browser(login), url.href, redirectUri, { login });
  return { callback, verifier, state };
}

/** The message of a rejection and of its cause (openid-client wraps oauth4webapi's errors). */
async function failure(promise: Promise<unknown>): Promise<string> {
  const error = (await promise.then(() => undefined, (e: unknown) => e)) as { message?: string; cause?: { message?: string } } | undefined;
  if (!error) throw new Error('expected a rejection');
  return `${error.message} / ${error.cause?.message ?? ''}`;
}

describe('openid-client', () => {
  it('registers in oauth2 mode, authorizes, calls /mcp and refreshes', async () => {
    const redirectUri = 'http://127.0.0.1:48151/callback';
    const config = await client.dynamicClientRegistration(
      new URL(stack.app.url),
      { client_name: 'openid-client e2e', redirect_uris: [redirectUri], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] },
      client.None(),
      { algorithm: 'oauth2', execute: [client.allowInsecureRequests] },
    );
    expect(config.serverMetadata().issuer).toBe(stack.app.url);

    const { callback, verifier, state } = await signIn(config, redirectUri, 'mcp:tools', 'oc-alice');
    // A wrong expected state, or a callback with another issuer, is refused before any token request.
    expect(await failure(client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: 'not-the-state' }, { resource: mcpUrl }))).toMatch(/"state"/);
    const forged = new URL(callback);
    forged.searchParams.set('iss', 'https://evil.example');
    expect(await failure(client.authorizationCodeGrant(config, forged, { pkceCodeVerifier: verifier, expectedState: state }, { resource: mcpUrl }))).toMatch(/"iss"/);

    const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state }, { resource: mcpUrl });
    expect(tokens.scope).toBe('mcp:tools');
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(tokens.access_token))).toMatchObject({ aud: mcpUrl, accountId: 'oc-alice' });

    const headers = new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' });
    const res = await client.fetchProtectedResource(config, tokens.access_token, new URL(mcpUrl), 'POST', JSON.stringify(INITIALIZE), headers);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('"serverInfo"'); // JSON or one SSE event, as the MCP server chooses

    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token as string, { resource: mcpUrl });
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(refreshed.access_token))).toMatchObject({ aud: mcpUrl });
    // The rotated-out refresh token is dead, and using it revokes the grant (RT-01/02).
    await expect(client.refreshTokenGrant(config, tokens.refresh_token as string, { resource: mcpUrl })).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('in oidc mode receives an ID token that openid-client validates', async () => {
    const redirectUri = 'http://127.0.0.1:48152/callback';
    const config = await client.dynamicClientRegistration(
      new URL(stack.app.url),
      { client_name: 'openid-client oidc', redirect_uris: [redirectUri], token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'] },
      client.None(),
      { algorithm: 'oidc', execute: [client.allowInsecureRequests] },
    );
    const nonce = client.randomNonce();
    const { callback, verifier, state } = await signIn(config, redirectUri, 'openid mcp:tools', 'oc-bob', nonce);
    const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true }, { resource: mcpUrl });
    const claims = tokens.claims();
    expect(claims).toMatchObject({ iss: stack.app.url, aud: config.clientMetadata().client_id, sub: 'oc-bob', nonce });
  });
});
