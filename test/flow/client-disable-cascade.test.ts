/**
 * Disabling a client (admin, CLI; src/consent/operations.ts): the flag commits with its audit row
 * or not at all, and the cascade that follows revokes each consent with its own row — one consent
 * whose revocation fails no longer leaves the ones after it active (src/consent/revocation.ts
 * `revokeClient`): the operator gets the error, the others are revoked, and the retry revokes
 * what is left; the database busy stops it at once, and housekeeping finishes a disabling cut
 * short (src/runtime/maintenance.ts). Found in the 2026-12-06 reviews of the client operations.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditEvents, rows } from '../helpers/app.js';
import { authorizeClient, Browser, startStack, type Stack } from '../helpers/stack.js';
import type { AuditEntry } from '../../src/audit/audit.js';
import { FINISH_DISABLED_AFTER_MS, maintenanceDeps } from '../../src/runtime/server.js';
import { runMaintenance } from '../../src/runtime/maintenance.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack?.close());

const admin = { actor: 'admin' as const, subject: 'admin-1' };
const busy = () => Object.assign(new Error('the database is busy (test)'), { code: 'SQLITE_BUSY' });

/** A client with a consent of each of `users` (one client id, one browser per user). */
async function clientWithConsents(users: string[]): Promise<{ clientId: string; grants: string[] }> {
  let clientId: string | undefined;
  for (const login of users) clientId = (await authorizeClient(stack, new Browser(login), { login, clientId })).clientId;
  const grants = (await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ? ORDER BY id', clientId)).map((r) => r.grant_id as string);
  return { clientId: clientId as string, grants };
}

/** The next revocation of `grantId` fails with `err`; undo with the result. */
function failRevocationOnce(grantId: string, err: Error): () => void {
  const revocation = stack.app.runtime.revocation;
  const revokeInTransaction = revocation.revokeInTransaction.bind(revocation);
  let refused = false;
  revocation.revokeInTransaction = async (id, reason, now) => {
    if (id === grantId && !refused) {
      refused = true;
      throw err;
    }
    return revokeInTransaction(id, reason, now);
  };
  return () => (revocation.revokeInTransaction = revokeInTransaction);
}

/** One housekeeping run with the clock `aheadMs` ahead. */
/** Disable the client with the revocation of `grantId` failing (the database busy): the cascade cut short. */
async function disableCutShort(clientId: string, grantId: string): Promise<void> {
  const restore = failRevocationOnce(grantId, busy());
  try {
    await expect(stack.app.runtime.ops.disableClient(clientId, admin)).rejects.toThrow(/busy/);
  } finally {
    restore();
  }
}

async function housekeepingAt(aheadMs: number) {
  vi.useFakeTimers({ toFake: ['Date'] });
  try {
    vi.setSystemTime(Date.now() + aheadMs);
    return await runMaintenance(maintenanceDeps(stack.app.runtime, stack.app.runtime.gateway));
  } finally {
    vi.useRealTimers();
  }
}

const revokedRowsOf = async (clientId: string) => (await auditEvents(stack.app)).filter((e) => e.event === 'consent.revoked' && e.client_id === clientId && e.reason === 'client_disabled');
const activeGrants = async (clientId: string) =>
  (await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ? AND revoked_at IS NULL ORDER BY id', clientId)).map((r) => r.grant_id as string);
const disabledAt = async (clientId: string) => (await rows(stack.app, 'SELECT disabled_at FROM clients_meta WHERE client_id = ?', clientId))[0]?.disabled_at as number | null;
const disabledRows = async (clientId: string) => (await auditEvents(stack.app)).filter((e) => e.event === 'admin.client_disabled' && e.client_id === clientId);

describe('disabling a client', () => {
  it('a refused audit row leaves the client enabled and its consents active; the retry disables it with one row', async () => {
    const { clientId, grants } = await clientWithConsents(['dis-a1', 'dis-a2']);
    const audit = stack.app.runtime.audit;
    const record = audit.record.bind(audit);
    let refused = false;
    audit.record = async (entry: AuditEntry) => {
      if (entry.event === 'admin.client_disabled' && !refused) {
        refused = true;
        throw busy();
      }
      return record(entry);
    };
    try {
      await expect(stack.app.runtime.ops.disableClient(clientId, admin)).rejects.toThrow(/busy/);
    } finally {
      audit.record = record;
    }
    expect(await disabledAt(clientId)).toBeNull();
    expect(await activeGrants(clientId)).toEqual(grants);
    expect(await disabledRows(clientId)).toEqual([]);

    expect(await stack.app.runtime.ops.disableClient(clientId, admin)).toEqual({ revokedConsents: 2 });
    expect(await disabledAt(clientId)).not.toBeNull();
    expect(await activeGrants(clientId)).toEqual([]);
    const [row, ...more] = await disabledRows(clientId);
    expect(more).toEqual([]);
    expect(JSON.parse(row?.details as string)).toMatchObject({ unrevoked_consents: 2, actor: 'admin' });
  });

  it('a consent whose revocation fails does not stop the others; U is asked for each one revoked; the retry revokes the one left', async () => {
    const { clientId, grants } = await clientWithConsents(['dis-b1', 'dis-b2', 'dis-b3']);
    const failing = grants[0] as string;
    const askedU = stack.upstream.revocations.length;
    const restore = failRevocationOnce(failing, new Error('the upstream token row cannot be unsealed (test)'));
    try {
      await expect(stack.app.runtime.ops.disableClient(clientId, admin)).rejects.toThrow(/unsealed/);
    } finally {
      restore();
    }
    const firstDisabledAt = await disabledAt(clientId);
    expect(firstDisabledAt, 'the client is disabled: no new authorization while a consent is left').not.toBeNull();
    expect(await activeGrants(clientId), 'only the consent whose revocation failed is left').toEqual([failing]);
    expect(await revokedRowsOf(clientId)).toHaveLength(2);
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations, 'U asked for the two consents revoked, not for the one left').toHaveLength(askedU + 2);

    expect(await stack.app.runtime.ops.disableClient(clientId, admin)).toEqual({ revokedConsents: 1 });
    expect(await activeGrants(clientId)).toEqual([]);
    expect(await disabledAt(clientId), 'the retry keeps the time it was first disabled at').toBe(firstDisabledAt);
    expect(await disabledRows(clientId)).toHaveLength(2);
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations).toHaveLength(askedU + 3);
  });

  it('the database busy stops the cascade at once (each consent would wait out the same bound); housekeeping finishes it', async () => {
    const { clientId, grants } = await clientWithConsents(['dis-c1', 'dis-c2', 'dis-c3']);
    const tried: string[] = [];
    const revocation = stack.app.runtime.revocation;
    const revokeInTransaction = revocation.revokeInTransaction.bind(revocation);
    revocation.revokeInTransaction = async (grantId, reason, now) => {
      tried.push(grantId);
      if (grantId === grants[0]) throw busy();
      return revokeInTransaction(grantId, reason, now);
    };
    try {
      await expect(stack.app.runtime.ops.disableClient(clientId, admin)).rejects.toThrow(/busy/);
    } finally {
      revocation.revokeInTransaction = revokeInTransaction;
    }
    expect(tried, 'no other consent tried after the busy failure').toEqual([grants[0]]);
    expect(await activeGrants(clientId)).toEqual(grants);
    expect(await disabledAt(clientId)).not.toBeNull();

    expect((await housekeepingAt(0)).skipped).toBe(false);
    expect(await activeGrants(clientId), 'within a minute of the disabling, housekeeping leaves its cascade alone').toEqual(grants);
    expect((await housekeepingAt(FINISH_DISABLED_AFTER_MS + 1000)).skipped).toBe(false);
    expect(await activeGrants(clientId), 'housekeeping revoked what the disabling left').toEqual([]);
    expect(await revokedRowsOf(clientId)).toHaveLength(3);
    await housekeepingAt(FINISH_DISABLED_AFTER_MS + 2000);
    expect(await revokedRowsOf(clientId), 'nothing left: the next run revokes nothing').toHaveLength(3);
  });

  // Review 2026-12-07: an approval the disabling waited for (its row lock) can carry a granted_at
  // later than disabled_at (each stamped by its own clock before the wait); housekeeping's finish
  // skipped such a consent when the disabling's cascade was cut short.
  it('housekeeping finishes a consent granted after the disabled_at the disabling stamped (an approval it waited for)', async () => {
    const { clientId, grants } = await clientWithConsents(['dis-g1']);
    await disableCutShort(clientId, grants[0] as string);
    const disabled = (await disabledAt(clientId)) as number;
    await stack.app.runtime.sql.run('UPDATE consents SET granted_at = ? WHERE grant_id = ?', [disabled + 500, grants[0]]);
    expect((await housekeepingAt(FINISH_DISABLED_AFTER_MS + 1000)).skipped).toBe(false);
    expect(await activeGrants(clientId)).toEqual([]);
  });

  it('housekeeping revokes nothing of a client re-enabled meanwhile: each consent is checked in its own transaction (review: a new consent was revoked)', async () => {
    const { clientId, grants } = await clientWithConsents(['dis-e1']);
    await disableCutShort(clientId, grants[0] as string);
    // Housekeeping listed the client; before it reaches its consents, an admin re-enables it and the user signs in again.
    expect(await stack.app.runtime.ops.enableClient(clientId, admin)).toBe(true);
    await authorizeClient(stack, new Browser('dis-e1'), { login: 'dis-e1', clientId });
    const before = await activeGrants(clientId);
    expect(before).toHaveLength(1); // the approval superseded the old consent: one live consent, granted after the re-enabling
    const revoked = await stack.app.runtime.revocation.revokeClient(clientId, 'client_disabled', (grantId) => stack.app.runtime.stores.consents.dueToDisabling(grantId));
    expect(revoked).toBe(0);
    expect(await activeGrants(clientId)).toEqual(before);
  });

  it('a cascade finding a consent another cascade already revoked writes no second row; an operator revoking it again does', async () => {
    const { clientId, grants } = await clientWithConsents(['dis-f1']);
    const grantId = grants[0] as string;
    const rowsOfGrant = async () => (await auditEvents(stack.app)).filter((e) => e.client_id === clientId && e.event === 'consent.revoked');
    await stack.app.runtime.revocation.revokeGrant(grantId, 'client_disabled', undefined, {});
    expect(await rowsOfGrant()).toHaveLength(1);
    expect(await stack.app.runtime.revocation.revokeGrant(grantId, 'client_disabled', undefined, {})).toBe(false);
    expect(await rowsOfGrant(), 'no second row from a cascade').toHaveLength(1);
    await stack.app.runtime.revocation.revokeGrant(grantId, 'admin');
    expect(await rowsOfGrant(), 'an explicit revocation is recorded').toHaveLength(2);
  });

  it('housekeeping leaves the consents of enabled clients alone', async () => {
    const { clientId, grants } = await clientWithConsents(['dis-d1']);
    await housekeepingAt(FINISH_DISABLED_AFTER_MS + 1000);
    expect(await activeGrants(clientId)).toEqual(grants);
  });
});
