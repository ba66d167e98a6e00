/**
 * audit_log table: append (chained with the keyed MAC of src/store/audit-chain.ts, one immediate
 * transaction per batch so concurrent writers — the server and the CLI — never fork the chain)
 * and read. There is no update or delete path; the database triggers refuse them anyway, and
 * refuse any insert that is not at the head (migrations/0011-audit-keyed-chain.sql).
 * A store opened without the audit key can read, not append (verify, export).
 */
import type { Transaction } from 'better-sqlite3';
import type { Db } from '../db/open.js';
import { GENESIS_HASH, rowMac, type AuditKey, type AuditRow } from './audit-chain.js';

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

/**
 * Rows are appended with their timestamp taken when the event happened; a record waits at most
 * GROUP_COMMIT_MS (200 ms) before its insert, and the CLI writes directly. So for any two rows
 * seq a < seq b we rely on ts(b) >= ts(a) - TS_REORDER_MARGIN_MS. Time ranges are turned into seq
 * ranges with that margin (see rangeBounds), and rows near the edges are checked exactly.
 */
const TS_REORDER_MARGIN_MS = 5000;

function shiftIso(iso: string, ms: number): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : new Date(t + ms).toISOString();
}

function where(filter: AuditFilter, tsPrefix = ''): { sql: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  const add = (clause: string, value: unknown) => {
    clauses.push(clause);
    params.push(value);
  };
  if (filter.from) add(`${tsPrefix}ts >= ?`, filter.from);
  if (filter.to) add(`${tsPrefix}ts < ?`, filter.to);
  if (filter.event) add('event = ?', filter.event);
  if (filter.outcome) add('outcome = ?', filter.outcome);
  if (filter.subject) add('subject = ?', filter.subject);
  if (filter.clientId) add('client_id = ?', filter.clientId);
  if (filter.requestId) add('request_id = ?', filter.requestId);
  if (filter.beforeSeq !== undefined) add('seq < ?', filter.beforeSeq);
  if (filter.afterSeq !== undefined) add('seq > ?', filter.afterSeq);
  return { sql: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

export interface AuditLogWriter {
  /** the current audit MAC key (KeyRing.auditKeys()[0]); it never touches the database */
  key: AuditKey;
}

function prepareStatements(db: Db) {
  return {
    last: db.prepare('SELECT seq, hash, key_id FROM audit_log ORDER BY seq DESC LIMIT 1'),
    hashAt: db.prepare('SELECT hash FROM audit_log WHERE seq = ?').pluck(),
    insert: db.prepare(`INSERT INTO audit_log
    (seq, ts, event, outcome, reason, subject, client_id, ip, request_id, details, prev_hash, hash, key_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    // Both are single seeks on the ts index.
    firstAtOrAfter: db.prepare('SELECT seq FROM audit_log WHERE ts >= ? ORDER BY ts ASC LIMIT 1').pluck(),
    lastBefore: db.prepare('SELECT seq FROM audit_log WHERE ts < ? ORDER BY ts DESC LIMIT 1').pluck(),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

const seek = (stmt: Statements['firstAtOrAfter'], iso: string) => stmt.get(iso) as number | undefined;

/**
 * seq bounds of a time range [from, to), using the reorder margin M:
 * - outer [outerMin, outerMax] holds every row of the range. A row e with ts(e) < from - M has,
 *   before it, only rows with ts <= ts(e) + M < from: so outerMin = seq(e) + 1 for the newest such
 *   e. Symmetrically a row f with ts(f) >= to + M has, after it, only rows with ts >= to.
 * - inner [innerMin, innerMax] holds only rows of the range: after a row with ts >= from + M
 *   every row has ts >= from; before a row with ts < to - M every row has ts < to.
 * Rows between outer and inner are the few written within M of an edge.
 */
function rangeBounds(stmt: Statements, filter: AuditFilter) {
  const max = Number.MAX_SAFE_INTEGER;
  const b = { outerMin: 0, outerMax: max, innerMin: 0, innerMax: max };
  if (filter.from) {
    const e = seek(stmt.lastBefore, shiftIso(filter.from, -TS_REORDER_MARGIN_MS));
    b.outerMin = e === undefined ? 0 : e + 1;
    b.innerMin = seek(stmt.firstAtOrAfter, shiftIso(filter.from, TS_REORDER_MARGIN_MS)) ?? max;
  }
  if (filter.to) {
    const f = seek(stmt.firstAtOrAfter, shiftIso(filter.to, TS_REORDER_MARGIN_MS));
    b.outerMax = f === undefined ? max : f - 1;
    b.innerMax = seek(stmt.lastBefore, shiftIso(filter.to, -TS_REORDER_MARGIN_MS)) ?? -1;
  }
  b.innerMin = Math.max(b.innerMin, b.outerMin);
  b.innerMax = Math.min(b.innerMax, b.outerMax);
  return b;
}

/** count(*) of rows matching the non-time filters (and, when `exactTs`, the time range) within seq [lo, hi]. */
function countIn(db: Db, filter: AuditFilter, lo: number, hi: number, exactTs: boolean): number {
  if (lo > hi) return 0;
  const w = where({ ...filter, from: exactTs ? filter.from : undefined, to: exactTs ? filter.to : undefined, beforeSeq: undefined, afterSeq: undefined }, '+');
  const clauses = w.sql ? [w.sql.slice('WHERE '.length)] : [];
  clauses.push('seq BETWEEN ? AND ?');
  return (db.prepare(`SELECT count(*) AS n FROM audit_log WHERE ${clauses.join(' AND ')}`).get(...w.params, lo, hi) as { n: number }).n;
}

/** Insert rows after the head; run inside an immediate transaction (AuditLogStore.append). */
function appendRows(stmt: Statements, key: AuditKey, rows: NewAuditRow[]): AuditRow {
  // The head, read inside the immediate transaction: a legacy head (plain SHA-256) is linked
  // to like any other, so the first keyed row's MAC covers the legacy prefix.
  const tip = stmt.last.get() as { seq: number; hash: string } | undefined;
  let seq = tip?.seq ?? 0;
  let prev = tip?.hash ?? GENESIS_HASH;
  let prevOfLast = prev;
  for (const row of rows) {
    seq += 1;
    const mac = rowMac(key, prev, { ...row, seq });
    stmt.insert.run(seq, row.ts, row.event, row.outcome, row.reason, row.subject, row.client_id, row.ip, row.request_id, row.details, prev, mac, key.kid);
    prevOfLast = prev;
    prev = mac;
  }
  // Only the last row is returned (record() answers with it); group commits make no copies.
  return { ...(rows[rows.length - 1] as NewAuditRow), seq, prev_hash: prevOfLast, hash: prev, key_id: key.kid };
}

/** The audit_log table's appends and reads; the statements are prepared once, in the constructor. */
export class AuditLogStore {
  private readonly stmt: Statements;
  private readonly appendTx: Transaction<(key: AuditKey, rows: NewAuditRow[]) => AuditRow>;

  constructor(
    private readonly db: Db,
    private readonly writer?: AuditLogWriter,
  ) {
    const stmt = prepareStatements(db);
    this.stmt = stmt;
    this.appendTx = db.transaction((key: AuditKey, rows: NewAuditRow[]) => appendRows(stmt, key, rows));
  }

  /**
   * Append rows to the chain in one transaction; returns the last one with its seq and MAC.
   * Committed on return unless called inside an outer transaction (see `inTransaction`).
   */
  append(rows: NewAuditRow[]): AuditRow | undefined {
    if (!this.writer) throw new Error('this audit log store was opened without the audit key: it can read, not append');
    return rows.length ? this.appendTx.immediate(this.writer.key, rows) : undefined;
  }

  /** Whether an outer transaction is open (then nothing appended is committed yet). */
  inTransaction(): boolean {
    return this.db.inTransaction;
  }

  /**
   * One page for the admin audit view: newest first; `beforeSeq` pages to older rows,
   * `afterSeq` to newer ones. Time ranges become seq ranges, so every page is an index range
   * scan whatever the size of the log.
   */
  page(filter: AuditFilter, limit: number): AuditRow[] {
    const bounds = rangeBounds(this.stmt, filter);
    const w = where({ ...filter, beforeSeq: undefined, afterSeq: undefined }, '+');
    const clauses = w.sql ? [w.sql.slice('WHERE '.length)] : [];
    const params = [...w.params];
    const lower = Math.max(bounds.outerMin, filter.afterSeq !== undefined ? filter.afterSeq + 1 : 0);
    const upper = Math.min(bounds.outerMax, filter.beforeSeq !== undefined ? filter.beforeSeq - 1 : Number.MAX_SAFE_INTEGER);
    clauses.push('seq BETWEEN ? AND ?');
    params.push(lower, upper);
    const ascending = filter.afterSeq !== undefined && filter.beforeSeq === undefined;
    const rows = this.db.prepare(`SELECT * FROM audit_log WHERE ${clauses.join(' AND ')} ORDER BY seq ${ascending ? 'ASC' : 'DESC'} LIMIT ?`).all(...params, limit) as AuditRow[];
    return ascending ? rows.reverse() : rows;
  }

  /** The newest rows with one of these outcomes (security events on the overview). */
  listOutcomes(outcomes: string[], limit: number): AuditRow[] {
    return this.db.prepare(`SELECT * FROM audit_log WHERE outcome IN (${outcomes.map(() => '?').join(',')}) ORDER BY seq DESC LIMIT ?`).all(...outcomes, limit) as AuditRow[];
  }

  /** Newest first, at most `limit` rows. */
  list(filter: AuditFilter, limit: number): AuditRow[] {
    const w = where(filter);
    return this.db.prepare(`SELECT * FROM audit_log ${w.sql} ORDER BY seq DESC LIMIT ?`).all(...w.params, limit) as AuditRow[];
  }

  /** Oldest first, streamed (verify, export). */
  iterate(filter: AuditFilter = {}): IterableIterator<AuditRow> {
    const w = where(filter);
    return this.db.prepare(`SELECT * FROM audit_log ${w.sql} ORDER BY seq ASC`).iterate(...w.params) as IterableIterator<AuditRow>;
  }

  /** The hash/MAC of row `seq` (the checkpoint file's anchor check: one indexed read). */
  hashAt(seq: number): string | undefined {
    return this.stmt.hashAt.get(seq) as string | undefined;
  }

  get(seq: number): AuditRow | undefined {
    return this.db.prepare('SELECT * FROM audit_log WHERE seq = ?').get(seq) as AuditRow | undefined;
  }

  /**
   * Exact count. The middle of a time range is counted on the (event|outcome|…, seq) index alone;
   * only the rows near its edges are read to check their ts.
   */
  count(filter: AuditFilter = {}): number {
    if (!filter.from && !filter.to) {
      const w = where(filter);
      return (this.db.prepare(`SELECT count(*) AS n FROM audit_log ${w.sql}`).get(...w.params) as { n: number }).n;
    }
    const b = rangeBounds(this.stmt, filter);
    const lo = Math.max(b.outerMin, filter.afterSeq !== undefined ? filter.afterSeq + 1 : 0);
    const hi = Math.min(b.outerMax, filter.beforeSeq !== undefined ? filter.beforeSeq - 1 : Number.MAX_SAFE_INTEGER);
    const innerLo = Math.max(b.innerMin, lo);
    const innerHi = Math.min(b.innerMax, hi);
    if (innerLo > innerHi) return countIn(this.db, filter, lo, hi, true);
    return countIn(this.db, filter, lo, innerLo - 1, true) + countIn(this.db, filter, innerLo, innerHi, false) + countIn(this.db, filter, innerHi + 1, hi, true);
  }

  tip(): { seq: number; hash: string; key_id: string | null } | undefined {
    return this.stmt.last.get() as { seq: number; hash: string; key_id: string | null } | undefined;
  }
}

export function createAuditLogStore(db: Db, writer?: AuditLogWriter): AuditLogStore {
  return new AuditLogStore(db, writer);
}
