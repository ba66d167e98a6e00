/**
 * The ONE place where the crash and soak suites read P's database directly (everything else
 * goes through HTTP and the CLI). It answers what a black box cannot:
 * - `halfDone()`: state that a crash must never leave usable — a code or token whose grant has
 *   no consent, a code or token of a revoked consent, a token or code whose grant is gone, an
 *   active consent without its grant;
 * - `auditSince(seq)`: which request ids the audit log holds (answered decisions must all be
 *   there; gateway records may miss the group-commit window);
 * - `consentsOf(clientId)`, `tip()`, `bytes()` (database size on disk).
 * SQLite only today (read through a second connection while P runs, as the CLI does). For
 * PostgreSQL (DATABASE_URL) this module is the one to adapt: the same queries through `pg`, and
 * `bytes()` as pg_database_size.
 */
import { statSync } from 'node:fs';
import { openDatabase, type Db } from '../../src/db/open.js';

export interface AuditTrace {
  seq: number;
  event: string;
  request_id: string | null;
}

export interface ConsentState {
  id: number;
  grant_id: string;
  revoked_at: number | null;
  revoked_reason: string | null;
}

export interface DbProbe {
  tip(): number;
  auditSince(seq: number): AuditTrace[];
  consentsOf(clientId: string): ConsentState[];
  halfDone(): string[];
  bytes(): number;
  close(): void;
}

const TOKEN_MODELS = "('AuthorizationCode', 'AccessToken', 'RefreshToken')";

export function openProbe(env: Record<string, string>): DbProbe {
  if (env.DATABASE_URL) throw new Error('db-probe: PostgreSQL is not supported yet (see the module comment)');
  const path = env.DATABASE_PATH as string;
  const db: Db = openDatabase(path, { mustExist: true });
  const now = () => Date.now();
  return {
    tip: () => (db.prepare('SELECT coalesce(max(seq), 0) FROM audit_log').pluck().get() as number) ?? 0,
    auditSince: (seq) => db.prepare('SELECT seq, event, request_id FROM audit_log WHERE seq > ? ORDER BY seq').all(seq) as AuditTrace[],
    consentsOf: (clientId) => db.prepare('SELECT id, grant_id, revoked_at, revoked_reason FROM consents WHERE client_id = ? ORDER BY id').all(clientId) as ConsentState[],
    halfDone() {
      const problems: string[] = [];
      const live = `(m.expires_at IS NULL OR m.expires_at > ${now()})`;
      const orphans = db
        .prepare(`SELECT m.model, m.grant_id FROM oidc_models m LEFT JOIN consents c ON c.grant_id = m.grant_id WHERE m.model IN ${TOKEN_MODELS} AND ${live} AND c.id IS NULL`)
        .all() as { model: string; grant_id: string | null }[];
      for (const o of orphans) problems.push(`${o.model} of grant ${o.grant_id} has no consent`);
      const revoked = db
        .prepare(`SELECT m.model, m.grant_id FROM oidc_models m JOIN consents c ON c.grant_id = m.grant_id WHERE m.model IN ${TOKEN_MODELS} AND ${live} AND c.revoked_at IS NOT NULL`)
        .all() as { model: string; grant_id: string }[];
      for (const r of revoked) problems.push(`${r.model} of grant ${r.grant_id} survives its revoked consent`);
      const grantless = db
        .prepare(`SELECT m.model, m.grant_id FROM oidc_models m LEFT JOIN oidc_models g ON g.model = 'Grant' AND g.key = m.grant_id WHERE m.model IN ${TOKEN_MODELS} AND ${live} AND g.key IS NULL`)
        .all() as { model: string; grant_id: string }[];
      for (const g of grantless) problems.push(`${g.model} of grant ${g.grant_id} outlives its grant`);
      const hollow = db
        .prepare("SELECT c.id, c.grant_id FROM consents c LEFT JOIN oidc_models g ON g.model = 'Grant' AND g.key = c.grant_id WHERE c.revoked_at IS NULL AND g.key IS NULL")
        .all() as { id: number; grant_id: string }[];
      for (const h of hollow) problems.push(`active consent ${h.id} has no grant ${h.grant_id}`);
      return problems;
    },
    bytes() {
      let total = 0;
      for (const suffix of ['', '-wal', '-shm']) {
        try {
          total += statSync(`${path}${suffix}`).size;
        } catch {
          // no such file
        }
      }
      return total;
    },
    close: () => db.close(),
  };
}
