/**
 * Deleting or re-enabling a client (admin, CLI) and its audit row commit together
 * (src/consent/operations.ts): a database that refuses the audit row leaves the client as it was,
 * so the action fails whole and its retry succeeds with one row — never a deleted or enabled
 * client without its audit row.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows, startTestApp, type TestApp } from '../helpers/app.js';
import type { AuditEntry } from '../../src/audit/audit.js';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(() => app.close());

/** The next audit row of `event` is refused as a busy database refuses it; undo with the result. */
function refuseOnce(event: string): () => void {
  const audit = app.runtime.audit;
  const record = audit.record.bind(audit);
  let refused = false;
  audit.record = async (entry: AuditEntry) => {
    if (entry.event === event && !refused) {
      refused = true;
      throw Object.assign(new Error('the database is busy (test)'), { code: 'SQLITE_BUSY' });
    }
    return record(entry);
  };
  return () => (audit.record = record);
}

const admin = { actor: 'admin' as const, subject: 'admin-1' };
const rowsOf = async (event: string, clientId: string) => (await auditEvents(app)).filter((e) => e.event === event && e.client_id === clientId);

describe('client operations and their audit rows', () => {
  it('delete: a refused audit row leaves the client registered; the retry deletes it with one row', async () => {
    const clientId = (await registerClient(app, { client_name: 'to delete' })).client_id as string;
    const restore = refuseOnce('admin.client_deleted');
    try {
      await expect(app.runtime.ops.deleteClient(clientId, admin)).rejects.toThrow(/busy/);
    } finally {
      restore();
    }
    expect(await rows(app, "SELECT key FROM oidc_models WHERE model = 'Client' AND key = ?", clientId)).toEqual([{ key: clientId }]);
    expect(await rows(app, 'SELECT client_id FROM clients_meta WHERE client_id = ?', clientId)).toEqual([{ client_id: clientId }]);
    expect(await rowsOf('admin.client_deleted', clientId)).toEqual([]);
    expect(await app.runtime.ops.deleteClient(clientId, admin)).toEqual({ revokedConsents: 0 });
    expect(await rows(app, 'SELECT client_id FROM clients_meta WHERE client_id = ?', clientId)).toEqual([]);
    expect(await rowsOf('admin.client_deleted', clientId)).toHaveLength(1);
  });

  it('enable: a refused audit row leaves the client disabled; the retry enables it with one row', async () => {
    const clientId = (await registerClient(app, { client_name: 'to enable' })).client_id as string;
    await app.runtime.ops.disableClient(clientId, admin);
    const restore = refuseOnce('admin.client_enabled');
    try {
      await expect(app.runtime.ops.enableClient(clientId, admin)).rejects.toThrow(/busy/);
    } finally {
      restore();
    }
    const [meta] = await rows(app, 'SELECT disabled_at FROM clients_meta WHERE client_id = ?', clientId);
    expect(meta.disabled_at).not.toBeNull();
    expect(await app.runtime.ops.enableClient(clientId, admin)).toBe(true);
    expect(await rows(app, 'SELECT disabled_at FROM clients_meta WHERE client_id = ?', clientId)).toEqual([{ disabled_at: null }]);
    expect(await rowsOf('admin.client_enabled', clientId)).toHaveLength(1);
  });
});
