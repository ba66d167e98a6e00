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
 *   error is logged, and `audit verify` goes on naming the problem until the operator moves the
 *   file aside.
 * - `audit.checkpoint` log lines (info: seq, mac, key_id, ts) at start, at least every
 *   CHECKPOINT_LOG_INTERVAL_MS while serving and at stop: shipped with the logs, they are a
 *   checkpoint a database writer cannot reach, checked with `audit verify --checkpoint <seq>:<mac>`
 *   (src/audit/checkpoint-log.ts).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AuditKey } from '../store/audit-chain.js';
import type { Maybe } from '../db/sql.js';
import { failureLevel } from '../errors/database-unavailable.js';
import { newWriterTag, removeStaleTemps, tempPath } from './checkpoint-temp.js';

export const CHECKPOINT_FILE = 'audit-checkpoint.json';

const HEX64 = /^[0-9a-f]{64}$/;

/** The head as recorded: row `seq` had MAC `mac` under key `key_id`; written at `ts`. */
export interface Checkpoint {
  seq: number;
  mac: string;
  key_id: string;
  ts: string;
}

/** A checkpoint kept elsewhere: `--checkpoint <seq>:<mac>` (from a shipped log line). */
export type GivenCheckpoint = Pick<Checkpoint, 'seq' | 'mac'>;

export type CheckpointFileRead = { status: 'missing' } | { status: 'invalid'; problem: string } | { status: 'ok'; checkpoint: Checkpoint };

/** Where the checkpoint file lives; undefined for an in-memory database. */
export function checkpointPath(config: { databasePath: string; dataDir: string }): string | undefined {
  return config.databasePath === ':memory:' ? undefined : join(config.dataDir, CHECKPOINT_FILE);
}

function checkpointMac(key: Buffer, cp: Checkpoint): string {
  return createHmac('sha256', key)
    .update(`mcp-consent-proxy/audit-checkpoint/v1\n${JSON.stringify([cp.seq, cp.mac, cp.key_id, cp.ts])}`)
    .digest('hex');
}

/** A committed head to record. */
export interface Head {
  seq: number;
  hash: string;
  key_id: string | null;
}

/** What a writer checks before it replaces the file: the chain the file recorded still stands. */
export interface CheckpointAnchor {
  /** the audit keys that may have made the file (current first; KeyRing.auditKeys()) */
  keys: AuditKey[];
  /** does the database hold row `seq` with MAC `mac`? (one indexed read; synchronous on SQLite when it can be) */
  holds(seq: number, mac: string): Maybe<boolean>;
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

/** The file's content for `head`: the checkpoint and its MAC under the current audit key. */
function renderCheckpoint(key: AuditKey, head: Head): string {
  if (head.key_id !== key.kid) throw new Error(`audit row ${head.seq} was not made with audit key ${key.kid}: not checkpointed`);
  const cp: Checkpoint = { seq: head.seq, mac: head.hash, key_id: key.kid, ts: new Date().toISOString() };
  return `${JSON.stringify({ v: 1, ...cp, checkpoint_mac: checkpointMac(key.key, cp) })}\n`;
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
  private readonly ready: Promise<void>; // the start-up check of the file's row against the database; writes wait for it

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
    const anchor = this.anchor;
    if (!anchor) return;
    // A failed read says nothing about the log (an outage, a lock past its bound): the row stays unchecked, and each write checks it first (extendsAnchor).
    const unchecked = (err: unknown) =>
      log[failureLevel(err)]({ err, file: path, seq: anchor.seq }, "audit checkpoint file's row could not be checked at start; it is checked again before the file is next written");
    this.ready = Promise.resolve()
      .then(() => guard.holds(anchor.seq, anchor.mac))
      .then((holds) => (holds ? undefined : this.diverge(`the audit log does not hold row ${anchor.seq} as the checkpoint file recorded it`)), unchecked);
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
      'audit checkpoint file kept as it is: the audit log was cut or rewritten (or a backup restored) — run `mcp-consent-proxy audit verify`; after a deliberate restore, move the file aside',
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

/** Read and authenticate the checkpoint file with the audit keys (current and previous). */
export function readCheckpointFile(path: string, keys: AuditKey[]): CheckpointFileRead {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing' };
    return { status: 'invalid', problem: `the checkpoint file ${path} cannot be read (${(err as Error).message})` };
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { status: 'invalid', problem: `the checkpoint file ${path} is not valid JSON` };
  }
  const { v, seq, mac, key_id: kid, ts, checkpoint_mac: given } = parsed ?? {};
  if (
    v !== 1 ||
    !Number.isSafeInteger(seq) ||
    (seq as number) < 1 ||
    typeof mac !== 'string' ||
    !HEX64.test(mac) ||
    typeof kid !== 'string' ||
    typeof ts !== 'string' ||
    typeof given !== 'string' ||
    !HEX64.test(given)
  ) {
    return { status: 'invalid', problem: `the checkpoint file ${path} does not have the fields of a checkpoint (v, seq, mac, key_id, ts, checkpoint_mac)` };
  }
  const key = keys.find((k) => k.kid === kid);
  if (!key) return { status: 'invalid', problem: `the checkpoint file ${path} was made with audit key ${kid}, ${unknownKey(keys)}` };
  const checkpoint: Checkpoint = { seq: seq as number, mac, key_id: kid, ts };
  if (!timingSafeEqual(Buffer.from(checkpointMac(key.key, checkpoint), 'hex'), Buffer.from(given, 'hex'))) {
    return { status: 'invalid', problem: `the checkpoint file ${path} was altered (its MAC does not match its content)` };
  }
  return { status: 'ok', checkpoint };
}

/** The end of a sentence about a key id that none of `keys` has. */
export function unknownKey(keys: AuditKey[]): string {
  if (!keys.length) return "and no SECRET_KEY is available to check it: run with the server's SECRET_KEY";
  return `which is neither SECRET_KEY's (${keys[0]?.kid}) nor SECRET_KEY_PREVIOUS's (${keys[1]?.kid ?? 'not set'}): after a rotation, set SECRET_KEY_PREVIOUS to the key in use before it`;
}

/** `<seq>:<mac>` → a checkpoint, or undefined when malformed. */
export function parseCheckpointArg(text: string): GivenCheckpoint | undefined {
  const match = /^(\d{1,15}):([0-9a-fA-F]{64})$/.exec(text.trim());
  if (!match) return undefined;
  const seq = Number(match[1]);
  return seq >= 1 ? { seq, mac: (match[2] as string).toLowerCase() } : undefined;
}
