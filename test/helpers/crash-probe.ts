/**
 * The ONE place where the crash and soak suites read P's database directly (everything else
 * goes through HTTP and the CLI). It answers what a black box cannot:
 * - `halfDone()`: state that a crash must never leave usable — a code or token whose grant has
 *   no consent, a code or token of a revoked consent, a token or code whose grant is gone, an
 *   active consent without its grant;
 * - `auditSince(seq)`: which request ids the audit log holds (answered decisions must all be
 *   there; gateway records may miss the group-commit window);
 * - `consentsOf(clientId)`, `tip()`, `bytes()` (database size: the SQLite files, or
 *   pg_database_size on PostgreSQL).
 * Both engines, through the Sql driver (portable SQL): a second connection while P runs, as the
 * CLI opens one. (test/helpers/db-probe.ts is the fuzz and fault suites' in-process probe.)
 */
import { statSync } from 'node:fs';
import type { Sql } from '../../src/db/sql.js';
import { openSqliteSql } from '../../src/db/sqlite-sql.js';
import { openPgSql } from '../../src/db/pg-sql.js';

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
  tip(): Promise<number>;
  auditSince(seq: number): Promise<AuditTrace[]>;
  consentsOf(clientId: string): Promise<ConsentState[]>;
  halfDone(): Promise<string[]>;
  bytes(): Promise<number>;
  close(): Promise<void>;
}

const TOKEN_MODELS = "('AuthorizationCode', 'AccessToken', 'RefreshToken')";

export async function openProbe(env: Record<string, string>): Promise<DbProbe> {
  const path = env.DATABASE_PATH as string;
  const sql: Sql = env.DATABASE_URL ? openPgSql({ url: env.DATABASE_URL, poolMax: 2 }) : openSqliteSql(path, { mustExist: true });
  const now = () => Date.now();
  const pairs = (query: string) => sql.all<{ model: string; grant_id: string | null }>(query);
  return {
    tip: async () => Number((await sql.one<{ n: number | null }>('SELECT max(seq) AS n FROM audit_log'))?.n ?? 0),
    auditSince: async (seq) => (await sql.all<AuditTrace>('SELECT seq, event, request_id FROM audit_log WHERE seq > ? ORDER BY seq', [seq])).map((r) => ({ ...r, seq: Number(r.seq) })),
    consentsOf: (clientId) => sql.all<ConsentState>('SELECT id, grant_id, revoked_at, revoked_reason FROM consents WHERE client_id = ? ORDER BY id', [clientId]),
    async halfDone() {
      const problems: string[] = [];
      const live = `(m.expires_at IS NULL OR m.expires_at > ${now()})`;
      for (const o of await pairs(`SELECT m.model, m.grant_id FROM oidc_models m LEFT JOIN consents c ON c.grant_id = m.grant_id WHERE m.model IN ${TOKEN_MODELS} AND ${live} AND c.id IS NULL`)) {
        problems.push(`${o.model} of grant ${o.grant_id} has no consent`);
      }
      for (const r of await pairs(`SELECT m.model, m.grant_id FROM oidc_models m JOIN consents c ON c.grant_id = m.grant_id WHERE m.model IN ${TOKEN_MODELS} AND ${live} AND c.revoked_at IS NOT NULL`)) {
        problems.push(`${r.model} of grant ${r.grant_id} survives its revoked consent`);
      }
      for (const g of await pairs(`SELECT m.model, m.grant_id FROM oidc_models m LEFT JOIN oidc_models g ON g.model = 'Grant' AND g.key = m.grant_id WHERE m.model IN ${TOKEN_MODELS} AND ${live} AND g.key IS NULL`)) {
        problems.push(`${g.model} of grant ${g.grant_id} outlives its grant`);
      }
      const hollow = await sql.all<{ id: number; grant_id: string }>("SELECT c.id, c.grant_id FROM consents c LEFT JOIN oidc_models g ON g.model = 'Grant' AND g.key = c.grant_id WHERE c.revoked_at IS NULL AND g.key IS NULL");
      for (const h of hollow) problems.push(`active consent ${h.id} has no grant ${h.grant_id}`);
      return problems;
    },
    async bytes() {
      if (sql.engine === 'postgres') return Number((await sql.one<{ n: number }>('SELECT pg_database_size(current_database()) AS n'))?.n ?? 0);
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
    close: () => sql.close(),
  };
}
