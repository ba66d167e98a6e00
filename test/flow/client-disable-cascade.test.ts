/**
 * Disabling a client (admin, CLI; src/consent/operations.ts): the flag commits with its audit row
 * or not at all, and the cascade that follows revokes each consent with its own row — one consent
 * whose revocation fails no longer leaves the ones after it active (src/consent/revocation.ts
 * `revokeClient`): the operator gets the error, the others are revoked, and the retry revokes
 * what is left. Found in the 2026-12-06 review of the client operations' transactions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, rows } from '../helpers/app.js';
import { authorizeClient, Browser, startStack, type Stack } from '../helpers/stack.js';
import type { AuditEntry } from '../../src/audit/audit.js';

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
    expect(JSON.parse(row?.details as string)).toMatchObject({ active_consents: 2, actor: 'admin' });
  });

  it('a consent whose revocation fails does not stop the others; the retry revokes it', async () => {
    const { clientId, grants } = await clientWithConsents(['dis-b1', 'dis-b2', 'dis-b3']);
    const revocation = stack.app.runtime.revocation;
    const revokeInTransaction = revocation.revokeInTransaction.bind(revocation);
    const failing = grants[0] as string;
    let refused = 0;
    revocation.revokeInTransaction = async (grantId, reason, now) => {
      if (grantId === failing && refused++ === 0) throw busy();
      return revokeInTransaction(grantId, reason, now);
    };
    try {
      await expect(stack.app.runtime.ops.disableClient(clientId, admin)).rejects.toThrow(/busy/);
    } finally {
      revocation.revokeInTransaction = revokeInTransaction;
    }
    expect(await disabledAt(clientId), 'the client is disabled: no new authorization while a consent is left').not.toBeNull();
    expect(await activeGrants(clientId), 'only the consent whose revocation failed is left').toEqual([failing]);
    const revoked = (await auditEvents(stack.app)).filter((e) => e.event === 'consent.revoked' && e.client_id === clientId && e.reason === 'client_disabled');
    expect(revoked).toHaveLength(2);

    expect(await stack.app.runtime.ops.disableClient(clientId, admin)).toEqual({ revokedConsents: 1 });
    expect(await activeGrants(clientId)).toEqual([]);
    expect(await disabledRows(clientId)).toHaveLength(2);
  });
});
