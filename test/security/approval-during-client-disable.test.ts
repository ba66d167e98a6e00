/**
 * An approval whose user is still at U when an admin disables or deletes the client (review
 * 2026-12-07; src/consent/record.ts `clientStanding`, src/consent/operations.ts `deleteClient`).
 * Before: the callback recorded the consent anyway — the disabling's cascade had already run and
 * found nothing — so it stayed active: the client got no code then, but once re-enabled the same
 * browser's next /authorize skipped the consent page; U's token for it was never revoked (UP-08).
 * Now the approval's transaction reads the client's row (locked on PostgreSQL): disabled or gone
 * → nothing recorded, a 403 page, no code, U's fresh token dropped (kept nowhere). And a
 * deletion whose cascade an approval slipped past revokes that consent before the client goes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { Browser, buildAuthorization, CLIENT_REDIRECT, drive, startStack, type Stack, approveAndStopAtU as approveAtU } from '../helpers/stack.js';
import type { Page } from '../helpers/browser.js';
import type { PgSql } from '../../src/db/pg-sql.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { lockWaitSeen } from '../helpers/pg.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

const admin = { actor: 'admin' as const, subject: 'admin-1' };

const approveAndStopAtU = (browser: Browser, clientId: string, login: string) => approveAtU(stack.app, browser, clientId, login);

const consentsOf = (clientId: string) => rows(stack.app, 'SELECT revoked_reason FROM consents WHERE client_id = ?', clientId);

describe('an approval in flight while the client is disabled or deleted', () => {
  it("disabled: nothing recorded, 403, no code, U's fresh token dropped; re-enabled, the next authorization asks again", async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const browser = new Browser('disable-race');
    const { callback } = await approveAndStopAtU(browser, clientId, 'dana');
    await stack.app.runtime.ops.disableClient(clientId, admin);
    const revocationsAtU = stack.upstream.revocations.length;
    const page = await browser.navigate(callback, { initiator: stack.upstream.issuer, stopAt: (u) => u.startsWith(CLIENT_REDIRECT) });
    expect(page.status).toBe(403);
    expect(page.hops.filter((h) => h.location)).toEqual([]);
    expect(page.html).toContain('disabled or removed');
    expect(await consentsOf(clientId), 'no consent row').toEqual([]);
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM upstream_tokens WHERE subject = ?', 'dana'))[0].n).toBe(0);
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations.length, "U's fresh token dropped, not revoked (SECURITY.md: revoking it could end the user's other connections)").toBe(revocationsAtU);
    expect((await auditEvents(stack.app)).filter((e) => e.client_id === clientId && e.event === 'consent.rejected').map((e) => e.reason)).toEqual(['client_disabled']);

    await stack.app.runtime.ops.enableClient(clientId, admin);
    const again = await drive(browser, buildAuthorization(stack.app, { clientId }).url, CLIENT_REDIRECT, { login: 'dana' });
    expect(again.seen[0], 'the consent page is shown, not skipped').toBe('consent');
  });

  it('deleted: nothing recorded, 403, no code', async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const browser = new Browser('delete-race');
    const { callback } = await approveAndStopAtU(browser, clientId, 'dave');
    await stack.app.runtime.ops.deleteClient(clientId, admin);
    const page = await browser.navigate(callback, { initiator: stack.upstream.issuer, stopAt: (u) => u.startsWith(CLIENT_REDIRECT) });
    expect(page.status).toBe(403);
    expect(page.hops.filter((h) => h.location)).toEqual([]);
    expect(await consentsOf(clientId)).toEqual([]);
    expect((await auditEvents(stack.app)).filter((e) => e.client_id === clientId && e.event === 'consent.rejected').map((e) => e.reason)).toEqual(['client_gone']);
  });

  it("deleted while an approval commits between the deletion's cascade and its removal: that consent is revoked too, then the client goes", async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const browser = new Browser('delete-late');
    const { callback, verifier } = await approveAndStopAtU(browser, clientId, 'dora');
    const revocation = stack.app.runtime.revocation;
    const revokeClient = revocation.revokeClient.bind(revocation);
    let landed: Page | undefined;
    revocation.revokeClient = async (...args) => {
      const n = await revokeClient(...args);
      // The user comes back from U right after the cascade listed (and found no) consents.
      landed ??= await browser.navigate(callback, { initiator: stack.upstream.issuer, stopAt: (u) => u.startsWith(CLIENT_REDIRECT) });
      return n;
    };
    try {
      expect(await stack.app.runtime.ops.deleteClient(clientId, admin)).toEqual({ revokedConsents: 1 });
    } finally {
      revocation.revokeClient = revokeClient;
    }
    // The approval itself went through (the client still existed): a code reached the client, worthless now.
    const code = new URL(landed?.url as string).searchParams.get('code');
    expect(code).toBeTruthy();
    const redeemed = await fetch(`${stack.app.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: code as string, code_verifier: verifier, client_id: clientId, redirect_uri: CLIENT_REDIRECT }),
    });
    expect([400, 401]).toContain(redeemed.status);
    expect(((await redeemed.json()) as { error: string }).error).toMatch(/^invalid_(client|grant)$/);
    expect(await consentsOf(clientId)).toEqual([{ revoked_reason: 'client_deleted' }]);
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM upstream_tokens WHERE subject = ?', 'dora'))[0].n).toBe(0);
    expect(await rows(stack.app, 'SELECT client_id FROM clients_meta WHERE client_id = ?', clientId)).toEqual([]);
    expect(await stack.app.runtime.stores.models.getClient(clientId)).toBeUndefined();
    const deleted = (await auditEvents(stack.app)).filter((e) => e.client_id === clientId && e.event === 'admin.client_deleted');
    expect(deleted.map((e) => JSON.parse(e.details as string).revoked_consents)).toEqual([1]);
  });

  it("the interaction gone by the time the user is back from U: 400, nothing recorded, U's fresh token dropped", async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const browser = new Browser('interaction-gone');
    const { callback } = await approveAndStopAtU(browser, clientId, 'dirk');
    await stack.app.runtime.sql.run("DELETE FROM oidc_models WHERE model = 'Interaction'");
    const revocationsAtU = stack.upstream.revocations.length;
    const page = await browser.navigate(callback, { initiator: stack.upstream.issuer, stopAt: (u) => u.startsWith(CLIENT_REDIRECT) });
    expect(page.status).toBe(400);
    expect(page.html).toContain('sign-in has expired');
    expect(await consentsOf(clientId)).toEqual([]);
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations.length, 'dropped, not revoked').toBe(revocationsAtU);
  });

  it("the approval's transaction failing (the database busy): an error page, nothing recorded, U's fresh token dropped", async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const browser = new Browser('approval-fails');
    const { callback } = await approveAndStopAtU(browser, clientId, 'dale');
    const consents = stack.app.runtime.stores.consents;
    const insert = consents.insert.bind(consents);
    consents.insert = () => Promise.reject(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }));
    const revocationsAtU = stack.upstream.revocations.length;
    try {
      const page = await browser.navigate(callback, { initiator: stack.upstream.issuer, stopAt: (u) => u.startsWith(CLIENT_REDIRECT) });
      expect(page.status).toBeGreaterThanOrEqual(500);
      expect(page.hops.filter((h) => h.location)).toEqual([]);
    } finally {
      consents.insert = insert;
    }
    expect(await consentsOf(clientId)).toEqual([]);
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations.length, 'dropped, not revoked').toBe(revocationsAtU);
  });

  // On PostgreSQL the approval's transaction and the disabling's run on two connections: the
  // client's row, read FOR SHARE by the approval, makes the disabling wait for it, so the cascade
  // that follows finds the new consent. (SQLite runs one write transaction at a time.)
  it.runIf(TEST_ENGINE === 'postgres')("PostgreSQL: disabled while the approval's transaction is open — the disabling waits for it, and its cascade revokes the new consent", async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    const browser = new Browser('disable-concurrent');
    const { callback } = await approveAndStopAtU(browser, clientId, 'dina');
    const meta = stack.app.runtime.stores.clientsMeta;
    const lockedStanding = meta.lockedStanding.bind(meta);
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    let atGate!: () => void;
    const reached = new Promise<void>((resolve) => (atGate = resolve));
    meta.lockedStanding = async (id) => {
      const row = await lockedStanding(id);
      atGate();
      await gate; // the approval's transaction stays open, the row locked
      return row;
    };
    try {
      const landing = browser.navigate(callback, { initiator: stack.upstream.issuer, stopAt: (u) => u.startsWith(CLIENT_REDIRECT) });
      await reached;
      const disabling = stack.app.runtime.ops.disableClient(clientId, admin);
      const waiting = await lockWaitSeen((stack.app.runtime.sql as PgSql).pool);
      openGate();
      expect(waiting, 'the disabling waits for the approval').toBe(true);
      await landing;
      expect(await disabling).toEqual({ revokedConsents: 1 });
    } finally {
      openGate();
      meta.lockedStanding = lockedStanding;
    }
    expect(await consentsOf(clientId)).toEqual([{ revoked_reason: 'client_disabled' }]);
  });
});
