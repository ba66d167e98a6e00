/**
 * An upstream token P let go of does not stay live at U because U could not be asked once (UP-08,
 * RFC 7009; the "left, known" item of the notes of 2026-12-06/07: a failed revocation at U was
 * logged and forgotten). A revocation cascade moves the sealed token to upstream_revocations in its
 * own transaction; U is asked after the commit, and housekeeping asks again — after 10 minutes,
 * doubling to 6 hours — until U answers, for a week at most (then `upstream.revocation_abandoned`).
 * Also: a cascade committed whose process never asked U (it died; its COMMIT's answer was lost) is
 * asked for by housekeeping; an expired access token with no refresh token is dropped unasked.
 * Every assertion of a request to U is paired with the token's state at U (its refresh token read
 * from U's own store).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditEvents, rows } from '../helpers/app.js';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { runMaintenance } from '../../src/runtime/maintenance.js';
import { maintenanceDeps } from '../../src/runtime/server.js';
import { GIVE_UP_MS, RETRY_FIRST_MS } from '../../src/consent/upstream-revocations.js';
import type { PgSql } from '../../src/db/pg-sql.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { lockWaitSeen } from '../helpers/pg.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

const runtime = () => stack.app.runtime;
const housekeeping = async () => {
  await runMaintenance(maintenanceDeps(runtime(), runtime().gateway));
  await runtime().revocation.settled();
};
/** U's own state of the refresh token P held (revoking it ends the upstream grant, RFC 7009 §2.1). */
const liveAtU = (tokens: { refreshToken?: string | undefined }) => stack.upstream.refreshTokenLive(tokens.refreshToken as string);
const pending = (grantId: string) =>
  rows(stack.app, 'SELECT attempts, next_at, created_at, last_error, sealed_access, sealed_refresh FROM upstream_revocations WHERE grant_id = ?', grantId) as Promise<
    { attempts: number; next_at: number; created_at: number; last_error: string | null; sealed_access: string; sealed_refresh: string | null }[]
  >;
/** `mcp_proxy_upstream_revocations_pending` at /metrics. */
const pendingMetric = async () => Number(/^mcp_proxy_upstream_revocations_pending (\d+)$/m.exec(await (await fetch(`${stack.app.url}/metrics`)).text())?.[1]);
const revokedAudit = async (grantId: string) => (await auditEvents(stack.app)).filter((e) => e.event === 'upstream.token_revoked' && String(e.details).includes(grantId));

/** `body(start)` with U's revocation endpoint answering `status` and the Date clock faked from `start`; both put back after. */
async function withRevocationFault(status: number, body: (start: number) => Promise<void>): Promise<void> {
  stack.upstream.setRevocationFault(status);
  const start = Date.now();
  vi.useFakeTimers({ toFake: ['Date'], now: start });
  try {
    await body(start);
  } finally {
    vi.useRealTimers();
    stack.upstream.setRevocationFault(undefined);
  }
}

async function authorized(login: string) {
  const { clientId } = await authorizeClient(stack, new Browser(login), { login });
  const [consent] = (await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId)) as { grant_id: string }[];
  const grantId = consent!.grant_id;
  const tokens = (await runtime().stores.upstreamTokens.get(grantId))!;
  expect(await liveAtU(tokens)).toBe(true);
  return { clientId, grantId, tokens };
}

describe('revocation at U, asked until U answers', () => {
  it('U failing at the revocation: the token stays pending (sealed), is asked for again at housekeeping once due, and is revoked at U then', async () => {
    const { grantId, tokens } = await authorized('ulla');
    const asked = stack.upstream.revokedTokens.length;
    await withRevocationFault(503, async (start) => {
      await runtime().revocation.revokeGrant(grantId, 'user');
      await runtime().revocation.settled();
      // U was asked once, refused; its token is live; P keeps it sealed, nothing audited as revoked.
      expect(stack.upstream.revokedTokens.slice(asked)).toEqual([tokens.refreshToken]);
      expect(await liveAtU(tokens)).toBe(true);
      expect(await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', grantId)).toEqual([]);
      const [row] = await pending(grantId);
      expect(row).toMatchObject({ attempts: 1, next_at: start + RETRY_FIRST_MS });
      expect(row!.last_error).toMatch(/503|temporarily_unavailable/);
      expect(JSON.stringify(await rows(stack.app, 'SELECT * FROM upstream_revocations'))).not.toContain(tokens.accessToken);
      expect(JSON.stringify(await rows(stack.app, 'SELECT * FROM upstream_revocations'))).not.toContain(tokens.refreshToken);
      expect(await revokedAudit(grantId)).toEqual([]);
      expect(await pendingMetric()).toBe(1);

      // U works again, but the row is not due yet: housekeeping does not ask.
      stack.upstream.setRevocationFault(undefined);
      vi.setSystemTime(start + RETRY_FIRST_MS - 1000);
      await housekeeping();
      expect(stack.upstream.revokedTokens.length).toBe(asked + 1);
      expect(await liveAtU(tokens)).toBe(true);

      // Due: asked, revoked at U, the row gone, audited with its attempt.
      vi.setSystemTime(start + RETRY_FIRST_MS);
      await housekeeping();
      expect(stack.upstream.revokedTokens.slice(asked)).toEqual([tokens.refreshToken, tokens.refreshToken]);
      expect(await liveAtU(tokens)).toBe(false);
      expect(await pending(grantId)).toEqual([]);
      const audited = await revokedAudit(grantId);
      expect(audited).toHaveLength(1);
      expect(JSON.parse(audited[0]!.details as string)).toMatchObject({ grant_id: grantId, attempt: 2 });
      expect(await pendingMetric()).toBe(0);

      // Nothing left: the next run asks U nothing.
      vi.setSystemTime(start + 10 * RETRY_FIRST_MS);
      await housekeeping();
      expect(stack.upstream.revokedTokens.length).toBe(asked + 2);
    });
  });

  it('U failing for a week: each retry waits twice as long; then the row goes with `upstream.revocation_abandoned` and an error logged', async () => {
    const { grantId, tokens } = await authorized('ursula');
    const asked = stack.upstream.revokedTokens.length;
    await withRevocationFault(500, async (start) => {
      await runtime().revocation.revokeGrant(grantId, 'admin');
      await runtime().revocation.settled();
      vi.setSystemTime(start + RETRY_FIRST_MS);
      await housekeeping();
      expect(await pending(grantId)).toMatchObject([{ attempts: 2, next_at: start + 3 * RETRY_FIRST_MS }]);
      const linesBefore = stack.app.logLines.length;
      vi.setSystemTime(start + GIVE_UP_MS);
      await housekeeping();
      expect(stack.upstream.revokedTokens.slice(asked)).toEqual([tokens.refreshToken, tokens.refreshToken, tokens.refreshToken]);
      expect(await pending(grantId)).toEqual([]);
      const abandoned = (await auditEvents(stack.app)).filter((e) => e.event === 'upstream.revocation_abandoned');
      expect(abandoned).toHaveLength(1);
      expect(abandoned[0]).toMatchObject({ subject: 'ursula' });
      expect(await rows(stack.app, "SELECT outcome FROM audit_log WHERE event = 'upstream.revocation_abandoned'")).toEqual([{ outcome: 'error' }]);
      expect(JSON.parse(abandoned[0]!.details as string)).toMatchObject({ grant_id: grantId, attempts: 3 });
      const errors = stack.app.logLines.slice(linesBefore).filter((l) => /"level":50/.test(l));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(grantId);
      expect(errors[0]).not.toContain(tokens.refreshToken);
      expect(await revokedAudit(grantId)).toEqual([]);
    });
  });

  it('a cascade committed whose process never asked U (it died after the commit): housekeeping asks', async () => {
    const { grantId, tokens } = await authorized('uma');
    const asked = stack.upstream.revokedTokens.length;
    // The cascade's transaction alone, no after-commit step: what a process that died leaves.
    await runtime().stores.transaction(() => runtime().revocation.revokeInTransaction(grantId, 'admin'));
    expect(stack.upstream.revokedTokens.length).toBe(asked);
    expect(await pending(grantId)).toMatchObject([{ attempts: 0 }]);
    await housekeeping();
    expect(stack.upstream.revokedTokens.slice(asked)).toEqual([tokens.refreshToken]);
    expect(await liveAtU(tokens)).toBe(false);
    expect(await pending(grantId)).toEqual([]);
    expect(await revokedAudit(grantId)).toHaveLength(1);
  });

  it('a cascade that rolled back leaves nothing to send: U is not asked, the upstream token stays', async () => {
    const { grantId, tokens } = await authorized('ute');
    const asked = stack.upstream.revokedTokens.length;
    await expect(
      runtime().stores.transaction(async () => {
        await runtime().revocation.revokeInTransaction(grantId, 'admin');
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    await housekeeping();
    expect(stack.upstream.revokedTokens.length).toBe(asked);
    expect(await pending(grantId)).toEqual([]);
    expect((await runtime().stores.upstreamTokens.get(grantId))?.accessToken).toBe(tokens.accessToken);
    expect(await liveAtU(tokens)).toBe(true);
  });

  it('a refreshed token P never stored (its grant revoked meanwhile): asked at once; U failing, kept sealed and asked again once due', async () => {
    const asked = stack.upstream.revokedTokens.length;
    await withRevocationFault(502, async (start) => {
      runtime().revocation.revokeUnkept('grant-unkept', { accessToken: 'held-at', refreshToken: 'held-rt', expiresAt: start + 3_600_000 }, 'client-x', 'hal');
      await runtime().revocation.settled();
      expect(stack.upstream.revokedTokens.slice(asked)).toEqual(['held-rt']);
      expect(await pending('grant-unkept')).toMatchObject([{ attempts: 1, next_at: start + RETRY_FIRST_MS }]);
      expect(JSON.stringify(await pending('grant-unkept'))).not.toContain('held-rt');
      stack.upstream.setRevocationFault(undefined);
      vi.setSystemTime(start + RETRY_FIRST_MS);
      await housekeeping();
      expect(stack.upstream.revokedTokens.slice(asked)).toEqual(['held-rt', 'held-rt']);
      expect(await pending('grant-unkept')).toEqual([]);
    });
  });

  /**
   * PostgreSQL: a save of U's refreshed token (UpstreamTokenStore.replace: the token's row, then —
   * its trigger — the gateway generation's row) under way while the grant's cascade runs, held
   * here on a connection of its own between those two steps. The cascade takes the consent's row,
   * then waits for the token's row, and moves the newer token once the save commits. Review
   * 2026-12-08: the cascade moved the generation first (its consent's update) and then waited for
   * the token's row, the save waiting for the generation: a deadlock (40P01); and housekeeping's end
   * of an expired consent copied the old token and deleted the new one, U never asked for it.
   */
  for (const via of ['a revocation cascade', "housekeeping's end of an expired consent"] as const) {
    it.skipIf(TEST_ENGINE !== 'postgres')(`PostgreSQL: a save of U's refreshed token under way during ${via}: no deadlock, the newer token is the one kept for U`, async () => {
      const { grantId } = await authorized(via === 'a revocation cascade' ? 'uwe' : 'uli');
      const sql = runtime().sql as PgSql;
      const holder = await sql.pool.connect();
      let ending: Promise<unknown>;
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT grant_id FROM upstream_tokens WHERE grant_id = $1 FOR UPDATE', [grantId]);
        if (via === 'a revocation cascade') ending = runtime().stores.transaction(() => runtime().revocation.revokeInTransaction(grantId, 'admin'));
        else {
          const [consent] = (await rows(stack.app, 'SELECT expires_at FROM consents WHERE grant_id = ?', grantId)) as { expires_at: number }[];
          ending = runtime().revocation.endExpired(grantId, consent!.expires_at + 1000);
        }
        expect(await lockWaitSeen(sql.pool), 'it waits for the token row').toBe(true);
        await holder.query("UPDATE upstream_tokens SET sealed_access = 'newer-sealed', updated_at = updated_at + 1 WHERE grant_id = $1", [grantId]);
        await holder.query('COMMIT');
        await ending;
      } finally {
        holder.release();
      }
      expect((await pending(grantId)).map((r) => r.sealed_access)).toEqual(['newer-sealed']);
      expect(await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', grantId)).toEqual([]);
      await runtime().sql.run('DELETE FROM upstream_revocations WHERE grant_id = ?', [grantId]); // it does not open: not for U
    });
  }

  it('the pending gauge says NaN, not a count, while the table cannot be read; /metrics still answers', async () => {
    const store = runtime().stores.upstreamRevocations;
    const count = store.count;
    store.count = () => Promise.reject(new Error('permission denied for table upstream_revocations'));
    try {
      const text = await (await fetch(`${stack.app.url}/metrics`)).text();
      expect(text).toMatch(/^mcp_proxy_upstream_revocations_pending NaN$/im); // prom-client prints "Nan"; Prometheus reads NaN in any case
      expect(text).toContain('mcp_proxy_http_requests_total');
    } finally {
      store.count = count;
    }
    expect(await pendingMetric()).toBe(0);
  });

  it('an expired access token with no refresh token is dead at U already: dropped without asking', async () => {
    const asked = stack.upstream.revokedTokens.length;
    const now = Date.now();
    await runtime().stores.upstreamRevocations.add('grant-gone', { subject: 'nobody' }, { accessToken: 'expired-at', expiresAt: now - 1 }, now - 1000, now - 1, 'U unreachable');
    expect(await pending('grant-gone')).toHaveLength(1);
    await housekeeping();
    expect(stack.upstream.revokedTokens.length).toBe(asked);
    expect(await pending('grant-gone')).toEqual([]);
  });
});
