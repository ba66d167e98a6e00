/**
 * AT-22 stale upstream grant (UP-08, GW-14, RT-05): once U no longer honours the user's
 * upstream grant, P's access token stops working at the gateway and P's refresh token fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, drive, redeem, refresh, startStack, type Stack } from '../helpers/stack.js';
import { mcpPost, INITIALIZE } from '../helpers/mcp-http.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

describe('AT-22 stale upstream grant', () => {
  it('401 invalid_token at the gateway, invalid_grant at P\'s token endpoint, consent revoked', async () => {
    const { tokens, clientId } = await authorizeClient(stack, new Browser(), { login: 'eve' });
    const [consent] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId);
    expect((await mcpPost(`${stack.app.url}/mcp`, tokens.body.access_token, INITIALIZE)).status).toBe(200);
    await stack.upstream.revokeUser('eve');
    await stack.app.runtime.sql.run('UPDATE upstream_tokens SET expires_at = 1 WHERE grant_id = ?', [consent.grant_id]);
    const before = stack.mcp.received.length;
    const res = await mcpPost(`${stack.app.url}/mcp`, tokens.body.access_token, INITIALIZE);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(stack.mcp.received.length).toBe(before);
    expect(await refresh(stack.app, clientId, tokens.body.refresh_token)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM upstream_tokens WHERE grant_id = ?', consent.grant_id))[0].n).toBe(0);
  });
});

/**
 * The GitHub preset (review 2026-12-07). GitHub answers a refresh token it no longer honours with
 * 200 `{"error":"bad_refresh_token"}`: read as a malformed success, it never ended P's grant — the
 * gateway answered 502 for every request, asking U each time, and P's refresh token kept working.
 * And an OAuth App's token, which never expires and cannot be refreshed, refused by R was handed
 * back as "renewed; retry": the client looped. Now both end P's grant, once U itself says so.
 */
describe('AT-22 stale upstream grant › GitHub', () => {
  const refreshCalls = (s: Stack) => s.upstream.tokenRequests.filter((t) => t.grant_type === 'refresh_token').length;

  describe('a GitHub App (expiring, refreshable user tokens)', () => {
    let gh: Stack;
    beforeAll(async () => {
      gh = await startStack({ upstream: 'github', githubExpiringTokens: true });
    });
    afterAll(() => gh.close());

    it('refreshes an expired GitHub token (rotated) and forwards', async () => {
      const { tokens, clientId } = await authorizeClient(gh, new Browser(), { login: 'mona' });
      const [consent] = await rows(gh.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId);
      await gh.app.runtime.sql.run('UPDATE upstream_tokens SET expires_at = 1 WHERE grant_id = ?', [consent.grant_id]);
      const before = refreshCalls(gh);
      expect((await mcpPost(`${gh.app.url}/mcp`, tokens.body.access_token, INITIALIZE)).status).toBe(200);
      expect(refreshCalls(gh)).toBe(before + 1);
    });

    it("bad_refresh_token (in a 200): 401 invalid_token, P's grant revoked, P's refresh token refused, U asked once", async () => {
      const { tokens, clientId } = await authorizeClient(gh, new Browser(), { login: 'hubot' });
      const sub = gh.upstream.issued.at(-1)?.sub as string;
      const [consent] = await rows(gh.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId);
      await gh.upstream.revokeUser(sub); // the user revoked the app at GitHub: its refresh token is gone too
      await gh.app.runtime.sql.run('UPDATE upstream_tokens SET expires_at = 1 WHERE grant_id = ?', [consent.grant_id]);
      const [before, reached] = [refreshCalls(gh), gh.mcp.received.length];
      const res = await mcpPost(`${gh.app.url}/mcp`, tokens.body.access_token, INITIALIZE);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(refreshCalls(gh)).toBe(before + 1);
      // Revoked: the next request is refused by the token check, without asking U again.
      expect((await mcpPost(`${gh.app.url}/mcp`, tokens.body.access_token, INITIALIZE)).status).toBe(401);
      expect(refreshCalls(gh)).toBe(before + 1);
      expect(gh.mcp.received.length, 'R never reached').toBe(reached);
      expect(await refresh(gh.app, clientId, tokens.body.refresh_token)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
      expect(await rows(gh.app, 'SELECT revoked_reason FROM consents WHERE grant_id = ?', consent.grant_id)).toEqual([{ revoked_reason: 'upstream_invalid_grant' }]);
      expect((await rows(gh.app, 'SELECT count(*) AS n FROM upstream_tokens WHERE grant_id = ?', consent.grant_id))[0].n).toBe(0);
      const failed = (await auditEvents(gh.app)).filter((e) => e.event === 'upstream.refresh_failed').at(-1);
      expect(failed?.reason).toBe('invalid_grant');
      expect(JSON.parse(failed?.details as string)).toMatchObject({ upstream_error: 'bad_refresh_token' });
    });
  });

  describe("an OAuth App (a token that never expires, no refresh token), GitHub's REST API as R", () => {
    let gh: Stack;
    beforeAll(async () => {
      gh = await startStack({ upstream: 'github', githubApiRoute: '/api/gh' });
    });
    afterAll(() => gh.close());

    async function tokenForApi(login: string) {
      const client = await registerClient(gh.app);
      const resource = `${gh.app.url}/api/gh`;
      const auth = buildAuthorization(gh.app, { clientId: client.client_id, resource });
      const { callback } = await drive(new Browser(), auth.url, auth.redirectUri, { login });
      const tokens = await redeem(gh.app, client.client_id, callback.searchParams.get('code') as string, auth.verifier, auth.redirectUri, { resource });
      const [consent] = await rows(gh.app, 'SELECT grant_id FROM consents WHERE client_id = ?', client.client_id);
      return { clientId: client.client_id, tokens: tokens.body, grantId: consent.grant_id as string, sub: gh.upstream.issued.at(-1)?.sub as string };
    }
    const getUser = (token: string) => fetch(`${gh.app.url}/api/gh/user`, { headers: { authorization: `Bearer ${token}` } });

    it("R's 401 confirmed by GitHub's user API: 401 invalid_token (authorize again), P's grant revoked, P's refresh token refused", async () => {
      const { clientId, tokens, grantId, sub } = await tokenForApi('octo-app');
      const ok = await getUser(tokens.access_token);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ login: 'octo-app' });
      await gh.upstream.revokeUser(sub);
      const res = await getUser(tokens.access_token);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('authorize again');
      expect(res.headers.get('www-authenticate')).not.toContain('renewed');
      expect(await refresh(gh.app, clientId, tokens.refresh_token)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
      expect(await rows(gh.app, 'SELECT revoked_reason FROM consents WHERE grant_id = ?', grantId)).toEqual([{ revoked_reason: 'upstream_invalid_grant' }]);
      expect((await getUser(tokens.access_token)).status).toBe(401);
    });
  });
});
