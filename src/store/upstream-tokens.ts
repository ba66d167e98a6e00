/**
 * upstream_tokens table: the user's upstream tokens for one grant (UP-07/08), sealed with
 * AES-256-GCM and bound to the grant id as additional data, so a sealed token copied to another
 * grant's row does not open.
 */
import type { Db } from '../db/open.js';
import type { KeyRing } from '../crypto/keys.js';

export interface UpstreamTokenSet {
  accessToken: string;
  refreshToken?: string | undefined;
  /** ms since epoch */
  expiresAt?: number | undefined;
  scopes?: string | undefined;
}

export function createUpstreamTokenStore(db: Db, keys: KeyRing) {
  const upsert = db.prepare(`INSERT INTO upstream_tokens (grant_id, subject, sealed_access, sealed_refresh, expires_at, scopes, updated_at)
    VALUES (@grantId, @subject, @access, @refresh, @expiresAt, @scopes, @now)
    ON CONFLICT (grant_id) DO UPDATE SET sealed_access = excluded.sealed_access, sealed_refresh = coalesce(excluded.sealed_refresh, upstream_tokens.sealed_refresh),
      expires_at = excluded.expires_at, scopes = coalesce(excluded.scopes, upstream_tokens.scopes), updated_at = excluded.updated_at`);
  const get = db.prepare('SELECT * FROM upstream_tokens WHERE grant_id = ?');
  const remove = db.prepare('DELETE FROM upstream_tokens WHERE grant_id = ?');
  const ctx = (grantId: string, kind: string) => `upstream_token:${kind}:${grantId}`;

  return {
    save(grantId: string, subject: string, tokens: UpstreamTokenSet, now = Date.now()): void {
      upsert.run({
        grantId,
        subject,
        access: keys.seal(tokens.accessToken, ctx(grantId, 'access')),
        refresh: tokens.refreshToken ? keys.seal(tokens.refreshToken, ctx(grantId, 'refresh')) : null,
        expiresAt: tokens.expiresAt ?? null,
        scopes: tokens.scopes ?? null,
        now,
      });
    },
    /**
     * The tokens and expiry (the gateway's read, cached until the upstream tokens change). The
     * refresh token is opened too: the gateway must recognise it in R's responses (GW-13).
     */
    access(grantId: string): { accessToken: string; refreshToken: string | undefined; expiresAt: number | undefined } | undefined {
      const row = get.get(grantId) as { sealed_access: string; sealed_refresh: string | null; expires_at: number | null } | undefined;
      if (!row) return undefined;
      return {
        accessToken: keys.unseal(row.sealed_access, ctx(grantId, 'access')),
        refreshToken: row.sealed_refresh ? keys.unseal(row.sealed_refresh, ctx(grantId, 'refresh')) : undefined,
        expiresAt: row.expires_at ?? undefined,
      };
    },
    get(grantId: string): (UpstreamTokenSet & { subject: string }) | undefined {
      const row = get.get(grantId) as { subject: string; sealed_access: string; sealed_refresh: string | null; expires_at: number | null; scopes: string | null } | undefined;
      if (!row) return undefined;
      return {
        subject: row.subject,
        accessToken: keys.unseal(row.sealed_access, ctx(grantId, 'access')),
        refreshToken: row.sealed_refresh ? keys.unseal(row.sealed_refresh, ctx(grantId, 'refresh')) : undefined,
        expiresAt: row.expires_at ?? undefined,
        scopes: row.scopes ?? undefined,
      };
    },
    remove(grantId: string): void {
      remove.run(grantId);
    },
  };
}

export type UpstreamTokenStore = ReturnType<typeof createUpstreamTokenStore>;
