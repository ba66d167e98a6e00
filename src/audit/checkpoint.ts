/**
 * The audit chain's head kept outside the database (DESIGN §9). Someone who can write the SQLite
 * file cannot forge a keyed row, but can cut rows off the tail: what is left still verifies. The
 * checkpoint says how far the chain reached.
 * - `<data dir>/audit-checkpoint.json` = {v, seq, mac, key_id, ts, checkpoint_mac}, the last an
 *   HMAC-SHA-256 under the audit key `key_id` (domain-separated from row MACs), so it cannot be
 *   forged or edited without SECRET_KEY — only deleted, or replaced by an older genuine one.
 *   Noted by `Audit` after every commit (server and CLI) and written atomically off the event
 *   loop (see createCheckpointWriter). Not written for ':memory:' databases.
 * - On PostgreSQL (DATABASE_URL) the file lives in each replica's own data directory and records
 *   the head of the one chain as far as that replica committed it: each replica keeps its own
 *   file, moving forward under the same rules, and `audit verify` run next to it (same data
 *   directory, same DATABASE_URL) checks the chain against it. A replica's file covers the chain up
 *   to its own last commit, not the other replicas' later rows: the cross-replica checkpoint is the
 *   shipped `audit.checkpoint` log line (README "Audit log").
 * - The file only ever moves forward along the chain it recorded (`CheckpointAnchor`): a writer
 *   replaces it only while the database still holds the recorded row with the recorded MAC. If
 *   the log was cut or rewritten behind the writer's back (or a backup restored), appending to
 *   what is left would otherwise put the shortened head in the file at the next commit — after a
 *   restart at once — and erase the one trace of the cut. Instead the file is kept as it is, an
 *   error is logged, and `audit verify` goes on naming the problem until the operator starts a
 *   new file (`audit checkpoint-reset`, src/cli/commands/storage.ts). On SQLite (`keyedRows`) a
 *   file missing at start while the log has keyed rows is not started anew either.
 * - `audit.checkpoint` log lines (info: seq, mac, key_id, ts) at start, at least every
 *   CHECKPOINT_LOG_INTERVAL_MS while serving and at stop: shipped with the logs, they are a
 *   checkpoint a database writer cannot reach, checked with `audit verify --checkpoint <seq>:<mac>`
 *   (src/audit/checkpoint-log.ts).
 */
import { rename, rm, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { AuditKey } from '../store/audit-chain.js';
import type { Maybe } from '../db/sql.js';
import { failureLevel } from '../errors/database-unavailable.js';
import { newWriterTag, removeStaleTemps, tempPath } from './checkpoint-temp.js';
import { readCheckpointFile, renderCheckpoint, type Head } from './checkpoint-file.js';

export * from './checkpoint-file.js';

/** What a writer checks before it replaces the file: the chain the file recorded still stands. */
export interface CheckpointAnchor {
  /** the audit keys that may have made the file (current first; KeyRing.auditKeys()) */
  keys: AuditKey[];
  /** does the database hold row `seq` with MAC `mac`? (one indexed read; synchronous on SQLite when it can be) */
  holds(seq: number, mac: string): Maybe<boolean>;
  /**
   * Does the log hold keyed rows already? Given where the file and the database share one data
   * directory (SQLite): a file missing then is not started anew (`checkMissing`).
   */
  keyedRows?: () => Maybe<boolean>;
}

export interface CheckpointWriter {
  path: string;
  /** why the file is no longer replaced (the log was cut or rewritten), undefined while it is */
  readonly diverged: string | undefined;
  /**
   * Note a committed head. It is written off the event loop (the file system's thread pool) —
   * a decision's response does not wait for the disk — and heads committed while a write is in
   * flight are covered by the next write (one write per burst, each of the newest head).
   */
  update(head: Head): void;
  /** Resolves once the newest noted head is on disk (or its write failed, again): shutdown, verify. */
  flush(): Promise<void>;
  /** Resolves once no write is in flight. */
  settled(): Promise<void>;
}

/**
 * Writes go to a temp file (unique per process, writer and write) renamed over the checkpoint, so
 * a reader sees the old or the new checkpoint, never half of one; a killed process's temp files
 * are removed when a writer starts (src/audit/checkpoint-temp.ts). No fsync (a disk flush per
 * commit). After a power loss the file may be older than the database (harmless: see
 * Audit) or, with DATABASE_SYNCHRONOUS=NORMAL, newer than what the database kept — then verify
 * reports the lost rows, which is true.
 */
export function createCheckpointWriter(path: string, key: AuditKey, log: Logger, guard?: CheckpointAnchor): CheckpointWriter {
  return new CheckpointFileWriter(path, key, log, guard);
}

/** The writer createCheckpointWriter returns: one per checkpoint file and process. */
class CheckpointFileWriter implements CheckpointWriter {
  private latest: Head | undefined; // the newest committed head noted
  private writtenSeq = 0; // the newest head this process has put on disk
  private attempted = 0; // the newest head a write was started for
  private inFlight: Promise<void> | undefined;
  private failing: 'warn' | 'error' | undefined; // the level logged in the current failing streak
  private readonly tag = newWriterTag(); // temp file names (src/audit/checkpoint-temp.ts), with n
  private n = 0;
  // The row the file records (read at start, then each head this writer put there): the file is
  // replaced only while the database still holds it with the same MAC (see the module comment).
  private anchor: { seq: number; mac: string } | undefined;
  private divergence: string | undefined;
  private ready: Promise<void>; // the start-up check of the file's row against the database; writes wait for it

  constructor(
    readonly path: string,
    private readonly key: AuditKey,
    private readonly log: Logger,
    private readonly guard?: CheckpointAnchor,
  ) {
    this.ready = Promise.resolve();
    const removed = removeStaleTemps(path);
    if (removed) log.info({ file: path, removed }, 'removed audit checkpoint temp files left by a stopped process');
    if (!guard) return;
    const read = readCheckpointFile(path, guard.keys);
    if (read.status === 'ok') this.anchor = { seq: read.checkpoint.seq, mac: read.checkpoint.mac };
    else if (read.status === 'invalid') this.diverge(read.problem);
    else if (guard.keyedRows) this.checkMissing(guard.keyedRows);
    const anchor = this.anchor;
    if (!anchor) return;
    // A failed read says nothing about the log (an outage, a lock past its bound): the row stays unchecked, and each write checks it first (extendsAnchor).
    const unchecked = (err: unknown) =>
      log[failureLevel(err)]({ err, file: path, seq: anchor.seq }, "audit checkpoint file's row could not be checked at start; it is checked again before the file is next written");
    this.ready = Promise.resolve()
      .then(() => guard.holds(anchor.seq, anchor.mac))
      .then((holds) => (holds ? undefined : this.diverge(`the audit log does not hold row ${anchor.seq} as the checkpoint file recorded it`)), unchecked);
  }

  /**
   * The file is missing. With keyed rows in the log it was deleted or lost: started anew at the next
   * commit, it would vouch for whatever tail is left — a cut tail and a deleted file went unnoticed
   * after any restart (review 2026-12-07). So it is not written, an error is logged, `audit verify`
   * keeps failing, and `audit checkpoint-reset` starts a new one deliberately. Asked at start,
   * before this process appends a row (synchronously on SQLite: its own first row must not count).
   */
  private checkMissing(keyedRows: () => Maybe<boolean>): void {
    const missing = () =>
      this.diverge(`the checkpoint file ${this.path} is missing although the audit log already has keyed rows: deleting it is how a cut tail would be hidden, so no new one is started`);
    const found = keyedRows();
    if (found === true) missing();
    else if (found instanceof Promise)
      this.ready = found.then(
        (has) => void (has && missing()),
        (err: unknown) => this.log[failureLevel(err)]({ err, file: this.path }, 'audit log could not be read at start'),
      );
  }

  get diverged(): string | undefined {
    return this.divergence;
  }

  update(head: Head): void {
    if (this.divergence) return;
    if (!this.latest || head.seq > this.latest.seq) this.latest = head;
    this.kick();
  }

  async flush(): Promise<void> {
    await this.ready;
    this.attempted = this.writtenSeq; // a head whose write failed is tried once more
    this.kick();
    await this.settled();
  }

  async settled(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  private nextTmp(): string {
    return tempPath(this.path, this.tag, (this.n += 1));
  }

  // A failing file system would otherwise log at every commit: once per failing streak (`warn` when
  // it is the anchor check's read failing in a database outage), again if an error follows a warn.
  private succeeded(): void {
    if (this.failing) this.log.warn({ file: this.path }, 'audit checkpoint file written again');
    this.failing = undefined;
  }

  private failed(err: unknown): void {
    const level = failureLevel(err);
    if (this.failing === undefined || (level === 'error' && this.failing === 'warn')) this.log[level]({ err, file: this.path }, 'audit checkpoint file could not be written');
    if (this.failing !== 'error') this.failing = level;
  }

  private diverge(problem: string): void {
    if (this.divergence) return;
    this.divergence = problem;
    this.latest = undefined;
    this.log.error(
      { file: this.path, problem },
      'audit checkpoint file kept as it is: the audit log was cut or rewritten (or a backup restored), or the file deleted — run `mcp-consent-proxy audit verify`; after a deliberate restore, start a new file with `mcp-consent-proxy audit checkpoint-reset`',
    );
  }

  /** May the file move on to `head`? Only along the chain it recorded. */
  private async extendsAnchor(head: Head): Promise<boolean> {
    if (this.divergence) return false;
    const anchor = this.anchor;
    if (!this.guard || !anchor) return true;
    if (head.seq >= anchor.seq && (await this.guard.holds(anchor.seq, anchor.mac))) return true;
    this.diverge(`the audit log no longer holds row ${anchor.seq} as the checkpoint file recorded it (the new head is row ${head.seq})`);
    return false;
  }

  /** `head` is on disk: from now on the file records it. */
  private advanceAnchor(head: Head): void {
    if (!this.anchor || head.seq > this.anchor.seq) this.anchor = { seq: head.seq, mac: head.hash };
  }

  private due(): boolean {
    return this.latest !== undefined && this.latest.seq > this.writtenSeq && this.latest.seq > this.attempted;
  }

  private kick(): void {
    if (this.inFlight || !this.due()) return;
    this.inFlight = this.drain().finally(() => {
      this.inFlight = undefined;
      this.kick(); // a head noted while the last write was finishing
    });
  }

  private async drain(): Promise<void> {
    await this.ready;
    while (this.due()) {
      const head = this.latest as Head;
      this.attempted = head.seq;
      const tmp = this.nextTmp();
      try {
        if (!(await this.extendsAnchor(head))) return;
        await writeFile(tmp, renderCheckpoint(this.key, head));
        await rename(tmp, this.path);
        this.writtenSeq = Math.max(this.writtenSeq, head.seq);
        this.advanceAnchor(head);
        this.succeeded();
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => undefined);
        this.failed(err);
      }
    }
  }
}
