/**
 * consents table: approvals given on P's consent page. Rows are never deleted: a revoked or
 * superseded consent stays as history (the admin and account pages show it). Each row records
 * which browser approved it (`browser_hash`, SHA-256 of the `__Host-mcp-browser` id; CONS-02,
 * CONS-16). The decision whether a consent covers a request — and for which browser — lives in
 * src/flow/4-consent.ts, not here.
 */
import type { Db } from '../db/open.js';

export interface ConsentKey {
  subject: string;
  clientId: string;
  redirectUri: string;
  resource: string;
}

export interface Consent {
  id: number;
  subject: string;
  client_id: string;
  redirect_uri: string;
  resource: string;
  scopes: string;
  upstream_scopes: string;
  granted_at: number;
  expires_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
  grant_id: string;
  last_used_at: number | null;
  /** SHA-256 of the approving browser's id (CONS-02/16); NULL for consents from before 0009 */
  browser_hash: string | null;
}

export interface NewConsent extends ConsentKey {
  scopes: readonly string[];
  upstreamScopes: readonly string[];
  grantedAt: number;
  expiresAt: number;
  grantId: string;
  /** SHA-256 of the approving browser's id, when it is known */
  browserHash: string | null;
}

export function normaliseScopes(scopes: readonly string[]): string {
  return [...new Set(scopes.filter(Boolean))].sort().join(' ');
}

export interface ConsentListFilter {
  subject?: string | undefined;
  clientId?: string | undefined;
  /** only active consents (unrevoked, unexpired: src/consent/status.ts) */
  status?: 'active';
  limit?: number;
  offset?: number;
}

/**
 * "Active" in SQL, for one `?` parameter (now, ms): the rule of src/consent/status.ts
 * (`consentStatus(c, now) === 'active'`); test/unit/consent-status.test.ts keeps the two equal.
 */
export const LIVE_CONSENT_SQL = 'revoked_at IS NULL AND expires_at > ?';

export interface ConsentLifetime {
  revoked_at: number | null;
  expires_at: number;
}

function prepareStatements(db: Db) {
  return {
    latest: db.prepare(`SELECT * FROM consents WHERE subject = ? AND client_id = ? AND redirect_uri = ? AND resource = ?
    ORDER BY id DESC LIMIT 1`),
    unrevoked: db.prepare(`SELECT * FROM consents WHERE subject = ? AND client_id = ? AND redirect_uri = ? AND resource = ?
    AND revoked_at IS NULL`),
    insert: db.prepare(`INSERT INTO consents (subject, client_id, redirect_uri, resource, scopes, upstream_scopes, granted_at, expires_at, grant_id, browser_hash)
    VALUES (@subject, @clientId, @redirectUri, @resource, @scopes, @upstreamScopes, @grantedAt, @expiresAt, @grantId, @browserHash)`),
    byGrant: db.prepare('SELECT * FROM consents WHERE grant_id = ?'),
    byId: db.prepare('SELECT * FROM consents WHERE id = ?'),
    revoke: db.prepare('UPDATE consents SET revoked_at = ?, revoked_reason = ? WHERE grant_id = ? AND revoked_at IS NULL'),
    unrevokedByClient: db.prepare('SELECT * FROM consents WHERE client_id = ? AND revoked_at IS NULL'),
    touch: db.prepare('UPDATE consents SET last_used_at = ? WHERE grant_id = ?'),
    lifetime: db.prepare('SELECT revoked_at, expires_at FROM consents WHERE grant_id = ?'),
  };
}

/** The consents table's reads and writes; the statements are prepared once, in the constructor. */
export class ConsentStore {
  private readonly stmt: ReturnType<typeof prepareStatements>;

  constructor(private readonly db: Db) {
    this.stmt = prepareStatements(db);
  }

  /** The most recent consent for the key, active or not. */
  latest(key: ConsentKey): Consent | undefined {
    return this.stmt.latest.get(key.subject, key.clientId, key.redirectUri, key.resource) as Consent | undefined;
  }

  /** The unrevoked consent for the key, expired or not (at most one: a newer approval supersedes it). */
  unrevoked(key: ConsentKey): Consent | undefined {
    return this.stmt.unrevoked.get(key.subject, key.clientId, key.redirectUri, key.resource) as Consent | undefined;
  }

  insert(consent: NewConsent): Consent {
    const { lastInsertRowid } = this.stmt.insert.run({
      ...consent,
      scopes: normaliseScopes(consent.scopes),
      upstreamScopes: consent.upstreamScopes.join(' '),
    });
    return this.stmt.byId.get(lastInsertRowid) as Consent;
  }

  byGrant(grantId: string): Consent | undefined {
    return this.stmt.byGrant.get(grantId) as Consent | undefined;
  }

  byId(id: number): Consent | undefined {
    return this.stmt.byId.get(id) as Consent | undefined;
  }

  /** Mark revoked; true if it was active. */
  revoke(grantId: string, reason: string, now = Date.now()): boolean {
    return this.stmt.revoke.run(now, reason, grantId).changes === 1;
  }

  /** Every unrevoked consent of a client, expired or not (disable, delete, idle expiry revoke them all). */
  unrevokedForClient(clientId: string): Consent[] {
    return this.stmt.unrevokedByClient.all(clientId) as Consent[];
  }

  /** Newest first (admin pages, /account, CLI). */
  list(filter: ConsentListFilter = {}, now = Date.now()): Consent[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.subject) {
      where.push('subject = ?');
      params.push(filter.subject);
    }
    if (filter.clientId) {
      where.push('client_id = ?');
      params.push(filter.clientId);
    }
    if (filter.status === 'active') {
      where.push(LIVE_CONSENT_SQL);
      params.push(now);
    }
    const sql = `SELECT * FROM consents ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ? OFFSET ?`;
    return this.db.prepare(sql).all(...params, filter.limit ?? 100, filter.offset ?? 0) as Consent[];
  }

  countActive(now = Date.now()): number {
    return (this.db.prepare(`SELECT count(*) AS n FROM consents WHERE ${LIVE_CONSENT_SQL}`).get(now) as { n: number }).n;
  }

  /** The grant's consent's revocation and expiry (the gateway decides with src/consent/status.ts). */
  lifetime(grantId: string): ConsentLifetime | undefined {
    return this.stmt.lifetime.get(grantId) as ConsentLifetime | undefined;
  }

  touch(grantId: string, now = Date.now()): void {
    this.stmt.touch.run(now, grantId);
  }
}

export function createConsentStore(db: Db): ConsentStore {
  return new ConsentStore(db);
}
