/**
 * The audit_log filters and time ranges of src/store/audit-log.ts: WHERE clauses in the portable
 * SQL subset (src/db/sql.ts), and time ranges turned into seq ranges so that pages and counts are
 * index range scans on `seq` whatever the size of the log.
 *
 * Rows are appended with their timestamp taken when the event happened; a record waits at most
 * GROUP_COMMIT_MS (200 ms) before its insert, and appenders (replicas, the CLI) take turns under
 * the chain lock. So for any two rows seq a < seq b we rely on ts(b) >= ts(a) -
 * TS_REORDER_MARGIN_MS. Time ranges are turned into seq ranges with that margin (rangeBounds), and
 * rows near the edges are checked exactly.
 */
import type { Sql } from '../db/sql.js';

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

const TS_REORDER_MARGIN_MS = 5000;

/**
 * `ts` compared through an expression, so neither engine's planner picks the ts index for a query
 * already bounded by a seq range (it would read the whole time range in ts order, then sort).
 */
const TS_NO_INDEX = "(ts || '')";

/** Four-digit years only: the stored `ts` and the bounds are compared as text. */
const MIN_TS = Date.parse('0000-01-01T00:00:00.000Z');
const MAX_TS = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * `iso` moved by `ms`, or undefined when the result leaves the years 0000–9999 (no row is there;
 * at the edge of the Date range `toISOString` would throw, DESIGN §9). rangeBounds reads
 * undefined as "no such row", which only widens the outer bounds and narrows the inner ones.
 */
function shiftIso(iso: string, ms: number): string | undefined {
  const t = Date.parse(iso) + ms;
  return Number.isNaN(t) || t < MIN_TS || t > MAX_TS ? undefined : new Date(t).toISOString();
}

export interface Where {
  /** `WHERE …`, or '' without conditions */
  sql: string;
  clauses: string[];
  params: unknown[];
}

/** The filter as conditions; `tsNoIndex` keeps the ts index out of the plan (see TS_NO_INDEX). */
export function where(filter: AuditFilter, tsNoIndex = false): Where {
  const clauses: string[] = [];
  const params: unknown[] = [];
  const add = (clause: string, value: unknown) => {
    clauses.push(clause);
    params.push(value);
  };
  const ts = tsNoIndex ? TS_NO_INDEX : 'ts';
  if (filter.from) add(`${ts} >= ?`, filter.from);
  if (filter.to) add(`${ts} < ?`, filter.to);
  if (filter.event) add('event = ?', filter.event);
  if (filter.outcome) add('outcome = ?', filter.outcome);
  if (filter.subject) add('subject = ?', filter.subject);
  if (filter.clientId) add('client_id = ?', filter.clientId);
  if (filter.requestId) add('request_id = ?', filter.requestId);
  if (filter.beforeSeq !== undefined) add('seq < ?', filter.beforeSeq);
  if (filter.afterSeq !== undefined) add('seq > ?', filter.afterSeq);
  return { sql: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', clauses, params };
}

// Both are single seeks on the ts index.
const FIRST_AT_OR_AFTER = 'SELECT seq FROM audit_log WHERE ts >= ? ORDER BY ts ASC LIMIT 1';
const LAST_BEFORE = 'SELECT seq FROM audit_log WHERE ts < ? ORDER BY ts DESC LIMIT 1';

async function seek(sql: Sql, text: string, iso: string | undefined): Promise<number | undefined> {
  return iso === undefined ? undefined : (await sql.one<{ seq: number }>(text, [iso]))?.seq;
}

export interface Bounds {
  outerMin: number;
  outerMax: number;
  innerMin: number;
  innerMax: number;
}

/**
 * seq bounds of a time range [from, to), using the reorder margin M:
 * - outer [outerMin, outerMax] holds every row of the range. A row e with ts(e) < from - M has,
 *   before it, only rows with ts <= ts(e) + M < from: so outerMin = seq(e) + 1 for the newest such
 *   e. Symmetrically a row f with ts(f) >= to + M has, after it, only rows with ts >= to.
 * - inner [innerMin, innerMax] holds only rows of the range: after a row with ts >= from + M
 *   every row has ts >= from; before a row with ts < to - M every row has ts < to.
 * Rows between outer and inner are the few written within M of an edge.
 */
export async function rangeBounds(sql: Sql, filter: AuditFilter): Promise<Bounds> {
  const max = Number.MAX_SAFE_INTEGER;
  const b = { outerMin: 0, outerMax: max, innerMin: 0, innerMax: max };
  if (filter.from) {
    const e = await seek(sql, LAST_BEFORE, shiftIso(filter.from, -TS_REORDER_MARGIN_MS));
    b.outerMin = e === undefined ? 0 : e + 1;
    b.innerMin = (await seek(sql, FIRST_AT_OR_AFTER, shiftIso(filter.from, TS_REORDER_MARGIN_MS))) ?? max;
  }
  if (filter.to) {
    const f = await seek(sql, FIRST_AT_OR_AFTER, shiftIso(filter.to, TS_REORDER_MARGIN_MS));
    b.outerMax = f === undefined ? max : f - 1;
    b.innerMax = (await seek(sql, LAST_BEFORE, shiftIso(filter.to, -TS_REORDER_MARGIN_MS))) ?? -1;
  }
  b.innerMin = Math.max(b.innerMin, b.outerMin);
  b.innerMax = Math.min(b.innerMax, b.outerMax);
  return b;
}

/** count(*) of rows matching the non-time filters (and, when `exactTs`, the time range) within seq [lo, hi]. */
async function countIn(sql: Sql, filter: AuditFilter, lo: number, hi: number, exactTs: boolean): Promise<number> {
  if (lo > hi) return 0;
  const w = where({ ...filter, from: exactTs ? filter.from : undefined, to: exactTs ? filter.to : undefined, beforeSeq: undefined, afterSeq: undefined }, true);
  const clauses = [...w.clauses, 'seq BETWEEN ? AND ?'];
  return (await sql.one<{ n: number }>(`SELECT count(*) AS n FROM audit_log WHERE ${clauses.join(' AND ')}`, [...w.params, lo, hi]))?.n ?? 0;
}

/** Exact count of a filter with a time range: the middle on the index alone, only the edges' ts checked. */
export async function countRange(sql: Sql, filter: AuditFilter): Promise<number> {
  const b = await rangeBounds(sql, filter);
  const lo = Math.max(b.outerMin, filter.afterSeq !== undefined ? filter.afterSeq + 1 : 0);
  const hi = Math.min(b.outerMax, filter.beforeSeq !== undefined ? filter.beforeSeq - 1 : Number.MAX_SAFE_INTEGER);
  const innerLo = Math.max(b.innerMin, lo);
  const innerHi = Math.min(b.innerMax, hi);
  if (innerLo > innerHi) return countIn(sql, filter, lo, hi, true);
  const counts = [await countIn(sql, filter, lo, innerLo - 1, true), await countIn(sql, filter, innerLo, innerHi, false), await countIn(sql, filter, innerHi + 1, hi, true)];
  return counts[0]! + counts[1]! + counts[2]!;
}
