/**
 * The audit service: the one way anything is written to the audit log (style C8).
 * - `record()` resolves once its row is committed: every authorization, consent, token and admin
 *   decision is awaited before its response is sent (DESIGN §3). Rows written inside an outer
 *   transaction join it (and commit or roll back with it).
 * - `defer()` queues gateway request records and commits them in groups (at most
 *   GROUP_COMMIT_MS later or GROUP_COMMIT_ROWS rows at once); `flush()` on shutdown. When the
 *   database refuses a commit (locked past its busy timeout), the records are kept and retried,
 *   not dropped (at most MAX_QUEUED_ROWS).
 * Details are masked at this boundary: no key that can carry a credential reaches a row.
 * Every string column and every string inside details has the userinfo of any URL in it replaced
 * (`https://***@host`: a refused redirect URI or client_id may carry a password; `withoutUserinfo`)
 * and is cut to MAX_STORED_STRING (256) characters, marked with a trailing `…` (DESIGN §9,
 * src/audit/limits.ts).
 * After every commit the head goes to the checkpoint file (DESIGN §9, src/audit/checkpoint.ts):
 * at most one small atomic file write per commit, never per row, off the event loop; `flush()`
 * writes it before it resolves.
 */
import type { Logger } from 'pino';
import { AUDIT_EVENTS, isAuditEvent, type AuditEvent } from './events.js';
import type { AuditRow } from '../store/audit-chain.js';
import type { CheckpointWriter } from './checkpoint.js';
import type { AuditLogStore, NewAuditRow } from '../store/audit-log.js';
import { capOptional, capString, MAX_STORED_STRING, withoutUserinfo } from './limits.js';
import { requestContext } from '../http/request-context.js';
import { failureLevel } from '../errors/database-unavailable.js';

/** Gateway records wait at most this long before they are committed. */
export const GROUP_COMMIT_MS = 200;
/** ...or are committed as soon as this many are queued. */
export const GROUP_COMMIT_ROWS = 500;
/**
 * Queued records kept while the database refuses the group commit (locked by another writer past
 * its busy timeout): they are retried, not dropped; beyond this many the oldest go (logged).
 */
export const MAX_QUEUED_ROWS = 10 * GROUP_COMMIT_ROWS;

export interface AuditEntry {
  event: AuditEvent;
  reason?: string | undefined;
  subject?: string | undefined;
  clientId?: string | undefined;
  ip?: string | undefined;
  requestId?: string | undefined;
  details?: Record<string, unknown> | undefined;
}

/** Keys whose values can carry a credential, at any depth and in any case… */
const SECRET_KEY = /token|secret|passw(?:or)?d|verifier|cookie|authorization|assertion|credential|api[-_]?key|private[-_]?key|session[-_]?id|^code$|^state$|nonce|^jti$/i;
/**
 * …except these, which name a kind of token or say whether one was issued and never hold one
 * (rows written before 2026-12-08 have them "[masked]").
 */
const NOT_SECRET_KEYS: ReadonlySet<string> = new Set(['token_type_hint', 'refresh_token_issued', 'token_endpoint_auth_method']);

const isSecretKey = (key: string) => SECRET_KEY.test(key) && !NOT_SECRET_KEYS.has(key);

/**
 * Canonical JSON (object keys sorted at every level) with values under credential-like keys
 * masked, URL userinfo replaced and over-long strings cut — one pass, as it runs for every
 * gateway request.
 */
export function maskedCanonicalJson(value: unknown): string {
  if (typeof value === 'string') {
    const text = withoutUserinfo(value);
    return JSON.stringify(text.length > MAX_STORED_STRING ? capString(text) : text);
  }
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(maskedCanonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(record).sort()) {
    if (record[key] === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${isSecretKey(key) ? '"[masked]"' : maskedCanonicalJson(record[key])}`);
  }
  return `{${parts.join(',')}}`;
}

/** A string column as stored: URL userinfo replaced, then capped (the order matters: a cut could leave a password without its `@`). */
const column = (value: string | undefined): string | null => capOptional(value === undefined ? value : withoutUserinfo(value));

export interface AuditOptions {
  /** sees every record as it is made (metrics) */
  observe?: ((row: NewAuditRow) => void) | undefined;
  /** the checkpoint file, rewritten after every commit; none for ':memory:' databases */
  checkpoint?: CheckpointWriter | undefined;
}

/** A row's place in the order records were made (a symbol: no column, not in the MAC). */
const MADE: unique symbol = Symbol('made');
type MadeRow = NewAuditRow & { [MADE]?: number };

export class Audit {
  private queue: NewAuditRow[] = [];
  /** records made so far: each row carries its number (MADE), so rows put back after failed commits keep their order */
  private madeCount = 0;
  private timer: NodeJS.Timeout | undefined;
  /** appends under way, group commits and records alike (flush waits for them) */
  private readonly commits = new Set<Promise<unknown>>();
  private readonly observe: ((row: NewAuditRow) => void) | undefined;
  private readonly checkpoint: CheckpointWriter | undefined;

  constructor(
    private readonly store: AuditLogStore,
    private readonly log: Logger,
    options: AuditOptions = {},
  ) {
    this.observe = options.observe;
    this.checkpoint = options.checkpoint;
  }

  private toRow(entry: AuditEntry): MadeRow {
    if (!isAuditEvent(entry.event)) throw new Error(`unknown audit event ${String(entry.event)}`);
    const ctx = requestContext.getStore();
    const details = entry.details && Object.keys(entry.details).length ? maskedCanonicalJson(entry.details) : null;
    return {
      [MADE]: this.madeCount++,
      ts: new Date().toISOString(),
      event: entry.event,
      outcome: AUDIT_EVENTS[entry.event],
      reason: column(entry.reason),
      subject: column(entry.subject),
      client_id: column(entry.clientId),
      ip: column(entry.ip ?? ctx?.ip),
      request_id: column(entry.requestId ?? ctx?.requestId),
      details,
    };
  }

  /**
   * Commit one record now (decisions); resolves with its row once committed. Queued gateway
   * records are committed first, in order — unless this runs inside an outer transaction, which
   * may still roll back: the queue then waits for its own group commit.
   */
  async record(entry: AuditEntry): Promise<AuditRow> {
    const row = this.toRow(entry);
    this.observe?.(row);
    const pending = this.store.inTransaction() ? [] : this.takeQueue();
    let last: AuditRow;
    try {
      last = (await this.track(this.store.append([...pending, row]))) as AuditRow;
    } catch (err) {
      this.requeue(pending, true); // the decision fails with its request; the queued records wait
      throw err;
    }
    this.writeCheckpoint(last);
    return last;
  }

  /** Records queued and not committed yet (after a failed flush at shutdown: what is lost). */
  get queued(): number {
    return this.queue.length;
  }

  /** Queue a record for group commit (gateway traffic). */
  defer(entry: AuditEntry): void {
    const row = this.toRow(entry);
    this.observe?.(row);
    this.queue.push(row);
    if (this.queue.length >= GROUP_COMMIT_ROWS) void this.commitQueue();
    else this.timer ??= setTimeout(() => void this.commitQueue(), GROUP_COMMIT_MS).unref();
  }

  /**
   * Commit everything queued, wait for every append under way (group commits, and records whose
   * caller did not wait), and put the head in the checkpoint file now (shutdown, verify): once it
   * resolves, everything recorded before it is in the database.
   */
  async flush(): Promise<void> {
    await this.commitQueue(false);
    while (this.commits.size) await Promise.allSettled([...this.commits]);
    if (!this.store.inTransaction()) await this.checkpoint?.flush();
  }

  /**
   * One group commit of the queue. When the database refuses it (locked past its busy timeout),
   * the records are kept and, with `retry` (the timer's and size-triggered commits, not flush at
   * shutdown), tried again GROUP_COMMIT_MS later.
   */
  private commitQueue(retry = true): Promise<void> {
    const pending = this.takeQueue();
    if (!pending.length) return Promise.resolve();
    return this.track(this.store.append(pending)).then(
      (last) => {
        if (last) this.writeCheckpoint(last);
      },
      (err: unknown) => {
        this.log[failureLevel(err)]({ err, rows: pending.length }, 'audit group commit failed; the records are kept for the next commit');
        this.requeue(pending, retry);
      },
    );
  }

  /** An append under way, until it settles (flush waits for it). */
  private track<T>(append: Promise<T>): Promise<T> {
    const settled: Promise<unknown> = append.then(
      () => this.commits.delete(settled),
      () => this.commits.delete(settled),
    );
    this.commits.add(settled);
    return append;
  }

  /**
   * Put records that could not be committed back into the queue in the order they were made (two
   * group commits may fail in either order), at most MAX_QUEUED_ROWS.
   */
  private requeue(rows: NewAuditRow[], retry: boolean): void {
    if (!rows.length) return;
    const made = (row: NewAuditRow) => (row as MadeRow)[MADE] ?? 0;
    this.queue = [...rows, ...this.queue].sort((a, b) => made(a) - made(b));
    const dropped = this.queue.length - MAX_QUEUED_ROWS;
    if (dropped > 0) {
      this.queue = this.queue.slice(dropped);
      this.log.error({ dropped }, 'audit queue full while the database refuses commits: the oldest records were dropped');
    }
    if (retry) this.timer ??= setTimeout(() => this.commitQueue(true), GROUP_COMMIT_MS).unref();
  }

  /**
   * The head to the checkpoint file, once `row` is committed. Inside an outer transaction it is
   * not committed yet (and may roll back): skip, the next commit notes a newer head — a
   * checkpoint must never name a row that is not in the database.
   * Heads may be noted out of order (two commits finishing in either order; the server and the
   * CLI, or several replicas, appending to one chain): the writer keeps the newest it was given,
   * and an older file is still true — its row is committed and stays in the chain; it only covers
   * less of the tail until the next commit. A failed write does not undo the committed row: the
   * writer logs it, and `audit verify` then sees an older or missing file.
   */
  private writeCheckpoint(row: AuditRow): void {
    if (this.checkpoint && !this.store.inTransaction()) this.checkpoint.update(row);
  }

  private takeQueue(): NewAuditRow[] {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const pending = this.queue;
    this.queue = [];
    return pending;
  }
}
