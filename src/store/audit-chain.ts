/**
 * The audit chain (DESIGN §3, §9). Each row links to its predecessor through `prev_hash`:
 * - keyed rows (every row written since migration 0011): `hash` = HMAC-SHA-256(audit key,
 *   prev_hash ‖ "\n" ‖ canonical row), hex, with `key_id` naming the SECRET_KEY generation whose
 *   audit key (HKDF label 'audit', src/crypto/keys.ts) made it. Without that key nobody can
 *   recompute a MAC, so a row rewritten by someone with write access to the database no longer
 *   verifies. The key id is part of the canonical row.
 * - legacy rows (written before 0011, `key_id` NULL): `hash` = SHA-256(prev_hash ‖ "\n" ‖
 *   canonical row). The first keyed row links to the last legacy row, so its MAC covers the
 *   whole legacy prefix too (through the SHA-256 links).
 * The canonical row is a JSON array of the stored columns in a fixed order, with `details`
 * already in canonical form (object keys sorted), so the same row always hashes the same.
 */
import { createHmac, hash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

/** An audit MAC key and the id stored with each row it made. */
export interface AuditKey {
  kid: string;
  key: Buffer;
}

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
  /** the key that made this row's MAC; NULL for a legacy (plain SHA-256) row */
  key_id: string | null;
}

type ChainedFields = Omit<AuditRow, 'prev_hash' | 'hash' | 'key_id'>;

function canonical(row: ChainedFields, kid?: string): string {
  const { seq, ts, event, outcome, reason, subject, client_id, ip, request_id, details } = row;
  return JSON.stringify(
    kid === undefined ? [seq, ts, event, outcome, reason, subject, client_id, ip, request_id, details] : [seq, ts, event, outcome, reason, subject, client_id, ip, request_id, details, kid],
  );
}

/** Legacy link (rows from before migration 0011): plain SHA-256, anyone can recompute it. */
export function rowHash(prevHash: string, row: ChainedFields): string {
  return hash('sha256', `${prevHash}\n${canonical(row)}`, 'hex');
}

/** Keyed link: HMAC-SHA-256 under the audit key `kid` (one HMAC per row). */
export function rowMac(key: AuditKey, prevHash: string, row: ChainedFields): string {
  return createHmac('sha256', key.key)
    .update(`${prevHash}\n${canonical(row, key.kid)}`)
    .digest('hex');
}
