/**
 * upstream_revocations table (migrations 0015 / postgres 0006): the upstream tokens P has let go of
 * and U has not yet confirmed revoking (UP-08, RFC 7009). The sender and its retry policy are in
 * src/consent/upstream-revocations.ts; this module holds the SQL. A cascade moves its grant's
 * sealed upstream_tokens row here inside its own transaction (`moveFromTokens`), without opening
 * it: the row exists exactly when the revocation committed, whichever key sealed it.
 */
import type { Sql } from '../db/sql.js';
import type { KeyRing } from '../crypto/keys.js';
import { upstreamTokenContext, type UpstreamTokenSet } from './upstream-tokens.js';

export interface PendingRevocation {
  id: number;
  grant_id: string;
  subject: string;
  client_id: string | null;
  sealed_access: string;
  sealed_refresh: string | null;
  expires_at: number | null;
  created_at: number;
  attempts: number;
  next_at: number;
}

const COLUMNS = 'id, grant_id, subject, client_id, sealed_access, sealed_refresh, expires_at, created_at, attempts, next_at';
const TARGET = 'upstream_revocations (grant_id, subject, client_id, sealed_access, sealed_refresh, expires_at, created_at, attempts, next_at';
// PostgreSQL: the row deleted and copied in one statement, its latest version (a refresh's save of
// U's token that commits meanwhile is waited for, then moved: never the old token moved and the new
// one deleted). SQLite: copied then deleted; its writers are one at a time.
const MOVE_PG = `WITH gone AS (DELETE FROM upstream_tokens WHERE grant_id = ? RETURNING grant_id, subject, sealed_access, sealed_refresh, expires_at)
  INSERT INTO ${TARGET}) SELECT grant_id, subject, ?, sealed_access, sealed_refresh, expires_at, ?, 0, ? FROM gone`;
const COPY_SQLITE = `INSERT INTO ${TARGET}) SELECT grant_id, subject, ?, sealed_access, sealed_refresh, expires_at, ?, 0, ? FROM upstream_tokens WHERE grant_id = ?`;
const ADD = `INSERT INTO ${TARGET}, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`;

/** A row this process claimed: what `later` and `remove` act on, only while the claim still stands. */
export interface Claim {
  id: number;
  until: number;
}

export function createUpstreamRevocationStore(sql: Sql, keys: KeyRing) {
  return {
    /** Inside a cascade's transaction: the grant's upstream_tokens row moves here (deleted there), due at once; whether there was one. */
    async moveFromTokens(grantId: string, clientId: string | undefined, now: number): Promise<boolean> {
      if (sql.engine === 'postgres') return (await sql.run(MOVE_PG, [grantId, clientId ?? null, now, now])).changes > 0;
      const moved = await sql.run(COPY_SQLITE, [clientId ?? null, now, now, grantId]);
      await sql.run('DELETE FROM upstream_tokens WHERE grant_id = ?', [grantId]);
      return moved.changes > 0;
    },
    /** PostgreSQL: the grant's upstream_tokens row locked until the transaction ends, before `moveFromTokens` (the cascade's lock order: src/consent/revocation.ts). */
    async lockTokenRow(grantId: string): Promise<void> {
      if (sql.engine === 'postgres') await sql.one('SELECT grant_id FROM upstream_tokens WHERE grant_id = ? FOR UPDATE', [grantId]);
    },
    /** A token P never stored (a refresh's result for a grant revoked meanwhile) whose revocation at U failed: kept, sealed as upstream_tokens seals it, due at `nextAt`. */
    async add(grantId: string, who: { subject: string; clientId?: string | undefined }, tokens: UpstreamTokenSet, now: number, nextAt: number, error: string): Promise<void> {
      const access = keys.seal(tokens.accessToken, upstreamTokenContext(grantId, 'access'));
      const refresh = tokens.refreshToken ? keys.seal(tokens.refreshToken, upstreamTokenContext(grantId, 'refresh')) : null;
      await sql.run(ADD, [grantId, who.subject, who.clientId ?? null, access, refresh, tokens.expiresAt ?? null, now, nextAt, error]);
    },
    /** The grant's rows due at `now` (a cascade's, right after its commit; not one another process claimed meanwhile). */
    forGrant(grantId: string, now: number): Promise<PendingRevocation[]> {
      return sql.all<PendingRevocation>(`SELECT ${COLUMNS} FROM upstream_revocations WHERE grant_id = ? AND next_at <= ? ORDER BY id`, [grantId, now]);
    },
    /** Due at `now`, the longest waiting first. */
    due(now: number, limit: number): Promise<PendingRevocation[]> {
      return sql.all<PendingRevocation>(`SELECT ${COLUMNS} FROM upstream_revocations WHERE next_at <= ? ORDER BY next_at, id LIMIT ?`, [now, limit]);
    },
    /**
     * Claim a row read as due until `until`: only if it is still as read (its `next_at` unchanged)
     * and due at `now`, so one process asks U per attempt however many read it (replicas, a
     * cascade's own attempt and housekeeping), also one that read it after another claimed it. A
     * claimed row whose process dies is due again at `until`.
     */
    async claim(row: PendingRevocation, now: number, until: number): Promise<Claim | undefined> {
      const done = await sql.run('UPDATE upstream_revocations SET next_at = ?, attempts = attempts + 1 WHERE id = ? AND next_at = ? AND next_at <= ?', [until, row.id, row.next_at, now]);
      return done.changes === 1 ? { id: row.id, until } : undefined;
    },
    /** Due again at `nextAt`; `attempts` back by one when U was not asked. Nothing when the claim no longer stands. */
    async later(claim: Claim, nextAt: number, error: string, asked: boolean): Promise<void> {
      await sql.run('UPDATE upstream_revocations SET next_at = ?, last_error = ?, attempts = attempts - ? WHERE id = ? AND next_at = ?', [nextAt, error, asked ? 0 : 1, claim.id, claim.until]);
    },
    /** Done with (U answered, or given up): deleted while the claim still stands. */
    async remove(claim: Claim): Promise<void> {
      await sql.run('DELETE FROM upstream_revocations WHERE id = ? AND next_at = ?', [claim.id, claim.until]);
    },
    /** The tokens of a row; throws UnknownSealingKeyError when sealed under a key this process does not have. */
    open(row: PendingRevocation): UpstreamTokenSet {
      return {
        accessToken: keys.unseal(row.sealed_access, upstreamTokenContext(row.grant_id, 'access')),
        refreshToken: row.sealed_refresh ? keys.unseal(row.sealed_refresh, upstreamTokenContext(row.grant_id, 'refresh')) : undefined,
        expiresAt: row.expires_at ?? undefined,
      };
    },
    async count(): Promise<number> {
      return Number((await sql.one<{ n: number }>('SELECT count(*) AS n FROM upstream_revocations'))?.n ?? 0);
    },
  };
}

export type UpstreamRevocationStore = ReturnType<typeof createUpstreamRevocationStore>;
