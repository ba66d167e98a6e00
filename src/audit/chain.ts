/**
 * The audit hash chain (DESIGN §3): hash = SHA-256(prev_hash ‖ "\n" ‖ canonical row), hex.
 * The canonical row is a JSON array of the stored columns in a fixed order, with `details`
 * already in canonical form (object keys sorted), so the same row always hashes the same.
 */
import { hash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export interface AuditRow {
  seq: number;
  ts: string;
  event: string;
  outcome: string;
  reason: string | null;
  subject: string | null;
  client_id: string | null;
  ip: string | null;
  request_id: string | null;
  details: string | null;
  prev_hash: string;
  hash: string;
}

export function rowHash(prevHash: string, row: Omit<AuditRow, 'prev_hash' | 'hash'>): string {
  const canonical = JSON.stringify([
    row.seq, row.ts, row.event, row.outcome, row.reason, row.subject, row.client_id, row.ip, row.request_id, row.details,
  ]);
  return hash('sha256', `${prevHash}\n${canonical}`, 'hex');
}
