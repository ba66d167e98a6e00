/**
 * clients_meta table: provenance and lifecycle of registered clients (REG-11, CONS-19), and for
 * Client ID Metadata Document clients (kind 'cimd', issue 12) the document URL, last fetch, cache
 * expiry, consecutive failures and last failure (migration 0012 / postgres 0002).
 * `last_used_at` is written at most once per USE_WRITE_INTERVAL_MS per client, so the token
 * endpoint and the gateway do not write on every request.
 */
import { likePattern, type Sql } from '../db/sql.js';
import { LIVE_CONSENT_SQL } from './consents.js';

/** Precision of last_used_at; idle expiry is measured in days. */
export const USE_WRITE_INTERVAL_MS = 60_000;

export interface ClientMeta {
  client_id: string;
  registered_at: number;
  ip: string | null;
  user_agent: string | null;
  client_name: string | null;
  redirect_hosts: string;
  last_used_at: number | null;
  disabled_at: number | null;
  /** 'dcr' (POST /register) or 'cimd' (an https client_id whose document P fetched) */
  kind: 'dcr' | 'cimd';
  cimd_url: string | null;
  cimd_fetched_at: number | null;
  cimd_expires_at: number | null;
  cimd_failures: number;
  cimd_last_error: string | null;
}

/** What a successful CIMD fetch records (src/cimd/clients.ts). */
export interface CimdFetchRecord {
  client_id: string;
  client_name: string;
  redirect_hosts: string;
  ip: string | null;
  user_agent: string | null;
  fetchedAt: number;
  expiresAt: number;
}

export interface ClientListFilter {
  /** substring of the name, client id or a redirect host */
  q?: string | undefined;
  status?: 'active' | 'disabled' | undefined;
  /** 'dcr' or 'cimd' clients only */
  kind?: 'dcr' | 'cimd' | undefined;
  limit?: number;
  offset?: number;
}

export interface ClientListRow extends ClientMeta {
  active_consents: number;
}

const INSERT_COLUMNS = 'client_id, registered_at, ip, user_agent, client_name, redirect_hosts, last_used_at, disabled_at';
const COLUMNS = `${INSERT_COLUMNS}, kind, cimd_url, cimd_fetched_at, cimd_expires_at, cimd_failures, cimd_last_error`;
const M_COLUMNS = COLUMNS.split(', ')
  .map((c) => `m.${c}`)
  .join(', ');

/**
 * PostgreSQL: a use is noted unless the client's row is locked — then it is skipped, not waited
 * for. An approval in flight holds the row (FOR SHARE, src/consent/record.ts) and may go on to
 * delete the refresh token a /token transaction holds while noting its use: waiting here closed a
 * deadlock (review 2026-12-07). A use noted at the next request is as good.
 */
const TOUCH_UNLESS_LOCKED = 'UPDATE clients_meta SET last_used_at = ? WHERE client_id = (SELECT client_id FROM clients_meta WHERE client_id = ? FOR NO KEY UPDATE SKIP LOCKED)';

/** The clients_meta table's reads and writes. */
export class ClientsMetaStore {
  /** when this process last wrote each client's last_used_at */
  private readonly lastWrite = new Map<string, number>();

  constructor(private readonly sql: Sql) {}

  /** The client's provenance; a client registered again under the same id starts over (last use and disabled cleared). */
  async record(meta: Pick<ClientMeta, 'client_id' | 'registered_at' | 'ip' | 'user_agent' | 'client_name' | 'redirect_hosts'>): Promise<void> {
    await this.sql.runLater(
      `INSERT INTO clients_meta (${INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)
      ON CONFLICT (client_id) DO UPDATE SET registered_at = excluded.registered_at, ip = excluded.ip, user_agent = excluded.user_agent,
        client_name = excluded.client_name, redirect_hosts = excluded.redirect_hosts, last_used_at = NULL, disabled_at = NULL`,
      [meta.client_id, meta.registered_at, meta.ip, meta.user_agent, meta.client_name, meta.redirect_hosts],
    );
  }

  /**
   * A CIMD client's document was fetched and accepted: the row is created (first use) or its
   * name, redirect hosts and fetch columns follow the document. Its first-seen time, last use and
   * an admin's disabling are kept (a re-fetch never re-enables a client).
   */
  async recordCimdFetch(r: CimdFetchRecord): Promise<void> {
    await this.sql.run(
      `INSERT INTO clients_meta (${INSERT_COLUMNS}, kind, cimd_url, cimd_fetched_at, cimd_expires_at, cimd_failures, cimd_last_error)
      VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, 'cimd', ?, ?, ?, 0, NULL)
      ON CONFLICT (client_id) DO UPDATE SET client_name = excluded.client_name, redirect_hosts = excluded.redirect_hosts, kind = 'cimd',
        cimd_url = excluded.cimd_url, cimd_fetched_at = excluded.cimd_fetched_at, cimd_expires_at = excluded.cimd_expires_at, cimd_failures = 0, cimd_last_error = NULL`,
      [r.client_id, r.fetchedAt, r.ip, r.user_agent, r.client_name, r.redirect_hosts, r.client_id, r.fetchedAt, r.expiresAt],
    );
  }

  /** A fetch of a known CIMD client's document failed: counted, with its reason code. */
  async recordCimdFailure(clientId: string, at: number, reason: string): Promise<void> {
    await this.sql.run("UPDATE clients_meta SET cimd_failures = cimd_failures + 1, cimd_last_error = ?, cimd_fetched_at = ? WHERE client_id = ? AND kind = 'cimd'", [
      reason.slice(0, 200),
      at,
      clientId,
    ]);
  }

  /** Note a use (authorization, token, gateway call); throttled per process. */
  async touch(clientId: string, now = Date.now()): Promise<void> {
    const previous = this.lastWrite.get(clientId);
    if (previous !== undefined && now - previous < USE_WRITE_INTERVAL_MS) return;
    this.lastWrite.set(clientId, now);
    await this.sql.runIfFree(this.sql.engine === 'postgres' ? TOUCH_UNLESS_LOCKED : 'UPDATE clients_meta SET last_used_at = ? WHERE client_id = ?', [now, clientId]);
  }

  get(clientId: string): Promise<ClientMeta | undefined> {
    return this.sql.one<ClientMeta>(`SELECT ${COLUMNS} FROM clients_meta WHERE client_id = ?`, [clientId]);
  }

  /** Clients unused since `before` (ms). */
  async idleSince(before: number): Promise<string[]> {
    // A disabled CIMD client is kept: its client_id is a URL anyone can present again, and deleting
    // the row would forget that an admin disabled it (the next /authorize would store it anew).
    const sql = "SELECT client_id FROM clients_meta WHERE coalesce(last_used_at, registered_at) < ? AND NOT (kind = 'cimd' AND disabled_at IS NOT NULL)";
    return (await this.sql.all<{ client_id: string }>(sql, [before])).map((r) => r.client_id);
  }

  async remove(clientId: string): Promise<void> {
    this.lastWrite.delete(clientId);
    await this.sql.run('DELETE FROM clients_meta WHERE client_id = ?', [clientId]);
  }

  /**
   * Newest first, with the number of active consents (src/consent/status.ts) of each client
   * (admin pages, CLI). `q` matches the name, client id or a redirect host, ASCII case-insensitively.
   */
  list(filter: ClientListFilter = {}, now = Date.now()): Promise<ClientListRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.q) {
      where.push("(lower(m.client_name) LIKE ? ESCAPE '\\' OR lower(m.client_id) LIKE ? ESCAPE '\\' OR lower(m.redirect_hosts) LIKE ? ESCAPE '\\')");
      const like = likePattern(filter.q);
      params.push(like, like, like);
    }
    if (filter.status === 'active') where.push('m.disabled_at IS NULL');
    if (filter.status === 'disabled') where.push('m.disabled_at IS NOT NULL');
    if (filter.kind) {
      where.push('m.kind = ?');
      params.push(filter.kind);
    }
    const sql = `SELECT ${M_COLUMNS}, (SELECT count(*) FROM consents c WHERE c.client_id = m.client_id AND ${LIVE_CONSENT_SQL}) AS active_consents
        FROM clients_meta m ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY m.registered_at DESC LIMIT ? OFFSET ?`;
    return this.sql.all<ClientListRow>(sql, [now, ...params, filter.limit ?? 100, filter.offset ?? 0]);
  }

  async count(): Promise<{ total: number; disabled: number }> {
    return (await this.sql.one<{ total: number; disabled: number }>('SELECT count(*) AS total, count(disabled_at) AS disabled FROM clients_meta')) ?? { total: 0, disabled: 0 };
  }

  /**
   * Inside a transaction: the client's row (undefined when it has none), locked until the
   * transaction ends against a disabling or a deletion (PostgreSQL `FOR SHARE`; SQLite's write
   * transaction already excludes them) — src/consent/record.ts.
   */
  lockedStanding(clientId: string): Promise<{ disabled_at: number | null } | undefined> {
    const lock = this.sql.engine === 'postgres' ? ' FOR SHARE' : '';
    return this.sql.one<{ disabled_at: number | null }>(`SELECT disabled_at FROM clients_meta WHERE client_id = ?${lock}`, [clientId]);
  }

  async isDisabled(clientId: string): Promise<boolean> {
    const row = await this.sql.one<{ disabled_at: number | null }>('SELECT disabled_at FROM clients_meta WHERE client_id = ?', [clientId]);
    return typeof row?.disabled_at === 'number';
  }

  /** Disable (a client already disabled keeps the time it was first disabled at) or, with null, enable. */
  async setDisabled(clientId: string, disabledAt: number | null): Promise<void> {
    if (disabledAt === null) await this.sql.run('UPDATE clients_meta SET disabled_at = NULL WHERE client_id = ?', [clientId]);
    else await this.sql.run('UPDATE clients_meta SET disabled_at = coalesce(disabled_at, ?) WHERE client_id = ?', [disabledAt, clientId]);
  }
}

export function createClientsMetaStore(sql: Sql): ClientsMetaStore {
  return new ClientsMetaStore(sql);
}
