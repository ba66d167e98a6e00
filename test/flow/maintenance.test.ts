/**
 * Housekeeping (REG-11, retention): clients unused for CLIENT_IDLE_TTL are deleted and audited;
 * expired rows are purged; audit rows are never touched.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditEvents, registerClient, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { runMaintenance } from '../../src/runtime/maintenance.js';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ env: { CLIENT_IDLE_TTL: '30d' } });
});
afterAll(() => app.close());

function housekeepingDeps() {
  const { runtime } = app;
  return { models: runtime.stores.models, clientsMeta: runtime.stores.clientsMeta, audit: runtime.audit, log: runtime.log, clientIdleSeconds: app.config.ttl.clientIdle, transaction: runtime.stores.transaction };
}

describe('maintenance', () => {
  it('deletes clients unused for CLIENT_IDLE_TTL, keeps recently used ones, and audits each deletion', async () => {
    const idle = (await registerClient(app, { client_name: 'idle' })).client_id;
    const used = (await registerClient(app, { client_name: 'used' })).client_id;
    const { runtime } = app;
    const deps = housekeepingDeps();
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 29 * 86_400_000);
      await runtime.stores.clientsMeta.touch(used);
      expect((await runMaintenance(deps)).expiredClients).toEqual([]);
      vi.setSystemTime(Date.now() + 2 * 86_400_000);
      expect((await runMaintenance(deps)).expiredClients).toEqual([idle]);
    } finally {
      vi.useRealTimers();
    }
    expect((await rows(app, "SELECT key FROM oidc_models WHERE model = 'Client'")).map((r) => r.key)).toEqual([used]);
    expect((await rows(app, 'SELECT client_id FROM clients_meta')).map((r) => r.client_id)).toEqual([used]);
    expect((await auditEvents(app)).at(-1)).toMatchObject({ event: 'client.expired', client_id: idle, reason: 'idle' });
    const authorize = await fetch(`${app.url}/authorize?client_id=${idle}&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A33418%2Fcallback`, { redirect: 'manual' });
    expect(authorize.status).toBe(400);
    expect(authorize.headers.get('location')).toBeNull();
  });

  it("an expired client's deletion and its audit row commit together: a refused row leaves the client for the next run", async () => {
    const idle = (await registerClient(app, { client_name: 'idle, audit refused' })).client_id;
    const { runtime } = app;
    const record = runtime.audit.record.bind(runtime.audit);
    let refused = 0;
    runtime.audit.record = async (entry) => {
      if (entry.event === 'client.expired' && refused === 0) {
        refused += 1;
        throw Object.assign(new Error('the database is busy (test)'), { code: 'SQLITE_BUSY' });
      }
      return record(entry);
    };
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 400 * 86_400_000);
      await expect(runMaintenance(housekeepingDeps())).rejects.toThrow(/busy/);
      expect(refused).toBe(1);
      expect(await rows(app, 'SELECT client_id FROM clients_meta WHERE client_id = ?', idle)).toEqual([{ client_id: idle }]);
      expect(await rows(app, "SELECT key FROM oidc_models WHERE model = 'Client' AND key = ?", idle)).toEqual([{ key: idle }]);
      expect((await runMaintenance(housekeepingDeps())).expiredClients).toContain(idle);
    } finally {
      vi.useRealTimers();
      runtime.audit.record = record;
    }
    expect(await rows(app, 'SELECT client_id FROM clients_meta WHERE client_id = ?', idle)).toEqual([]);
    expect((await auditEvents(app)).filter((e) => e.event === 'client.expired' && e.client_id === idle)).toHaveLength(1);
  });

  // Review 2026-12-07: an approval recorded after the expiry's cascade (its user was at U) left an
  // active consent for a deleted client. The deletion now finds it and keeps the client, in use.
  it('an idle client approved while it expires is kept, its new consent active, and no longer idle', async () => {
    const idle = (await registerClient(app, { client_name: 'idle, approved meanwhile' })).client_id;
    const { runtime } = app;
    const deps = {
      ...housekeepingDeps(),
      unrevokedConsents: async (clientId: string) => (await runtime.stores.consents.unrevokedForClient(clientId)).length,
      onClientExpired: async (clientId: string) => {
        // the cascade has run (nothing to revoke); the user comes back from U now
        await runtime.stores.consents.insert({
          subject: 'late-user', clientId, redirectUri: 'http://127.0.0.1:33418/callback', resource: app.config.urls.mcpResource,
          scopes: ['mcp:tools'], upstreamScopes: [], grantedAt: Date.now(), expiresAt: Date.now() + 86_400_000, grantId: 'late-grant', browserHash: null,
        });
      },
    };
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 31 * 86_400_000);
      const result = await runMaintenance(deps);
      expect(result.expiredClients).not.toContain(idle);
      expect(await rows(app, 'SELECT client_id FROM clients_meta WHERE client_id = ?', idle)).toEqual([{ client_id: idle }]);
      expect(await rows(app, 'SELECT revoked_at FROM consents WHERE client_id = ?', idle)).toEqual([{ revoked_at: null }]);
      expect((await runMaintenance({ ...deps, onClientExpired: async () => undefined })).expiredClients, 'no longer idle').not.toContain(idle);
    } finally {
      vi.useRealTimers();
    }
    expect((await auditEvents(app)).filter((e) => e.event === 'client.expired' && e.client_id === idle)).toEqual([]);
  });
});
