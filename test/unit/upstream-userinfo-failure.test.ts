/**
 * UP-07, SEC-02 (review 2026-12-08): when P must ask U's userinfo endpoint who signed in and that
 * fails, the failure P logs (src/flow/6-upstream-callback.ts) is a fixed message with the error's
 * type, code and U's status — never the library's message: U chose the access token's characters,
 * and undici's message for one that is no valid header value quotes the whole `Bearer <token>`.
 * P asks the userinfo endpoint only for an ID token whose `sub` is empty: for the OpenID presets
 * P always passes a nonce, so oauth4webapi requires an ID token with a string `sub`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createUpstreamClient, UpstreamError } from '../../src/upstream/presets.js';

const MARKER = 'userinfo-marker-token-0123456789';
let accessToken = '';
let userinfoStatus = 200;
let server: Server;
let base: string;

beforeAll(async () => {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  const idToken = () =>
    new SignJWT({ nonce: 'n' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuer(base).setAudience('p').setSubject('').setIssuedAt().setExpirationTime('1m').sign(privateKey);
  server = createServer(async (req, res) => {
    const url = new URL(req.url as string, 'http://x');
    res.setHeader('content-type', 'application/json');
    if (url.pathname === '/.well-known/openid-configuration') {
      res.end(JSON.stringify({ issuer: base, authorization_endpoint: `${base}/auth`, token_endpoint: `${base}/token`, userinfo_endpoint: `${base}/userinfo`, jwks_uri: `${base}/jwks` }));
    } else if (url.pathname === '/jwks') {
      res.end(JSON.stringify({ keys: [jwk] }));
    } else if (url.pathname === '/token') {
      // An ID token naming no subject (`sub: ""`): the one case in which P asks the userinfo endpoint.
      res.end(JSON.stringify({ access_token: accessToken, token_type: 'Bearer', expires_in: 60, id_token: await idToken() }));
    } else if (url.pathname === '/userinfo') {
      res.statusCode = userinfoStatus;
      res.end(JSON.stringify(userinfoStatus === 200 ? { sub: 'ann' } : { error: 'invalid_token', error_description: `bad ${MARKER}` }));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  accessToken = 'plain-token';
  userinfoStatus = 200;
});

async function exchange(): Promise<unknown> {
  const u = createUpstreamClient({ preset: 'oidc', issuer: new URL(base), clientId: 'p', clientSecret: 's', scopes: ['openid'], name: 'U' }, 'http://127.0.0.1:9/cb', {
    dangerouslyAllowInsecureHttp: true,
    timeoutMs: 2_000,
  });
  const callback = new URL('http://127.0.0.1:9/cb?code=c&state=s');
  return u.exchange(callback, { state: 's', nonce: 'n', codeVerifier: 'v'.repeat(43) }).then(
    (ok) => ok,
    (err: unknown) => err,
  );
}

describe("U's userinfo endpoint failing: the error does not carry the access token", () => {
  it('an access token that is no valid header value: identity_failed, its type named, the token not in the message', async () => {
    accessToken = `at\n${MARKER}`;
    const err = await exchange();
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ reason: 'identity_failed', message: 'could not learn the upstream subject from its userinfo endpoint (TypeError)' });
    expect(JSON.stringify({ ...(err as object), message: (err as Error).message, stack: (err as Error).stack })).not.toContain(MARKER);
  });

  it("U refusing the token at its userinfo endpoint: U's status kept, its error_description not", async () => {
    userinfoStatus = 401;
    const err = (await exchange()) as UpstreamError;
    expect(err).toMatchObject({ reason: 'identity_failed' });
    expect(err.message).toMatch(/^could not learn the upstream subject from its userinfo endpoint \(.*HTTP 401\)$/);
    expect(err.message).not.toContain(MARKER);
  });

  it('a working userinfo endpoint still gives the subject', async () => {
    expect(await exchange()).toMatchObject({ identity: { subject: 'ann' }, tokens: { accessToken: 'plain-token' } });
  });
});
