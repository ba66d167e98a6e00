/**
 * oauth4webapi as a strict relying party and resource client, the whole way (issue 5, interop.md
 * §5): the 401 challenge, RFC 9728 metadata with an exactly equal `resource`, RFC 8414 metadata with
 * an exactly equal issuer, DCR, PKCE authorization through P's consent page and U's login, RFC 9207
 * `iss` on the callback, the code grant, the MCP call, and refresh with rotation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as oauth from 'oauth4webapi';
import { auditEvents } from '../helpers/app.js';
import { Browser, drive, startStack, type Stack } from '../helpers/stack.js';
import { INITIALIZE } from '../helpers/mcp-http.js';
import { sha256 } from '../../src/crypto/keys.js';

const insecure = { [oauth.allowInsecureRequests]: true }; // plain http on 127.0.0.1 in tests
const REDIRECT = 'http://127.0.0.1:48141/callback';
const mcpHeaders = () => new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' });

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

async function discover() {
  const mcpUrl = new URL(`${stack.app.url}/mcp`);
  const challenge = await oauth.protectedResourceRequest('not-a-token', 'POST', mcpUrl, mcpHeaders(), JSON.stringify(INITIALIZE), insecure).catch((e) => e);
  expect(challenge).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
  const params = (challenge as oauth.WWWAuthenticateChallengeError).cause[0]?.parameters ?? {};
  expect(params.scope).toBe('mcp:tools');
  const prmUrl = new URL(params.resource_metadata as string);
  const prm = await oauth.processResourceDiscoveryResponse(mcpUrl, await fetch(prmUrl));
  expect(prm.resource).toBe(mcpUrl.href);
  const issuer = new URL(prm.authorization_servers?.[0] as string);
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
  return { mcpUrl, prm, as };
}

describe('oauth4webapi strict client', () => {
  it('discovers, registers, authorizes with PKCE, checks iss, calls /mcp and refreshes', async () => {
    const { mcpUrl, as } = await discover();
    expect(as.issuer).toBe(stack.app.url);
    expect(as.authorization_response_iss_parameter_supported).toBe(true);

    const registered = await oauth.processDynamicClientRegistrationResponse(
      await oauth.dynamicClientRegistrationRequest(as, { client_name: 'oauth4webapi strict', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }, insecure),
    );
    const client: oauth.Client = { client_id: registered.client_id, token_endpoint_auth_method: 'none' };

    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const authorize = new URL(as.authorization_endpoint as string);
    authorize.search = new URLSearchParams({
      client_id: client.client_id,
      redirect_uri: REDIRECT,
      response_type: 'code',
      scope: 'mcp:tools',
      state,
      resource: mcpUrl.href,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();
    const { callback, seen } = await drive(new Browser('o4w'), authorize.href, REDIRECT, { login: 'o4w-user' });
    expect(seen).toEqual(['consent', 'upstream-login', 'upstream-consent']);

    // RFC 9207: a callback without iss, or with another one, fails strict validation.
    const withoutIss = new URL(callback);
    withoutIss.searchParams.delete('iss');
    expect(() => oauth.validateAuthResponse(as, client, withoutIss, state)).toThrow(/iss/);
    const foreignIss = new URL(callback);
    foreignIss.searchParams.set('iss', 'https://evil.example');
    expect(() => oauth.validateAuthResponse(as, client, foreignIss, state)).toThrow(/iss/);
    expect(() => oauth.validateAuthResponse(as, client, callback, 'another-state')).toThrow(/state/);
    const params = oauth.validateAuthResponse(as, client, callback, state);

    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, REDIRECT, verifier, { additionalParameters: { resource: mcpUrl.href }, ...insecure }),
    );
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.scope).toBe('mcp:tools');
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(tokens.access_token))).toMatchObject({ aud: mcpUrl.href, accountId: 'o4w-user' });

    const call = await oauth.protectedResourceRequest(tokens.access_token, 'POST', mcpUrl, mcpHeaders(), JSON.stringify(INITIALIZE), insecure);
    expect(call.status).toBe(200);
    await call.arrayBuffer();

    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token as string, { additionalParameters: { resource: mcpUrl.href }, ...insecure }),
    );
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    const again = await oauth.protectedResourceRequest(refreshed.access_token, 'POST', mcpUrl, mcpHeaders(), JSON.stringify(INITIALIZE), insecure);
    expect(again.status).toBe(200);
    await again.arrayBuffer();
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'token.issued' && e.client_id === client.client_id).map((e) => e.reason)).toEqual(['authorization_code', 'refresh_token']);
  });
});
