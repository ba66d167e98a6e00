/**
 * audit_log table: append (hash-chained, one immediate transaction per batch so concurrent
 * writers — the server and the CLI — never fork the chain) and read. There is no update or
 * delete path; the database triggers refuse them anyway.
 */
import type { Db } from '../db/open.js';
import { GENESIS_HASH, rowHash, type AuditRow } from '../audit/chain.js';

export interface NewAuditRow {
  ts: string;
  event: string;
  outcome: string;
  reason: string | null;
  subject: string | null;
  client_id: string | null;
  ip: string | null;
  request_id: string | null;
  details: string | null;
}

export interface AuditFilter {
  /** ISO timestamps, inclusive from, exclusive to */
  from?: string;
  to?: string;
  event?: string;
  outcome?: string;
  subject?: string;
  clientId?: string;
  requestId?: string;
  /** rows with seq below this (cursor for newest-first pages) */
  beforeSeq?: number;
  /** rows with seq above this (cursor for oldest-first export) */
  afterSeq?: number;
}

function where(filter: AuditFilter): { sql: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  const add = (clause: string, value: unknown) => {
    clauses.push(clause);
    params.push(value);
  };
  if (filter.from) add('ts >= ?', filter.from);
  if (filter.to) add('ts < ?', filter.to);
  if (filter.event) add('event = ?', filter.event);
  if (filter.outcome) add('outcome = ?', filter.outcome);
  if (filter.subject) add('subject = ?', filter.subject);
  if (filter.clientId) add('client_id = ?', filter.clientId);
  if (filter.requestId) add('request_id = ?', filter.requestId);
  if (filter.beforeSeq !== undefined) add('seq < ?', filter.beforeSeq);
  if (filter.afterSeq !== undefined) add('seq > ?', filter.afterSeq);
  return { sql: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

export function createAuditLogStore(db: Db) {
  const last = db.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1');
  const insert = db.prepare(`INSERT INTO audit_log
    (seq, ts, event, outcome, reason, subject, client_id, ip, request_id, details, prev_hash, hash)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);

  const appendTx = db.transaction((rows: NewAuditRow[]): AuditRow[] => {
    const tip = last.get() as { seq: number; hash: string } | undefined;
    let seq = tip?.seq ?? 0;
    let prev = tip?.hash ?? GENESIS_HASH;
    const written: AuditRow[] = [];
    for (const row of rows) {
      seq += 1;
      const full = { ...row, seq, prev_hash: prev, hash: '' };
      full.hash = rowHash(prev, full);
      insert.run(seq, full.ts, full.event, full.outcome, full.reason, full.subject, full.client_id, full.ip, full.request_id, full.details, prev, full.hash);
      prev = full.hash;
      written.push(full);
    }
    return written;
  });

  return {
    /** Append rows to the chain in one transaction; returns them with seq and hashes. */
    append(rows: NewAuditRow[]): AuditRow[] {
      return rows.length ? appendTx.immediate(rows) : [];
    },

    /** Newest first, at most `limit` rows. */
    list(filter: AuditFilter, limit: number): AuditRow[] {
      const w = where(filter);
      return db.prepare(`SELECT * FROM audit_log ${w.sql} ORDER BY seq DESC LIMIT ?`).all(...w.params, limit) as AuditRow[];
    },

    /** Oldest first, streamed (verify, export). */
    iterate(filter: AuditFilter = {}): IterableIterator<AuditRow> {
      const w = where(filter);
      return db.prepare(`SELECT * FROM audit_log ${w.sql} ORDER BY seq ASC`).iterate(...w.params) as IterableIterator<AuditRow>;
    },

    get(seq: number): AuditRow | undefined {
      return db.prepare('SELECT * FROM audit_log WHERE seq = ?').get(seq) as AuditRow | undefined;
    },

    count(filter: AuditFilter = {}): number {
      const w = where(filter);
      return (db.prepare(`SELECT count(*) AS n FROM audit_log ${w.sql}`).get(...w.params) as { n: number }).n;
    },

    tip(): { seq: number; hash: string } | undefined {
      return last.get() as { seq: number; hash: string } | undefined;
    },
  };
}

export type AuditLogStore = ReturnType<typeof createAuditLogStore>;
