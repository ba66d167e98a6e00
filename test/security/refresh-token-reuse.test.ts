/**
 * AT-16 refresh-token theft (RT-01..04): rotation on every use; a reused (rotated) refresh token
 * revokes the whole grant — P's tokens, the consent and the stored upstream token — whoever
 * refreshes first; a refresh cannot widen scope, change resource or change client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { Browser, authorizeClient, refresh, startStack, type Stack } from '../helpers/stack.js';
import { sha256 } from '../../src/crypto/keys.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

async function session() {
  const { clientId, tokens } = await authorizeClient(stack, new Browser(), { login: `user-${Math.random().toString(36).slice(2)}` });
  const [consent] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId);
  return { clientId, rt1: tokens.body.refresh_token as string, grantId: consent.grant_id as string };
}

async function expectGrantRevoked(grantId: string) {
  expect(await rows(stack.app, 'SELECT revoked_reason FROM consents WHERE grant_id = ?', grantId)).toEqual([{ revoked_reason: 'grant_revoked' }]);
  expect((await rows(stack.app, 'SELECT count(*) AS n FROM upstream_tokens WHERE grant_id = ?', grantId))[0].n).toBe(0);
  expect((await rows(stack.app, 'SELECT count(*) AS n FROM oidc_models WHERE grant_id = ?', grantId))[0].n).toBe(0);
  expect((await auditEvents(stack.app)).some((e) => e.event === 'grant.revoked' && e.details?.includes(grantId))).toBe(true);
}

describe('AT-16 refresh-token reuse', () => {
  it('rotates on every use (RT-01)', async () => {
    const { clientId, rt1 } = await session();
    const second = await refresh(stack.app, clientId, rt1);
    expect(second.status).toBe(200);
    expect(second.body.refresh_token).not.toBe(rt1);
  });

  it('case (a): the client refreshed first; the thief\'s old token revokes the grant', async () => {
    const { clientId, rt1, grantId } = await session();
    const legit = await refresh(stack.app, clientId, rt1);
    const thief = await refresh(stack.app, clientId, rt1);
    expect(thief).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await refresh(stack.app, clientId, legit.body.refresh_token)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(legit.body.access_token))).toBeUndefined();
    await expectGrantRevoked(grantId);
  });

  it('case (b): the thief refreshed first; the client\'s old token revokes the grant', async () => {
    const { clientId, rt1, grantId } = await session();
    const thief = await refresh(stack.app, clientId, rt1);
    expect(thief.status).toBe(200);
    expect(await refresh(stack.app, clientId, rt1)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await refresh(stack.app, clientId, thief.body.refresh_token)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    await expectGrantRevoked(grantId);
  });

  it.each([
    ['wider scope', (_c: string) => ({ scope: 'mcp:tools openid' }), 'invalid_scope'],
    ['another resource', (_c: string) => ({ resource: 'https://other.example/mcp' }), 'invalid_target'],
  ])('refuses %s (RT-04)', async (_label, extra, error) => {
    const { clientId, rt1 } = await session();
    expect(await refresh(stack.app, clientId, rt1, extra(clientId))).toMatchObject({ status: 400, body: { error } });
    expect((await refresh(stack.app, clientId, rt1)).status).toBe(200); // the refusal did not burn the token
  });

  it('refuses another client (RT-03)', async () => {
    const { clientId, rt1 } = await session();
    const other = await registerClient(stack.app);
    expect(await refresh(stack.app, other.client_id, rt1)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect((await refresh(stack.app, clientId, rt1)).status).toBe(200);
  });
});
