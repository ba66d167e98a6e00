/**
 * Recomputes the audit hash chain from the first row (DESIGN §3). Reports the first row whose
 * sequence number, link to its predecessor, or own hash does not match.
 */
import { GENESIS_HASH, rowHash } from './chain.js';
import type { AuditLogStore } from '../store/audit-log.js';

export type VerifyResult =
  | { ok: true; rows: number; tipSeq: number; tipHash: string }
  | { ok: false; rows: number; firstBadSeq: number; problem: string };

export function verifyChain(store: AuditLogStore): VerifyResult {
  let prev = GENESIS_HASH;
  let expectedSeq = 1;
  let rows = 0;
  for (const row of store.iterate()) {
    if (row.seq !== expectedSeq) {
      return { ok: false, rows, firstBadSeq: expectedSeq, problem: `row ${expectedSeq} is missing (next row is ${row.seq})` };
    }
    if (row.prev_hash !== prev) {
      return { ok: false, rows, firstBadSeq: row.seq, problem: `row ${row.seq} does not link to row ${row.seq - 1} (prev_hash differs)` };
    }
    if (rowHash(prev, row) !== row.hash) {
      return { ok: false, rows, firstBadSeq: row.seq, problem: `row ${row.seq} was altered (its hash does not match its content)` };
    }
    prev = row.hash;
    expectedSeq += 1;
    rows += 1;
  }
  return { ok: true, rows, tipSeq: expectedSeq - 1, tipHash: prev };
}
