/**
 * upstream_tokens table: the user's upstream tokens for one grant (UP-07/08), sealed with
 * AES-256-GCM and bound to the grant id as additional data, so a sealed token copied to another
 * grant's row does not open.
 */
import type { Maybe, Sql } from '../db/sql.js';
import type { KeyRing } from '../crypto/keys.js';

export interface UpstreamTokenSet {
  accessToken: string;
  refreshToken?: string | undefined;
  /** ms since epoch */
  expiresAt?: number | undefined;
  scopes?: string | undefined;
}

type Row = { subject: string; sealed_access: string; sealed_refresh: string | null; expires_at: number | null; scopes: string | null };

const UPSERT = `INSERT INTO upstream_tokens (grant_id, subject, sealed_access, sealed_refresh, expires_at, scopes, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (grant_id) DO UPDATE SET sealed_access = excluded.sealed_access, sealed_refresh = coalesce(excluded.sealed_refresh, upstream_tokens.sealed_refresh),
    expires_at = excluded.expires_at, scopes = coalesce(excluded.scopes, upstream_tokens.scopes), updated_at = excluded.updated_at`;
const SELECT = 'SELECT subject, sealed_access, sealed_refresh, expires_at, scopes FROM upstream_tokens WHERE grant_id = ?';
// Only over the row as it was read (its sealed access token, unique by its random nonce), never an insert.
const REPLACE = `UPDATE upstream_tokens SET sealed_access = ?, sealed_refresh = coalesce(?, sealed_refresh), expires_at = ?, scopes = coalesce(?, scopes), updated_at = ?
  WHERE grant_id = ? AND sealed_access = ?`;

export type UpstreamAccess = { accessToken: string; refreshToken: string | undefined; expiresAt: number | undefined };

/** A stored token set as read, with the version `replace` compares against. */
export type StoredUpstreamTokens = UpstreamTokenSet & { subject: string; version: string };

/** The additional data an upstream token of `grantId` is sealed with: a sealed token opens only as that grant's (also once moved to upstream_revocations). */
export const upstreamTokenContext = (grantId: string, kind: 'access' | 'refresh') => `upstream_token:${kind}:${grantId}`;

export function createUpstreamTokenStore(sql: Sql, keys: KeyRing) {
  const ctx = upstreamTokenContext;
  const open = (grantId: string, row: Row): UpstreamAccess => ({
    accessToken: keys.unseal(row.sealed_access, ctx(grantId, 'access')),
    refreshToken: row.sealed_refresh ? keys.unseal(row.sealed_refresh, ctx(grantId, 'refresh')) : undefined,
    expiresAt: row.expires_at ?? undefined,
  });

  /** The access and refresh token sealed for the grant's row (the sealed access token is the row's version). */
  const seal = (grantId: string, tokens: UpstreamTokenSet) => ({
    access: keys.seal(tokens.accessToken, ctx(grantId, 'access')),
    refresh: tokens.refreshToken ? keys.seal(tokens.refreshToken, ctx(grantId, 'refresh')) : null,
  });

  return {
    async save(grantId: string, subject: string, tokens: UpstreamTokenSet, now = Date.now()): Promise<void> {
      const { access, refresh } = seal(grantId, tokens);
      await sql.run(UPSERT, [grantId, subject, access, refresh, tokens.expiresAt ?? null, tokens.scopes ?? null, now]);
    },
    /**
     * The tokens and expiry (the gateway's read, cached until the upstream tokens change;
     * synchronous on SQLite when it can be). The refresh token is opened too: the gateway must
     * recognise it in R's responses (GW-13).
     */
    access(grantId: string): Maybe<UpstreamAccess | undefined> {
      const row = sql.oneNow<Row>(SELECT, [grantId]);
      return row instanceof Promise ? row.then((r) => r && open(grantId, r)) : row && open(grantId, row);
    },
    async get(grantId: string): Promise<StoredUpstreamTokens | undefined> {
      const row = await sql.one<Row>(SELECT, [grantId]);
      if (!row) return undefined;
      return { subject: row.subject, ...open(grantId, row), scopes: row.scopes ?? undefined, version: row.sealed_access };
    },
    /**
     * Replace the tokens only if the row still holds `version` (what `get` read): a refresh's
     * result never re-creates the row of a grant revoked meanwhile, nor overwrites another
     * writer's. Resolves with the new version, null when the row is gone or changed, and — with
     * `wait: false` — undefined when SQLite's write lock is taken (Sql.runIfFree: no busy wait).
     */
    async replace(grantId: string, version: string, tokens: UpstreamTokenSet, options: { wait: boolean }, now = Date.now()): Promise<string | null | undefined> {
      const { access, refresh } = seal(grantId, tokens);
      const params = [access, refresh, tokens.expiresAt ?? null, tokens.scopes ?? null, now, grantId, version];
      const done = options.wait ? await sql.run(REPLACE, params) : await sql.runIfFree(REPLACE, params);
      if (done === undefined) return undefined;
      return done.changes === 1 ? access : null;
    },
  };
}

export type UpstreamTokenStore = ReturnType<typeof createUpstreamTokenStore>;
