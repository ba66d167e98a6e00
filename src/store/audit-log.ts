/**
 * audit_log table: append (chained with the keyed MAC of src/store/audit-chain.ts) and read,
 * over the Sql driver, the same SQL on SQLite and PostgreSQL. There is no update or delete path;
 * the database triggers refuse them anyway, and refuse any insert that is not at the head
 * (migrations/0011-audit-keyed-chain.sql, migrations/postgres/0001-schema.sql).
 * - One chain, whoever writes: each append is one transaction that first takes the lock
 *   AUDIT_CHAIN_LOCK (PostgreSQL: an advisory lock until commit; SQLite: BEGIN IMMEDIATE already
 *   serializes writers), then reads the head and inserts after it. So the server, the CLI and
 *   every replica on one PostgreSQL append to the same chain and never fork it (DESIGN §8, §9).
 *   A group commit's rows go in multi-row INSERTs of at most INSERT_CHUNK rows (one round trip
 *   each on PostgreSQL while the lock is held).
 * - Reads name their columns (no `SELECT *`) and never stream: verify and export read keyset
 *   pages (`seq > ? ORDER BY seq LIMIT ?`, `iterate`).
 * A store opened without the audit key can read, not append (verify, export).
 */
import { after, lockKey, lockOutsideTransaction, type Maybe, type Sql } from '../db/sql.js';
import { GENESIS_HASH, rowMac, type AuditKey, type AuditRow } from './audit-chain.js';
import { countRange, rangeBounds, where, type AuditFilter } from './audit-range.js';

export type { AuditFilter } from './audit-range.js';

/** A row as recorded, before the chain gives it its place: seq, the link and the MAC come with the append. */
export type NewAuditRow = Omit<AuditRow, 'seq' | 'prev_hash' | 'hash' | 'key_id'>;

/** The lock every append takes before it reads the head (serializes appenders across replicas). */
export const AUDIT_CHAIN_LOCK = 'mcp-consent-proxy:audit-chain';
/** Rows per INSERT statement in a group commit. */
export const INSERT_CHUNK = 50;
/** Rows per keyset page when reading the whole log (verify, export). */
export const ITERATE_PAGE = 1000;

/** Every column, in the table's order: what `AuditRow` holds. */
export const AUDIT_COLUMNS = 'seq, ts, event, outcome, reason, subject, client_id, ip, request_id, details, prev_hash, hash, key_id';
const HEAD_SQL = 'SELECT seq, hash, key_id FROM audit_log ORDER BY seq DESC LIMIT 1';
const HASH_AT_SQL = 'SELECT hash FROM audit_log WHERE seq = ?';

const insertTexts: string[] = [];
/** `INSERT … VALUES (…), (…)` for n rows (one SQL text per n, prepared once by the driver). */
function insertSql(n: number): string {
  return (insertTexts[n] ??= `INSERT INTO audit_log (${AUDIT_COLUMNS}) VALUES ${Array.from({ length: n }, () => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`);
}

export interface AuditLogWriter {
  /** the current audit MAC key (KeyRing.auditKeys()[0]); it never touches the database */
  key: AuditKey;
}

export interface AuditHead {
  seq: number;
  hash: string;
  key_id: string | null;
}

/**
 * The head, read under the chain lock (taken until the transaction ends): on PostgreSQL both in
 * one statement (migrations/postgres/0003-audit-chain-head-locked.sql says why that is the same),
 * elsewhere the lock then the read. Only inside a transaction: outside one the lock would end with
 * the statement.
 */
async function lockedHead(sql: Sql): Promise<AuditHead | undefined> {
  if (sql.engine !== 'postgres') {
    await sql.lock(AUDIT_CHAIN_LOCK);
    return sql.one<AuditHead>(HEAD_SQL);
  }
  if (!sql.inTransaction()) throw lockOutsideTransaction();
  return sql.one<AuditHead>('SELECT seq, hash, key_id FROM audit_chain_head_locked(CAST(? AS BIGINT))', [lockKey(AUDIT_CHAIN_LOCK)]);
}

/** Insert rows after the head, under the chain lock; run inside a transaction (AuditLogStore.append). */
async function appendRows(sql: Sql, key: AuditKey, rows: NewAuditRow[]): Promise<AuditRow> {
  // A legacy head (plain SHA-256) is linked to like any other, so the first keyed row's MAC covers the legacy prefix.
  const tip = await lockedHead(sql);
  let seq = tip?.seq ?? 0;
  let prev = tip?.hash ?? GENESIS_HASH;
  let prevOfLast = prev;
  for (let from = 0; from < rows.length; from += INSERT_CHUNK) {
    const chunk = rows.slice(from, from + INSERT_CHUNK);
    const params: unknown[] = [];
    for (const row of chunk) {
      seq += 1;
      const mac = rowMac(key, prev, { ...row, seq });
      params.push(seq, row.ts, row.event, row.outcome, row.reason, row.subject, row.client_id, row.ip, row.request_id, row.details, prev, mac, key.kid);
      prevOfLast = prev;
      prev = mac;
    }
    await sql.runLater(insertSql(chunk.length), params); // a failure fails the transaction's commit
  }
  // Only the last row is returned (record() answers with it); group commits make no copies.
  return { ...(rows[rows.length - 1] as NewAuditRow), seq, prev_hash: prevOfLast, hash: prev, key_id: key.kid };
}

/** The audit_log table's appends and reads. */
export class AuditLogStore {
  constructor(
    private readonly sql: Sql,
    private readonly writer?: AuditLogWriter,
  ) {}

  /**
   * Append rows to the chain in one transaction; resolves with the last one, its seq and MAC.
   * Committed then, unless called inside an outer transaction (see `inTransaction`), which it joins.
   */
  async append(rows: NewAuditRow[]): Promise<AuditRow | undefined> {
    const writer = this.writer;
    if (!writer) throw new Error('this audit log store was opened without the audit key: it can read, not append');
    if (!rows.length) return undefined;
    if (this.sql.inTransaction()) return this.sql.transaction(() => appendRows(this.sql, writer.key, rows)); // joined: committed with the caller's
    let last: AuditRow | undefined;
    let unanswered = false;
    try {
      return await this.sql.transaction(async () => {
        this.sql.afterCommit(
          () => undefined,
          () => (unanswered = true),
        );
        return (last = await appendRows(this.sql, writer.key, rows));
      });
    } catch (err) {
      // COMMIT sent and its answer lost (PostgreSQL): the rows may be in. Appended again by the
      // caller's retry (a group commit puts them back in its queue), they would be there twice
      // (found by review, 2026-12-07) — so a committed append is answered as one.
      if (unanswered && last && (await this.holds(last))) return last;
      throw err;
    }
  }

  /**
   * Whether the chain holds `row` (its seq with its MAC), read under the chain's lock, so after any
   * append still committing has ended. A failed read is "no": the caller retries, as before.
   */
  private async holds(row: AuditRow): Promise<boolean> {
    try {
      return await this.sql.transaction(async () => {
        await lockedHead(this.sql);
        return (await this.sql.one<{ hash: string }>('SELECT hash FROM audit_log WHERE seq = ?', [row.seq]))?.hash === row.hash;
      });
    } catch {
      return false;
    }
  }

  /** Whether the caller runs inside an outer transaction (then nothing appended is committed yet). */
  inTransaction(): boolean {
    return this.sql.inTransaction();
  }

  /**
   * One page for the admin audit view: newest first; `beforeSeq` pages to older rows,
   * `afterSeq` to newer ones. Time ranges become seq ranges, so every page is an index range
   * scan whatever the size of the log.
   */
  async page(filter: AuditFilter, limit: number): Promise<AuditRow[]> {
    const bounds = await rangeBounds(this.sql, filter);
    const w = where({ ...filter, beforeSeq: undefined, afterSeq: undefined }, true);
    const clauses = w.clauses;
    const params = [...w.params];
    const lower = Math.max(bounds.outerMin, filter.afterSeq !== undefined ? filter.afterSeq + 1 : 0);
    const upper = Math.min(bounds.outerMax, filter.beforeSeq !== undefined ? filter.beforeSeq - 1 : Number.MAX_SAFE_INTEGER);
    clauses.push('seq BETWEEN ? AND ?');
    params.push(lower, upper);
    const ascending = filter.afterSeq !== undefined && filter.beforeSeq === undefined;
    const rows = await this.sql.all<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM audit_log WHERE ${clauses.join(' AND ')} ORDER BY seq ${ascending ? 'ASC' : 'DESC'} LIMIT ?`, [...params, limit]);
    return ascending ? rows.reverse() : rows;
  }

  /** The newest rows with one of these outcomes (security events on the overview). */
  listOutcomes(outcomes: string[], limit: number): Promise<AuditRow[]> {
    return this.sql.all<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM audit_log WHERE outcome IN (${outcomes.map(() => '?').join(', ')}) ORDER BY seq DESC LIMIT ?`, [...outcomes, limit]);
  }

  /** Newest first, at most `limit` rows. */
  list(filter: AuditFilter, limit: number): Promise<AuditRow[]> {
    const w = where(filter);
    return this.sql.all<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM audit_log ${w.sql} ORDER BY seq DESC LIMIT ?`, [...w.params, limit]);
  }

  /** Oldest first, in keyset pages of `pageSize` rows (verify, export): memory stays flat. */
  async *iterate(filter: AuditFilter = {}, pageSize = ITERATE_PAGE): AsyncGenerator<AuditRow> {
    let after = filter.afterSeq ?? 0;
    for (;;) {
      const w = where({ ...filter, afterSeq: after });
      const rows = await this.sql.all<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM audit_log ${w.sql} ORDER BY seq ASC LIMIT ?`, [...w.params, pageSize]);
      for (const row of rows) yield row;
      const last = rows[rows.length - 1];
      if (!last || rows.length < pageSize) return;
      after = last.seq;
    }
  }

  /** The hash/MAC of row `seq` (the checkpoint file's anchor check: one indexed read; synchronous on SQLite when it can be). */
  hashAt(seq: number): Maybe<string | undefined> {
    const row = this.sql.oneNow<{ hash: string }>(HASH_AT_SQL, [seq]);
    return row instanceof Promise ? row.then((r) => r?.hash) : row?.hash;
  }

  get(seq: number): Promise<AuditRow | undefined> {
    return this.sql.one<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM audit_log WHERE seq = ?`, [seq]);
  }

  /**
   * Exact count. The middle of a time range is counted on the (event|outcome|…, seq) index alone;
   * only the rows near its edges are read to check their ts.
   */
  async count(filter: AuditFilter = {}): Promise<number> {
    if (!filter.from && !filter.to) {
      const w = where(filter);
      return (await this.sql.one<{ n: number }>(`SELECT count(*) AS n FROM audit_log ${w.sql}`, w.params))?.n ?? 0;
    }
    return countRange(this.sql, filter);
  }

  /** Is any row keyed (made with an audit key)? Synchronous on SQLite when it can be. */
  hasKeyedRows(): Maybe<boolean> {
    return after(this.sql.oneNow<{ one: number }>('SELECT 1 AS one FROM audit_log WHERE key_id IS NOT NULL LIMIT 1'), (row) => row !== undefined);
  }

  tip(): Promise<AuditHead | undefined> {
    return this.sql.one<AuditHead>(HEAD_SQL);
  }
}

export function createAuditLogStore(sql: Sql, writer?: AuditLogWriter): AuditLogStore {
  return new AuditLogStore(sql, writer);
}
