/**
 * A consent that expires unrevoked leaves nothing live behind (CONS-13, UP-08; review 2026-12-07):
 * housekeeping deletes its grant's tokens and the upstream token P kept for it, asks U to revoke
 * that token, and audits `consent.expired`. Before, the sealed upstream token stayed in
 * upstream_tokens and live at U for ever, and the user could no longer revoke the consent on
 * /account (an expired consent is not listed there). The consent row stays, expired (history); a
 * consent still active, or revoked meanwhile, is left alone.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditEvents, rows } from '../helpers/app.js';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { runMaintenance } from '../../src/runtime/maintenance.js';
import { maintenanceDeps } from '../../src/runtime/server.js';
import { consentStatus } from '../../src/consent/status.js';
import type { PgSql } from '../../src/db/pg-sql.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { lockWaitSeen } from '../helpers/pg.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ env: { CONSENT_TTL: '1d' } });
});
afterAll(() => stack.close());

const housekeeping = () => runMaintenance(maintenanceDeps(stack.app.runtime, stack.app.runtime.gateway));
const consentOf = async (clientId: string) => (await rows(stack.app, 'SELECT id, grant_id, revoked_at, expires_at FROM consents WHERE client_id = ?', clientId))[0];
const upstreamRows = async (grantId: string) => (await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', grantId)).length;
const grantTokens = async (grantId: string) => (await rows(stack.app, "SELECT key FROM oidc_models WHERE grant_id = ? AND model IN ('AccessToken', 'RefreshToken')", grantId)).length;

describe('an expired consent at housekeeping', () => {
  it("ends its grant's tokens and its upstream token, U asked to revoke it; the consent stays, expired", async () => {
    const expiring = await authorizeClient(stack, new Browser('exp'), { login: 'ella' });
    const live = await authorizeClient(stack, new Browser('live'), { login: 'lou' });
    const consent = await consentOf(expiring.clientId);
    const other = await consentOf(live.clientId);
    expect(await upstreamRows(consent.grant_id)).toBe(1);
    expect(await grantTokens(consent.grant_id)).toBeGreaterThan(0);
    // Lou's consent is a day newer: only Ella's has expired at the time housekeeping runs.
    await stack.app.runtime.sql.run('UPDATE consents SET expires_at = expires_at + 86400000 WHERE id = ?', [other.id]);
    const revokedBefore = stack.upstream.revokedTokens.length;
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(consent.expires_at + 1000);
      await housekeeping();
      await stack.app.runtime.revocation.settled();
      // Ended: P's tokens for the grant, the kept upstream token; U asked to revoke it.
      expect(await upstreamRows(consent.grant_id)).toBe(0);
      expect(await grantTokens(consent.grant_id)).toBe(0);
      expect(stack.upstream.revokedTokens.length).toBe(revokedBefore + 1);
      // Not a decision of the consent page (mcp_proxy_consent_decisions_total's decisions).
      expect(await (await fetch(`${stack.app.url}/metrics`)).text()).not.toContain('decision="expired"');
      const after = await consentOf(expiring.clientId);
      expect(consentStatus(after, Date.now()), 'the consent stays, expired (history)').toBe('expired');
      const row = (await auditEvents(stack.app)).filter((e) => e.event === 'consent.expired');
      expect(row).toHaveLength(1);
      expect(row[0]).toMatchObject({ subject: 'ella', client_id: expiring.clientId });
      expect(JSON.parse(row[0]!.details as string)).toMatchObject({ grant_id: consent.grant_id, consent_id: consent.id });
      // The active one is untouched.
      expect(await upstreamRows(other.grant_id)).toBe(1);
      // A second run finds nothing more to do: U is not asked again.
      await housekeeping();
      await stack.app.runtime.revocation.settled();
      expect(stack.upstream.revokedTokens.length).toBe(revokedBefore + 1);
      expect((await auditEvents(stack.app)).filter((e) => e.event === 'consent.expired')).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a consent revoked meanwhile is not ended again (its cascade did it)', async () => {
    const { clientId } = await authorizeClient(stack, new Browser('rev'), { login: 'rita' });
    const consent = await consentOf(clientId);
    expect(await stack.app.runtime.revocation.endExpired(consent.grant_id, consent.expires_at - 1000), 'not expired yet').toBe(false);
    expect(await upstreamRows(consent.grant_id)).toBe(1);
    await stack.app.runtime.revocation.revokeGrant(consent.grant_id, 'user');
    expect(await stack.app.runtime.revocation.endExpired(consent.grant_id, consent.expires_at + 1000)).toBe(false);
  });

  it.skipIf(TEST_ENGINE !== 'postgres')('PostgreSQL: a cascade holding the consent row is waited for, and its revocation found then (one lock order: the consent row first)', async () => {
    const { clientId } = await authorizeClient(stack, new Browser('lock'), { login: 'lena' });
    const consent = await consentOf(clientId);
    const sql = stack.app.runtime.sql as PgSql;
    const holder = await sql.pool.connect();
    try {
      await holder.query('BEGIN');
      // A cascade's first step (ConsentStore.revoke): the consent row, then (its trigger) the generation row.
      await holder.query('UPDATE consents SET revoked_at = $1, revoked_reason = $2 WHERE grant_id = $3', [Date.now(), 'user', consent.grant_id]);
      const ending = stack.app.runtime.revocation.endExpired(consent.grant_id, consent.expires_at + 1000);
      expect(await lockWaitSeen(sql.pool)).toBe(true);
      await holder.query('COMMIT');
      expect(await ending, 'found revoked: nothing ended twice').toBe(false);
    } finally {
      holder.release();
    }
    expect(await upstreamRows(consent.grant_id), 'left to the cascade').toBe(1);
  });
});
