/**
 * A revocation lost to a deadlock (PostgreSQL; review 2026-12-08, after d838982). Every
 * transaction that changes a grant takes its consent's row first, then its upstream token's, and
 * only then deletes its codes and tokens or moves the gateway generation (src/consent/revocation.ts
 * `lockForCascade`; the cascade itself moves the generation before it deletes the grant's rows,
 * safe because nothing holds those rows without the consent's first) — and housekeeping's purge
 * waits for no lock and moves no generation. Before: `/revoke` of an access
 * token deleted it (moving the generation) before taking the consent's row, so it deadlocked with a
 * save of U's refreshed token; the access and refresh token revoked at once (a client signing out)
 * could leave the refresh token's request answered 503 and the grant never revoked (its tokens
 * gone with the access token's, a retry finding nothing to revoke); a replay at /token deleted its
 * refresh token before the consent's row, against a cascade deleting the grant's rows; the purge
 * locked expired rows and then the generation, against a cascade holding the generation. Each
 * case holds one side's first lock on a connection of its own, as the real side would hold it, and
 * asserts both sides commit and the grant ends revoked (or, for the purge, untouched).
 * SQLite has one writer at a time (BEGIN IMMEDIATE): none of this can happen there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../helpers/app.js';
import { Browser, authorizeClient, refresh, startStack, type Stack } from '../helpers/stack.js';
import type { PgSql } from '../../src/db/pg-sql.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { holding as holdingOn, lockWaitSeen } from '../helpers/pg.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

const pool = () => (stack.app.runtime.sql as PgSql).pool;
const holding = (work: Parameters<typeof holdingOn>[1]) => holdingOn(pool(), work);

async function session() {
  const { clientId, tokens } = await authorizeClient(stack, new Browser(), { login: `user-${Math.random().toString(36).slice(2)}` });
  const [consent] = (await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId)) as { grant_id: string }[];
  const grantId = consent!.grant_id;
  const upstreamRefresh = (await stack.app.runtime.stores.upstreamTokens.get(grantId))!.refreshToken as string;
  return { clientId, at: tokens.body.access_token as string, rt: tokens.body.refresh_token as string, grantId, upstreamRefresh };
}

async function revokeAtP(clientId: string, token: string, hint: 'access_token' | 'refresh_token') {
  const res = await fetch(`${stack.app.url}/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, token_type_hint: hint, client_id: clientId }),
  });
  return { status: res.status, body: await res.text() };
}

/** Wait until `n` statements wait for a lock (a bounded poll of pg_stat_activity). */
async function lockWaiters(n: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const { rows: found } = await pool().query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
    if ((found[0] as { n: number }).n >= n) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${n} lock waiters never seen`);
}

async function expectRevoked(grantId: string, upstreamRefresh: string) {
  expect(await rows(stack.app, 'SELECT revoked_reason FROM consents WHERE grant_id = ?', grantId)).toEqual([{ revoked_reason: 'grant_revoked' }]);
  expect(await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', grantId)).toEqual([]);
  expect(await rows(stack.app, 'SELECT model FROM oidc_models WHERE grant_id = ?', grantId)).toEqual([]);
  await stack.app.runtime.revocation.settled();
  expect(await stack.upstream.refreshTokenLive(upstreamRefresh), 'U was asked to revoke the upstream token').toBe(false);
}

describe.skipIf(TEST_ENGINE !== 'postgres')('PostgreSQL: one lock order for everything that touches a grant', () => {
  it("/revoke of an access token while a save of U's refreshed token holds the token's row: both commit; the consent and upstream token stay", async () => {
    const { clientId, at, grantId, upstreamRefresh } = await session();
    let answer!: Promise<{ status: number; body: string }>;
    const save = await holding(async (holder) => {
      await holder.query('SELECT grant_id FROM upstream_tokens WHERE grant_id = $1 FOR UPDATE', [grantId]); // the save's first step (its UPDATE: the row, then the generation)
      answer = revokeAtP(clientId, at, 'access_token');
      expect(await lockWaitSeen(pool()), '/revoke waits for the token row').toBe(true);
      await holder.query('UPDATE upstream_tokens SET updated_at = updated_at + 1 WHERE grant_id = $1', [grantId]);
    });
    expect(save).toEqual({});
    expect(await answer).toEqual({ status: 200, body: '' });
    // Revoking an access token ends the grant's tokens at P (oidc-provider), not the consent.
    expect(await rows(stack.app, 'SELECT model FROM oidc_models WHERE grant_id = ?', grantId)).toEqual([]);
    expect(await rows(stack.app, 'SELECT revoked_at FROM consents WHERE grant_id = ?', grantId)).toEqual([{ revoked_at: null }]);
    expect(await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', grantId)).toEqual([{ grant_id: grantId }]);
    expect(await stack.upstream.refreshTokenLive(upstreamRefresh)).toBe(true);
  });

  for (const first of ['access_token', 'refresh_token'] as const) {
    it(`the access and the refresh token revoked at /revoke at once (${first} first): both 200, the grant revoked, U asked`, async () => {
      const { clientId, at, rt, grantId, upstreamRefresh } = await session();
      const second = first === 'access_token' ? 'refresh_token' : 'access_token';
      const token = { access_token: at, refresh_token: rt };
      const answers: Partial<Record<'access_token' | 'refresh_token', Promise<{ status: number; body: string }>>> = {};
      const held = await holding(async (holder) => {
        await holder.query('SELECT id FROM consents WHERE grant_id = $1 FOR UPDATE', [grantId]); // a cascade of the grant under way elsewhere
        answers[first] = revokeAtP(clientId, token[first], first);
        await lockWaiters(1);
        answers[second] = revokeAtP(clientId, token[second], second);
        await lockWaiters(2);
      });
      expect(held).toEqual({});
      expect(await answers.access_token).toEqual({ status: 200, body: '' });
      expect(await answers.refresh_token).toEqual({ status: 200, body: '' });
      await expectRevoked(grantId, upstreamRefresh);
    });
  }

  it('a refresh-token replay at /token while a cascade holds the consent and then deletes the grant: both commit, the replay refused, the grant revoked', async () => {
    const { clientId, rt, grantId, upstreamRefresh } = await session();
    expect((await refresh(stack.app, clientId, rt)).status).toBe(200);
    let replay!: ReturnType<typeof refresh>;
    const cascade = await holding(async (holder) => {
      await holder.query('SELECT id FROM consents WHERE grant_id = $1 FOR UPDATE', [grantId]);
      replay = refresh(stack.app, clientId, rt);
      expect(await lockWaitSeen(pool()), 'the replay waits for the consent row').toBe(true);
      await holder.query('DELETE FROM oidc_models WHERE grant_id = $1', [grantId]); // the cascade's delete of the grant's tokens: the replay holds none of them
    });
    expect(cascade).toEqual({});
    expect(await replay).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    await expectRevoked(grantId, upstreamRefresh);
  });

  describe("housekeeping's purge of expired rows waits for no lock", () => {
    async function expiredRowOf(grantId: string): Promise<string> {
      const key = `expired-${grantId}`;
      await stack.app.runtime.sql.run("INSERT INTO oidc_models (model, key, payload, grant_id, expires_at) VALUES ('AccessToken', ?, '{}', ?, ?)", [key, grantId, Date.now() - 60_000]);
      return key;
    }
    const purgeOrWait = async () => {
      const purge = stack.app.runtime.stores.models.purgeExpired();
      return Promise.race([purge.then((n) => ({ purged: n })), lockWaitSeen(pool()).then((waiting) => ({ waiting }))]);
    };

    it('while a cascade holds the gateway generation and goes on to delete the expired row: the purge commits at once, so does the cascade', async () => {
      const { grantId } = await session();
      const key = await expiredRowOf(grantId);
      let outcome: Awaited<ReturnType<typeof purgeOrWait>> | undefined;
      const cascade = await holding(async (holder) => {
        await holder.query('UPDATE gateway_generation SET n = n + 1 WHERE id = 1');
        outcome = await purgeOrWait();
        await holder.query('DELETE FROM oidc_models WHERE grant_id = $1', [grantId]);
      });
      expect(outcome, 'the purge did not wait for the generation (before: it did, and deadlocked with the delete)').toMatchObject({ purged: expect.any(Number) });
      expect((outcome as { purged: number }).purged).toBeGreaterThanOrEqual(1);
      expect(cascade).toEqual({});
      expect(await rows(stack.app, 'SELECT key FROM oidc_models WHERE key = ?', key)).toEqual([]);
    });

    it('an expired row another transaction holds is skipped, not waited for, and purged by the next run', async () => {
      const { grantId } = await session();
      const key = await expiredRowOf(grantId);
      let outcome: Awaited<ReturnType<typeof purgeOrWait>> | undefined;
      const held = await holding(async (holder) => {
        await holder.query('SELECT key FROM oidc_models WHERE key = $1 FOR UPDATE', [key]);
        outcome = await purgeOrWait();
      });
      expect(held).toEqual({});
      expect(outcome).toMatchObject({ purged: expect.any(Number) });
      expect(await rows(stack.app, 'SELECT key FROM oidc_models WHERE key = ?', key)).toEqual([{ key }]);
      await stack.app.runtime.stores.models.purgeExpired();
      expect(await rows(stack.app, 'SELECT key FROM oidc_models WHERE key = ?', key)).toEqual([]);
    });
  });
});
