/**
 * An audit append whose COMMIT was sent and whose answer was lost (PostgreSQL: the connection
 * dropped; src/store/audit-log.ts `append`; review 2026-12-07). A group commit puts records it
 * could not commit back in its queue, and the next commit appended them again: when the lost
 * COMMIT had landed, each row was in the log twice (the chain still verified). Now the append
 * reads, under the chain's lock, whether its last row is in the chain: committed → answered as
 * committed, nothing put back; not committed → the records wait for the next commit, as before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { PgSql } from '../../src/db/pg-sql.js';
import { migratePg } from '../../src/db/migrate-pg.js';
import { KeyRing } from '../../src/crypto/keys.js';
import { createAuditLogStore } from '../../src/store/audit-log.js';
import { Audit } from '../../src/audit/audit.js';
import { loseCommitAnswers, pgDatabasePerFile } from '../helpers/pg.js';

const db = pgDatabasePerFile('audit_commit_lost');
let sql: PgSql;
let lossy: PgSql;
/** the next COMMIT: `after` sends it and loses the answer; `before` loses the connection before sending it */
let lose: 'after' | 'before' | undefined;

beforeAll(async () => {
  sql = new PgSql({ url: db.url, poolMax: 2 });
  await migratePg(sql);
  lossy = new PgSql({ url: db.url, poolMax: 2 });
  // Once: the COMMIT after `lose` is set.
  loseCommitAnswers(lossy.pool, () => {
    const mode = lose;
    lose = undefined;
    return mode;
  });
});
afterAll(async () => {
  await lossy?.close();
  await sql?.close();
});

const clientIds = async () => (await sql.all<{ client_id: string }>('SELECT client_id FROM audit_log ORDER BY seq')).map((r) => r.client_id);

describe('an audit COMMIT whose answer was lost', () => {
  it('committed: the rows are in the log once, the append answered as committed; not committed: kept and committed later, once', async () => {
    const keys = new KeyRing(Buffer.alloc(32, 7));
    const audit = new Audit(createAuditLogStore(lossy, { key: keys.auditKey }), pino({ level: 'silent' }));

    lose = 'after';
    audit.defer({ event: 'gateway.forwarded', clientId: 'landed-1' });
    audit.defer({ event: 'gateway.forwarded', clientId: 'landed-2' });
    await audit.flush();
    expect(audit.queued, 'nothing put back').toBe(0);
    await audit.flush();
    expect(await clientIds()).toEqual(['landed-1', 'landed-2']);

    lose = 'before';
    audit.defer({ event: 'gateway.forwarded', clientId: 'lost-1' });
    await audit.flush().catch(() => undefined);
    expect(audit.queued, 'kept for the next commit').toBe(1);
    await audit.flush();
    expect(await clientIds()).toEqual(['landed-1', 'landed-2', 'lost-1']);

    // record() (a decision's row, outside any transaction) likewise: answered as committed.
    lose = 'after';
    const row = await audit.record({ event: 'token.issued', clientId: 'decision' });
    expect(row.seq).toBe(4);
    expect(await clientIds()).toEqual(['landed-1', 'landed-2', 'lost-1', 'decision']);
  });
});
