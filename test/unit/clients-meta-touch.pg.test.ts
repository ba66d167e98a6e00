/**
 * Noting a client's use on PostgreSQL never waits for its row (src/store/clients-meta.ts
 * TOUCH_UNLESS_LOCKED; review 2026-12-07). An approval in flight reads the row FOR SHARE
 * (src/consent/record.ts) and may then delete a superseded grant's refresh token — the row a
 * /token transaction holds while it notes the client's use: waiting for the approval there was a
 * deadlock (40P01). The use is skipped while the row is locked, and noted once it is free.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgSql } from '../../src/db/pg-sql.js';
import { migratePg } from '../../src/db/migrate-pg.js';
import { createClientsMetaStore } from '../../src/store/clients-meta.js';
import { pgDatabasePerFile } from '../helpers/pg.js';

const db = pgDatabasePerFile('clients_meta_touch');
let sql: PgSql;

beforeAll(async () => {
  sql = new PgSql({ url: db.url, poolMax: 3 });
  await migratePg(sql);
});
afterAll(() => sql?.close());

describe('clients_meta last use on PostgreSQL', () => {
  it("skips a row an approval holds (FOR SHARE) instead of waiting for it, and notes the use once it is free", async () => {
    const store = createClientsMetaStore(sql);
    await store.record({ client_id: 'c-touch', registered_at: 1, ip: null, user_agent: null, client_name: null, redirect_hosts: '' });
    const holder = await sql.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query("SELECT disabled_at FROM clients_meta WHERE client_id = 'c-touch' FOR SHARE");
      const outcome = await Promise.race([
        store.touch('c-touch', 5_000_000).then(() => 'done'),
        new Promise((resolve) => setTimeout(() => resolve('blocked'), 3_000).unref()),
      ]);
      expect(outcome, 'the UPDATE did not wait for the lock').toBe('done');
      await holder.query('COMMIT');
    } finally {
      holder.release();
    }
    expect((await store.get('c-touch'))?.last_used_at, 'skipped while locked').toBeNull();
    await store.touch('c-touch', 5_100_000); // past USE_WRITE_INTERVAL_MS since the skipped one
    expect((await store.get('c-touch'))?.last_used_at).toBe(5_100_000);
  });
});
