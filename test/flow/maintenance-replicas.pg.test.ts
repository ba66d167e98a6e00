/**
 * Housekeeping one replica at a time (DESIGN §8, issue 11, REG-11): every replica schedules
 * housekeeping, and two runs at once each found the same idle clients — both deleted them and
 * both wrote client.expired. Now a run holds the `maintenance` lock (src/runtime/maintenance.ts,
 * Sql.tryExclusive): two runtimes on one PostgreSQL database run it at once, through the
 * production wiring (maintenanceDeps); while replica A's run is under way (held at its first
 * expired client), replica B's run skips and touches nothing; A's run does all the work, audited
 * once per client. Asserted on rows and audit rows, not on timing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { pgDatabasePerFile } from '../helpers/pg.js';
import { gate } from '../helpers/sql-driver-cases.js';
import { maintenanceDeps } from '../../src/runtime/server.js';
import { runMaintenance } from '../../src/runtime/maintenance.js';

const db = pgDatabasePerFile('maintenance_replicas');
let a: TestApp;
let b: TestApp;

beforeAll(async () => {
  a = await startTestApp({ env: { DATABASE_URL: db.url, CLIENT_IDLE_TTL: '30d' } });
  b = await startTestApp({ env: { DATABASE_URL: db.url, CLIENT_IDLE_TTL: '30d', PUBLIC_URL: a.url } });
});
afterAll(async () => {
  await b?.close();
  await a?.close();
});

const clientsLeft = async (ids: string[]) => (await rows(a, 'SELECT client_id FROM clients_meta ORDER BY client_id')).map((r) => r.client_id as string).filter((id) => ids.includes(id));

describe('housekeeping runs on one replica at a time', () => {
  it('two replicas run it at once: one deletes and audits each idle client once, the other skips and touches nothing', async () => {
    const idle = [(await registerClient(a)).client_id as string, (await registerClient(b)).client_id as string].sort();
    await a.runtime.sql.run(`UPDATE clients_meta SET registered_at = 1, last_used_at = 1 WHERE client_id IN (?, ?)`, idle);
    const depsA = maintenanceDeps(a.runtime, a.runtime.gateway);
    const depsB = maintenanceDeps(b.runtime, b.runtime.gateway);
    const inside = gate();
    const release = gate();
    const runA = runMaintenance({
      ...depsA,
      onClientExpired: async (clientId) => {
        inside.open();
        await release.wait;
        return depsA.onClientExpired?.(clientId);
      },
    });
    await inside.wait; // A's run holds the lock, at its first expired client
    const resultB = await runMaintenance(depsB);
    expect(resultB).toEqual({ expiredRows: 0, expiredClients: [], skipped: true });
    expect(await clientsLeft(idle)).toEqual(idle); // B deleted nothing
    release.open();
    const resultA = await runA;
    expect(resultA.skipped).toBe(false);
    expect([...resultA.expiredClients].sort()).toEqual(idle);
    expect(await clientsLeft(idle)).toEqual([]);
    // The lock is free again: B's next run runs, and finds nothing left to do.
    expect(await runMaintenance(depsB)).toMatchObject({ expiredClients: [], skipped: false });
    await b.runtime.audit.flush();
    const expired = (await auditEvents(a)).filter((e) => e.event === 'client.expired').map((e) => e.client_id);
    expect(expired.sort()).toEqual(idle);
  });
});
