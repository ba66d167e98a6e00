/**
 * A decision's audit row recorded inside an outer transaction (one per request: src/flow/7-token.ts;
 * a client's deletion: src/consent/operations.ts) reaches the checkpoint file once that transaction
 * commits — before, it waited for the next commit outside a transaction (found by review) — and
 * never when it rolls back: a checkpoint must not name a row that is not in the database (DESIGN §9).
 */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Audit } from '../../src/audit/audit.js';
import type { AuditLogStore } from '../../src/store/audit-log.js';
import type { CheckpointWriter } from '../../src/audit/checkpoint.js';

function setup() {
  let inTx = false;
  let seq = 0;
  const committed: (() => void)[] = [];
  const noted: number[] = [];
  const store = {
    inTransaction: () => inTx,
    afterCommit: (fn: () => void) => (inTx ? committed.push(fn) : fn()),
    append: async (rows: unknown[]) => ({ seq: (seq += rows.length), hash: 'h', key_id: 'k' }),
  } as unknown as AuditLogStore;
  const checkpoint = { update: (head: { seq: number }) => noted.push(head.seq), flush: async () => undefined } as unknown as CheckpointWriter;
  const audit = new Audit(store, pino({ level: 'silent' }), { checkpoint });
  return { audit, noted, begin: () => (inTx = true), commit: () => ((inTx = false), committed.splice(0).forEach((fn) => fn())), rollback: () => ((inTx = false), committed.splice(0)) };
}

describe('audit rows recorded inside a transaction and the checkpoint file', () => {
  it('noted once the transaction commits, not before', async () => {
    const t = setup();
    t.begin();
    await t.audit.record({ event: 'admin.client_deleted', clientId: 'c1' });
    expect(t.noted).toEqual([]);
    t.commit();
    expect(t.noted).toEqual([1]);
  });

  it('never noted when it rolls back', async () => {
    const t = setup();
    t.begin();
    await t.audit.record({ event: 'admin.client_deleted', clientId: 'c1' });
    t.rollback();
    expect(t.noted).toEqual([]);
    await t.audit.record({ event: 'admin.client_deleted', clientId: 'c2' });
    expect(t.noted).toEqual([2]);
  });
});
