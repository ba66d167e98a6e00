/**
 * AT-16 refresh-token theft (RT-01..04): rotation on every use; a reused (rotated) refresh token
 * revokes the whole grant — P's tokens, the consent and the stored upstream token — whoever
 * refreshes first; a refresh cannot widen scope, change resource or change client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { Browser, authorizeClient, refresh, startStack, type Stack } from '../helpers/stack.js';
import { sha256 } from '../../src/crypto/keys.js';
import type { PgSql } from '../../src/db/pg-sql.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { holding, lockWaitSeen } from '../helpers/pg.js';

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

  it("case (a): the client refreshed first; the thief's old token revokes the grant", async () => {
    const { clientId, rt1, grantId } = await session();
    const legit = await refresh(stack.app, clientId, rt1);
    const thief = await refresh(stack.app, clientId, rt1);
    expect(thief).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await refresh(stack.app, clientId, legit.body.refresh_token)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(legit.body.access_token))).toBeUndefined();
    await expectGrantRevoked(grantId);
  });

  it("case (b): the thief refreshed first; the client's old token revokes the grant", async () => {
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

  /** The client revoking its refresh token at /revoke (RFC 7009): the grant goes with it, as after a replay. */
  async function revokeAtP(clientId: string, token: string) {
    const res = await fetch(`${stack.app.url}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, token_type_hint: 'refresh_token', client_id: clientId }),
    });
    return { status: res.status, body: await res.text() };
  }

  /**
   * PostgreSQL: a grant's revocation by oidc-provider under way while a save of U's refreshed token
   * for the same grant is (UpstreamTokenStore.replace: the token's row, then — its trigger — the
   * gateway generation's row; held here on a connection of its own between those two steps).
   * oidc-provider deletes the grant's tokens before P's cascade runs, and deleting an access token
   * moves the generation: the replay held the generation and waited for the token's row, the save
   * held the token's row and waited for the generation — a deadlock (40P01) PostgreSQL ended by
   * aborting the replay's transaction: 503, the grant not revoked (the "left, known" item of the
   * notes of 2026-12-08, reproduced). The adapter now takes the cascade's rows first (consent,
   * upstream token), in the cascade's order (Revocation.lockForCascade).
   */
  it.skipIf(TEST_ENGINE !== 'postgres').each([
    ['a replay of the rotated refresh token at /token', 'replay'],
    ['the client revoking its refresh token at /revoke', 'revoke'],
  ] as const)("PostgreSQL: a save of U's refreshed token under way during %s: no deadlock, the grant is revoked", async (_label, how) => {
    const { clientId, rt1, grantId } = await session();
    const upstreamRefresh = (await stack.app.runtime.stores.upstreamTokens.get(grantId))!.refreshToken as string;
    const rotated = await refresh(stack.app, clientId, rt1);
    expect(rotated.status).toBe(200);
    const sql = stack.app.runtime.sql as PgSql;
    let revoking!: Promise<{ status: number }>;
    const save = await holding(sql.pool, async (holder) => {
      await holder.query('SELECT grant_id FROM upstream_tokens WHERE grant_id = $1 FOR UPDATE', [grantId]);
      revoking = how === 'replay' ? refresh(stack.app, clientId, rt1) : revokeAtP(clientId, rotated.body.refresh_token as string);
      expect(await lockWaitSeen(sql.pool), 'it waits for the token row').toBe(true);
      await holder.query('UPDATE upstream_tokens SET updated_at = updated_at + 1 WHERE grant_id = $1', [grantId]);
    });
    expect(save, 'the save commits').toEqual({});
    if (how === 'replay') expect(await revoking).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    else expect(await revoking).toEqual({ status: 200, body: '' });
    await expectGrantRevoked(grantId);
    await stack.app.runtime.revocation.settled();
    expect(await stack.upstream.refreshTokenLive(upstreamRefresh), 'U was asked to revoke the token').toBe(false);
  });
});
