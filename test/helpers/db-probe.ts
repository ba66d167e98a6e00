/**
 * The one place where the fuzz and fault suites (test/fuzz/, test/faults/) read P's database:
 * how many rows of each kind exist (to prove a refusal created nothing) and the audit rows
 * appended since a point (to prove they are refusals and that they extend the chain). Everything
 * else in those suites goes through HTTP or the CLI. Portable SQL (src/db/sql.ts): both engines.
 */
import { rowMac, type AuditRow } from '../../src/store/audit-chain.js';
import type { TestApp } from './app.js';

/** Row counts by kind: oidc-provider models by name (Client, Grant, AuthorizationCode, …) and P's own tables. */
export type RowCounts = Record<string, number>;

/**
 * P's own tables whose rows a request can create (the audit log is checked apart). Not
 * upstream_revocations: a refused replay's cascade moves its upstream token there (upstream_tokens
 * shrinks, which the suites allow) and the request's after-commit step empties it again once U
 * answers, in the background — a queue, not a row the request created.
 */
const TABLES = ['consents', 'clients_meta', 'upstream_transactions', 'upstream_tokens', 'browser_sessions', 'admin_sessions', 'mcp_sessions'] as const;

/** The oidc-provider models whose creation a refusal must never cause. */
export const CREDENTIAL_MODELS = ['Client', 'Grant', 'AuthorizationCode', 'AccessToken', 'RefreshToken'] as const;

export async function rowCounts(app: TestApp): Promise<RowCounts> {
  const sql = app.runtime.sql;
  const counts: RowCounts = { Client: 0, Grant: 0, AuthorizationCode: 0, AccessToken: 0, RefreshToken: 0, Interaction: 0, Session: 0 };
  for (const row of await sql.all<{ model: string; n: number | string }>('SELECT model, count(*) AS n FROM oidc_models GROUP BY model')) counts[row.model] = Number(row.n);
  for (const table of TABLES) counts[table] = Number((await sql.one<{ n: number | string }>(`SELECT count(*) AS n FROM ${table}`))?.n ?? 0);
  return counts;
}

/** The audit chain's head after the pending group commit (0 and '' when empty). */
export async function auditHead(app: TestApp): Promise<{ seq: number; hash: string }> {
  await app.runtime.audit.flush();
  const tip = await app.runtime.stores.auditLog.tip();
  return tip ? { seq: tip.seq, hash: tip.hash } : { seq: 0, hash: '0'.repeat(64) };
}

/**
 * The rows appended after `from`, each checked as `audit verify` checks it (src/audit/verify.ts
 * `step`): the next sequence number, linked to its predecessor, MAC'd with the current audit key.
 * Throws naming the first row that is not. Incremental, so it can run after every fuzz case.
 */
export async function auditRowsSince(app: TestApp, from: { seq: number; hash: string }): Promise<Pick<AuditRow, 'seq' | 'event' | 'outcome' | 'reason' | 'details' | 'hash'>[]> {
  await app.runtime.audit.flush();
  const key = app.runtime.keys.auditKey;
  const rows = (await app.runtime.sql.all<AuditRow>('SELECT * FROM audit_log WHERE seq > ? ORDER BY seq', [from.seq])).map((r) => ({ ...r, seq: Number(r.seq) }));
  let prev = from.hash;
  let expected = from.seq + 1;
  for (const row of rows) {
    if (row.seq !== expected) throw new Error(`audit chain: row ${expected} is missing (next is ${row.seq})`);
    if (row.prev_hash !== prev) throw new Error(`audit chain: row ${row.seq} does not link to row ${row.seq - 1}`);
    if (row.key_id !== key.kid || rowMac(key, prev, row) !== row.hash) throw new Error(`audit chain: row ${row.seq} does not verify under the current audit key`);
    prev = row.hash;
    expected += 1;
  }
  return rows;
}
