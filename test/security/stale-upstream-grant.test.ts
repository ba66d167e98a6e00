/**
 * AT-22 stale upstream grant (UP-08, GW-14, RT-05): once U no longer honours the user's
 * upstream grant, P's access token stops working at the gateway and P's refresh token fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../helpers/app.js';
import { Browser, authorizeClient, refresh, startStack, type Stack } from '../helpers/stack.js';
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
