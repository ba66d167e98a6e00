/**
 * UpstreamClient.refusesAccessToken (src/upstream/presets.ts; GW-14, used when R refuses a token
 * that cannot be refreshed): only U's own 401 says "refused". U not answering — its discovery
 * document unreachable included — is "not refused", never a throw (review 2026-12-07: a discovery
 * failure threw, and R's 401 became a 500).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUpstreamClient } from '../../src/upstream/presets.js';
import { freePort } from '../helpers/app.js';

let server: Server;
let base: string;
beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url as string, 'http://x');
    if (url.pathname === '/.well-known/openid-configuration') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer: base, authorization_endpoint: `${base}/auth`, token_endpoint: `${base}/token`, userinfo_endpoint: `${base}/userinfo` }));
      return;
    }
    if (url.pathname === '/userinfo' || url.pathname === '/user') {
      res.statusCode = req.headers.authorization === 'Bearer live' ? 200 : 401;
      res.end('{}');
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const client = (issuer: string, preset: 'oidc' | 'github' = 'oidc') =>
  createUpstreamClient({ preset, issuer: new URL(issuer), clientId: 'p', clientSecret: 's', scopes: ['openid'], name: 'U' }, 'http://127.0.0.1:9/cb', { dangerouslyAllowInsecureHttp: true, timeoutMs: 2_000 });

describe("U's own word on an access token", () => {
  it('OIDC: 401 at the userinfo endpoint is a refusal, 200 is not', async () => {
    expect(await client(base).refusesAccessToken('dead')).toBe(true);
    expect(await client(base).refusesAccessToken('live')).toBe(false);
  });

  it("U's discovery unreachable: not a refusal, and no throw", async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    await expect(client(closed).refusesAccessToken('dead')).resolves.toBe(false);
  });
});
