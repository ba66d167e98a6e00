/**
 * consents table: approvals given on P's consent page. Rows are never deleted: a revoked or
 * superseded consent stays as history (the admin and account pages show it). Each row records
 * which browser approved it (`browser_hash`, SHA-256 of the `__Host-mcp-browser` id; CONS-02,
 * CONS-16). The decision whether a consent covers a request — and for which browser — lives in
 * src/flow/4-consent.ts, not here.
 */
import type { Maybe, Sql } from '../db/sql.js';

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
/** How long settledRevocation waits for a transaction still changing the consent's row (PostgreSQL). */
export const SETTLED_WAIT_MS = 5_000;

export const LIVE_CONSENT_SQL = 'revoked_at IS NULL AND expires_at > ?';

export interface ConsentLifetime {
  revoked_at: number | null;
  expires_at: number;
}

/** A consent's lifetime with its client's standing, as the gateway's token check reads them together. */
export interface ConsentStanding extends ConsentLifetime {
  /** when an admin disabled the consent's client; null when enabled (or no clients_meta row) */
  client_disabled_at: number | null;
  /** 'dcr' or 'cimd'; null when the client has no clients_meta row */
  client_kind: string | null;
}

const COLUMNS = 'id, subject, client_id, redirect_uri, resource, scopes, upstream_scopes, granted_at, expires_at, revoked_at, revoked_reason, grant_id, last_used_at, browser_hash';
const KEY = 'subject = ? AND client_id = ? AND redirect_uri = ? AND resource = ?';
const keyParams = (key: ConsentKey) => [key.subject, key.clientId, key.redirectUri, key.resource];

/** The consents table's reads and writes. */
export class ConsentStore {
  constructor(private readonly sql: Sql) {}

  /** The most recent consent for the key, active or not. */
  latest(key: ConsentKey): Promise<Consent | undefined> {
    return this.sql.one<Consent>(`SELECT ${COLUMNS} FROM consents WHERE ${KEY} ORDER BY id DESC LIMIT 1`, keyParams(key));
  }

  /** The unrevoked consent for the key, expired or not (at most one: a newer approval supersedes it). */
  unrevoked(key: ConsentKey): Promise<Consent | undefined> {
    return this.sql.one<Consent>(`SELECT ${COLUMNS} FROM consents WHERE ${KEY} AND revoked_at IS NULL`, keyParams(key));
  }

  /**
   * Inside the approval's transaction, as its FIRST lock: serialize with every other approval of
   * the same key until the transaction ends (PostgreSQL: a transaction-scoped advisory lock on a
   * hash of the key, `Sql.lock`; SQLite: a no-op, BEGIN IMMEDIATE already serializes writers).
   * Without it two approvals of one key at once (two tabs, two browsers) both read the same
   * `unrevoked` consent (or none) under READ COMMITTED, and the second insert failed on the unique
   * index `consents_active_key` (23505: an error page); now the second waits, then finds the
   * first's consent and supersedes it, as on SQLite. Taken before every row lock (clients_meta's,
   * the cascade's), and no other transaction takes it: it adds no lock cycle.
   */
  async lockKey(key: ConsentKey): Promise<void> {
    await this.sql.lock(`consent-key:${JSON.stringify(keyParams(key))}`);
  }

  async insert(consent: NewConsent): Promise<Consent> {
    const row = await this.sql.one<Consent>(
      `INSERT INTO consents (subject, client_id, redirect_uri, resource, scopes, upstream_scopes, granted_at, expires_at, grant_id, browser_hash)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ${COLUMNS}`,
      [...keyParams(consent), normaliseScopes(consent.scopes), consent.upstreamScopes.join(' '), consent.grantedAt, consent.expiresAt, consent.grantId, consent.browserHash],
    );
    return row as Consent;
  }

  byGrant(grantId: string): Promise<Consent | undefined> {
    return this.sql.one<Consent>(`SELECT ${COLUMNS} FROM consents WHERE grant_id = ?`, [grantId]);
  }

  /** byGrant, its row locked until the transaction ends (PostgreSQL; SQLite's write transaction already excludes every other writer). */
  lockedByGrant(grantId: string): Promise<Consent | undefined> {
    return this.sql.one<Consent>(`SELECT ${COLUMNS} FROM consents WHERE grant_id = ?${this.sql.engine === 'postgres' ? ' FOR UPDATE' : ''}`, [grantId]);
  }

  byId(id: number): Promise<Consent | undefined> {
    return this.sql.one<Consent>(`SELECT ${COLUMNS} FROM consents WHERE id = ?`, [id]);
  }

  /** Mark revoked; true if it was active. */
  async revoke(grantId: string, reason: string, now = Date.now()): Promise<boolean> {
    return (await this.sql.run('UPDATE consents SET revoked_at = ?, revoked_reason = ? WHERE grant_id = ? AND revoked_at IS NULL', [now, reason, grantId])).changes === 1;
  }

  /** Every unrevoked consent of a client, expired or not (disable, delete, idle expiry revoke them all). */
  unrevokedForClient(clientId: string): Promise<Consent[]> {
    return this.sql.all<Consent>(`SELECT ${COLUMNS} FROM consents WHERE client_id = ? AND revoked_at IS NULL ORDER BY id`, [clientId]);
  }

  /** Newest first (admin pages, /account, CLI). */
  list(filter: ConsentListFilter = {}, now = Date.now()): Promise<Consent[]> {
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
    const sql = `SELECT ${COLUMNS} FROM consents ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ? OFFSET ?`;
    return this.sql.all<Consent>(sql, [...params, filter.limit ?? 100, filter.offset ?? 0]);
  }

  async countActive(now = Date.now()): Promise<number> {
    return (await this.sql.one<{ n: number }>(`SELECT count(*) AS n FROM consents WHERE ${LIVE_CONSENT_SQL}`, [now]))?.n ?? 0;
  }

  /**
   * The grant's consent's revocation and expiry, and its client's disabled flag and kind, in one
   * read (the gateway decides with src/consent/status.ts and src/gateway/token-check.ts;
   * synchronous on SQLite when it can be). The flag moves the gateway generation (migration 0013 /
   * postgres 0005), so a cached answer never outlives a disabling.
   */
  standing(grantId: string): Maybe<ConsentStanding | undefined> {
    return this.sql.oneNow<ConsentStanding>(
      'SELECT c.revoked_at, c.expires_at, m.disabled_at AS client_disabled_at, m.kind AS client_kind FROM consents c LEFT JOIN clients_meta m ON m.client_id = c.client_id WHERE c.grant_id = ?',
      [grantId],
    );
  }

  /**
   * The grant's consent's revocation, read once every transaction still changing that row has
   * ended — on PostgreSQL `FOR SHARE` waits for one that is still committing (or rolling back),
   * at most SETTLED_WAIT_MS in every mode (the CLI's connections have no lock_timeout of their
   * own; a COMMIT that never reached the server leaves its lock until TCP gives up). How a
   * revocation whose COMMIT answer was lost learns what became of it (src/consent/revocation.ts).
   */
  async settledRevocation(grantId: string): Promise<Pick<Consent, 'revoked_at' | 'revoked_reason'> | undefined> {
    const read = 'SELECT revoked_at, revoked_reason FROM consents WHERE grant_id = ?';
    if (this.sql.engine !== 'postgres') return await this.sql.oneNow<Pick<Consent, 'revoked_at' | 'revoked_reason'>>(read, [grantId]);
    return await this.sql.transaction(async () => {
      await this.sql.one("SELECT set_config('lock_timeout', ?, true)", [String(SETTLED_WAIT_MS)]);
      return await this.sql.one<Pick<Consent, 'revoked_at' | 'revoked_reason'>>(`${read} FOR SHARE`, [grantId]);
    });
  }

  /**
   * Inside the revoking transaction: is this consent still due to the disabling of its client —
   * unrevoked, its client still disabled? On PostgreSQL the client's row is locked (FOR SHARE) until
   * the transaction ends, so an admin re-enabling the client waits, or is waited for; SQLite's
   * write transaction already excludes it. (It also asked that the consent be granted no later than
   * the disabling; but no approval of a disabled client is recorded (src/consent/record.ts), and one
   * the disabling waited for can carry a later time from another clock: its consent escaped
   * housekeeping when the disabling's own cascade was cut short — review 2026-12-07.)
   */
  async dueToDisabling(grantId: string): Promise<boolean> {
    const lock = this.sql.engine === 'postgres' ? ' FOR SHARE OF m' : '';
    const sql = `SELECT c.id FROM consents c JOIN clients_meta m ON m.client_id = c.client_id
      WHERE c.grant_id = ? AND c.revoked_at IS NULL AND m.disabled_at IS NOT NULL${lock}`;
    return (await this.sql.one(sql, [grantId])) !== undefined;
  }

  /** Disabled clients that still have unrevoked consents: a disabling whose cascade was cut short (housekeeping finishes it). */
  async disabledClientsWithUnrevoked(disabledBefore: number): Promise<string[]> {
    const rows = await this.sql.all<{ client_id: string }>(
      'SELECT m.client_id FROM clients_meta m WHERE m.disabled_at IS NOT NULL AND m.disabled_at < ? AND EXISTS (SELECT 1 FROM consents c WHERE c.client_id = m.client_id AND c.revoked_at IS NULL) ORDER BY m.client_id',
      [disabledBefore],
    );
    return rows.map((r) => r.client_id);
  }

  /** Grants of consents expired unrevoked whose upstream token P still keeps, oldest first (housekeeping ends them: Revocation.endExpired). */
  async expiredKeepingUpstreamToken(now: number, limit: number): Promise<string[]> {
    const rows = await this.sql.all<{ grant_id: string }>(
      'SELECT c.grant_id FROM consents c WHERE c.revoked_at IS NULL AND c.expires_at <= ? AND EXISTS (SELECT 1 FROM upstream_tokens u WHERE u.grant_id = c.grant_id) ORDER BY c.expires_at, c.id LIMIT ?',
      [now, limit],
    );
    return rows.map((r) => r.grant_id);
  }

  async touch(grantId: string, now = Date.now()): Promise<void> {
    await this.sql.runIfFree('UPDATE consents SET last_used_at = ? WHERE grant_id = ?', [now, grantId]);
  }
}

export function createConsentStore(sql: Sql): ConsentStore {
  return new ConsentStore(sql);
}
