/**
 * clients_meta table: provenance and lifecycle of registered clients (REG-11, CONS-19).
 * `last_used_at` is written at most once per USE_WRITE_INTERVAL_MS per client, so the token
 * endpoint and the gateway do not write on every request.
 */
import type { Db } from '../db/open.js';
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
}

export interface ClientListFilter {
  /** substring of the name, client id or a redirect host */
  q?: string | undefined;
  status?: 'active' | 'disabled' | undefined;
  limit?: number;
  offset?: number;
}

export interface ClientListRow extends ClientMeta {
  active_consents: number;
}

function prepareStatements(db: Db) {
  return {
    insert: db.prepare(`INSERT OR REPLACE INTO clients_meta
    (client_id, registered_at, ip, user_agent, client_name, redirect_hosts, last_used_at, disabled_at)
    VALUES (@client_id, @registered_at, @ip, @user_agent, @client_name, @redirect_hosts, NULL, NULL)`),
    touch: db.prepare('UPDATE clients_meta SET last_used_at = ? WHERE client_id = ?'),
    get: db.prepare('SELECT * FROM clients_meta WHERE client_id = ?'),
    idle: db.prepare('SELECT client_id FROM clients_meta WHERE coalesce(last_used_at, registered_at) < ?'),
    remove: db.prepare('DELETE FROM clients_meta WHERE client_id = ?'),
    setDisabled: db.prepare('UPDATE clients_meta SET disabled_at = ? WHERE client_id = ?'),
    disabled: db.prepare('SELECT disabled_at FROM clients_meta WHERE client_id = ?').pluck(),
  };
}

/** The clients_meta table's reads and writes; the statements are prepared once, in the constructor. */
export class ClientsMetaStore {
  private readonly stmt: ReturnType<typeof prepareStatements>;
  /** when this process last wrote each client's last_used_at */
  private readonly lastWrite = new Map<string, number>();

  constructor(private readonly db: Db) {
    this.stmt = prepareStatements(db);
  }

  record(meta: Omit<ClientMeta, 'last_used_at' | 'disabled_at'>): void {
    this.stmt.insert.run(meta);
  }

  /** Note a use (authorization, token, gateway call); throttled. */
  touch(clientId: string, now = Date.now()): void {
    const previous = this.lastWrite.get(clientId);
    if (previous !== undefined && now - previous < USE_WRITE_INTERVAL_MS) return;
    this.lastWrite.set(clientId, now);
    this.stmt.touch.run(now, clientId);
  }

  get(clientId: string): ClientMeta | undefined {
    return this.stmt.get.get(clientId) as ClientMeta | undefined;
  }

  /** Clients unused since `before` (ms). */
  idleSince(before: number): string[] {
    return (this.stmt.idle.all(before) as { client_id: string }[]).map((r) => r.client_id);
  }

  remove(clientId: string): void {
    this.lastWrite.delete(clientId);
    this.stmt.remove.run(clientId);
  }

  /** Newest first, with the number of active consents (admin pages, CLI). */
  /** `active_consents` counts active consents (src/consent/status.ts) of each client. */
  list(filter: ClientListFilter = {}, now = Date.now()): ClientListRow[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.q) {
      where.push("(m.client_name LIKE ? ESCAPE '\\' OR m.client_id LIKE ? ESCAPE '\\' OR m.redirect_hosts LIKE ? ESCAPE '\\')");
      const like = `%${filter.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      params.push(like, like, like);
    }
    if (filter.status === 'active') where.push('m.disabled_at IS NULL');
    if (filter.status === 'disabled') where.push('m.disabled_at IS NOT NULL');
    const sql = `SELECT m.*, (SELECT count(*) FROM consents c WHERE c.client_id = m.client_id AND ${LIVE_CONSENT_SQL}) AS active_consents
        FROM clients_meta m ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY m.registered_at DESC LIMIT ? OFFSET ?`;
    return this.db.prepare(sql).all(now, ...params, filter.limit ?? 100, filter.offset ?? 0) as ClientListRow[];
  }

  count(): { total: number; disabled: number } {
    return this.db.prepare('SELECT count(*) AS total, count(disabled_at) AS disabled FROM clients_meta').get() as { total: number; disabled: number };
  }

  isDisabled(clientId: string): boolean {
    return typeof this.stmt.disabled.get(clientId) === 'number';
  }

  setDisabled(clientId: string, disabledAt: number | null): void {
    this.stmt.setDisabled.run(disabledAt, clientId);
  }
}

export function createClientsMetaStore(db: Db): ClientsMetaStore {
  return new ClientsMetaStore(db);
}
