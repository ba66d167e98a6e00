/**
 * The audit chain's head kept outside the database (DESIGN §9). Someone who can write the SQLite
 * file cannot forge a keyed row, but can cut rows off the tail: what is left still verifies. The
 * checkpoint says how far the chain reached.
 * - `<data dir>/audit-checkpoint.json` = {v, seq, mac, key_id, ts, checkpoint_mac}, the last an
 *   HMAC-SHA-256 under the audit key `key_id` (domain-separated from row MACs), so it cannot be
 *   forged or edited without SECRET_KEY — only deleted, or replaced by an older genuine one.
 *   Noted by `Audit` after every commit (server and CLI) and written atomically off the event
 *   loop (see createCheckpointWriter). Not written for ':memory:' databases.
 * - The file only ever moves forward along the chain it recorded (`CheckpointAnchor`): a writer
 *   replaces it only while the database still holds the recorded row with the recorded MAC. If
 *   the log was cut or rewritten behind the writer's back (or a backup restored), appending to
 *   what is left would otherwise put the shortened head in the file at the next commit — after a
 *   restart at once — and erase the one trace of the cut. Instead the file is kept as it is, an
 *   error is logged, and `audit verify` goes on naming the problem until the operator moves the
 *   file aside.
 * - `audit.checkpoint` log lines (info: seq, mac, key_id, ts) at start, at least every
 *   CHECKPOINT_LOG_INTERVAL_MS while serving and at stop: shipped with the logs, they are a
 *   checkpoint a database writer cannot reach, checked with `audit verify --checkpoint <seq>:<mac>`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AuditKey } from '../store/audit-chain.js';

export const CHECKPOINT_FILE = 'audit-checkpoint.json';
/** `audit.checkpoint` log lines come at least this often while serving. */
export const CHECKPOINT_LOG_INTERVAL_MS = 10 * 60_000;

const HEX64 = /^[0-9a-f]{64}$/;

/** The head as recorded: row `seq` had MAC `mac` under key `key_id`; written at `ts`. */
export interface Checkpoint {
  seq: number;
  mac: string;
  key_id: string;
  ts: string;
}

/** A checkpoint kept elsewhere: `--checkpoint <seq>:<mac>` (from a shipped log line). */
export interface GivenCheckpoint {
  seq: number;
  mac: string;
}

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
  /** does the database hold row `seq` with MAC `mac`? (one indexed read) */
  holds(seq: number, mac: string): boolean;
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
  /** Write the newest noted head now, synchronously, if it is not on disk yet (shutdown, verify). */
  flushSync(): void;
  /** Resolves once no write is in flight. */
  settled(): Promise<void>;
}

/**
 * Writes go to a temp file (unique per process and write) renamed over the checkpoint, so a
 * reader sees the old or the new checkpoint, never half of one. No fsync: it would cost a disk
 * flush per commit. After a power loss the file may be older than the database (harmless: see
 * Audit) or, with DATABASE_SYNCHRONOUS=NORMAL, newer than what the database kept — then verify
 * reports the lost rows, which is true.
 */
export function createCheckpointWriter(path: string, key: AuditKey, log: Logger, guard?: CheckpointAnchor): CheckpointWriter {
  let latest: Head | undefined; // the newest committed head noted
  let writtenSeq = 0; // the newest head this process has put on disk
  let attempted = 0; // the newest head an asynchronous write was started for
  let inFlight: Promise<void> | undefined;
  let failing = false;
  let n = 0;
  const nextTmp = () => `${path}.${process.pid}.${(n += 1)}.tmp`;

  const render = (head: Head): string => {
    if (head.key_id !== key.kid) throw new Error(`audit row ${head.seq} was not made with audit key ${key.kid}: not checkpointed`);
    const cp: Checkpoint = { seq: head.seq, mac: head.hash, key_id: key.kid, ts: new Date().toISOString() };
    return `${JSON.stringify({ v: 1, ...cp, checkpoint_mac: checkpointMac(key.key, cp) })}\n`;
  };
  // A failing file system would otherwise log at every commit: once per failing streak.
  const succeeded = () => {
    if (failing) log.warn({ file: path }, 'audit checkpoint file written again');
    failing = false;
  };
  const failed = (err: unknown) => {
    if (!failing) log.error({ err, file: path }, 'audit checkpoint file could not be written');
    failing = true;
  };

  // The row the file records (read at start, then each head this writer put there): the file is
  // replaced only while the database still holds it with the same MAC (see the module comment).
  let anchor: { seq: number; mac: string } | undefined;
  let diverged: string | undefined;
  const diverge = (problem: string) => {
    diverged = problem;
    latest = undefined;
    log.error(
      { file: path, problem },
      'audit checkpoint file kept as it is: the audit log was cut or rewritten (or a backup restored) — run `mcp-consent-proxy audit verify`; after a deliberate restore, move the file aside',
    );
  };
  if (guard) {
    const read = readCheckpointFile(path, guard.keys);
    if (read.status === 'ok') anchor = { seq: read.checkpoint.seq, mac: read.checkpoint.mac };
    else if (read.status === 'invalid') diverge(read.problem);
    if (anchor && !guard.holds(anchor.seq, anchor.mac)) diverge(`the audit log does not hold row ${anchor.seq} as the checkpoint file recorded it`);
  }
  /** May the file move on to `head`? Only along the chain it recorded. */
  const extendsAnchor = (head: Head): boolean => {
    if (diverged) return false;
    if (!guard || !anchor) return true;
    if (head.seq >= anchor.seq && guard.holds(anchor.seq, anchor.mac)) return true;
    diverge(`the audit log no longer holds row ${anchor.seq} as the checkpoint file recorded it (the new head is row ${head.seq})`);
    return false;
  };

  const due = () => latest !== undefined && latest.seq > writtenSeq && latest.seq > attempted;
  const kick = () => {
    if (inFlight || !due()) return;
    inFlight = drain().finally(() => {
      inFlight = undefined;
      kick(); // a head noted while the last write was finishing
    });
  };

  async function drain(): Promise<void> {
    while (due()) {
      const head = latest as Head;
      attempted = head.seq;
      const tmp = nextTmp();
      try {
        await writeFile(tmp, render(head));
        // flushSync may have written a newer head meanwhile: do not replace it.
        if (head.seq <= writtenSeq) {
          await rm(tmp, { force: true });
          continue;
        }
        await rename(tmp, path);
        writtenSeq = Math.max(writtenSeq, head.seq);
        if (!anchor || head.seq > anchor.seq) anchor = { seq: head.seq, mac: head.hash };
        succeeded();
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => undefined);
        failed(err);
      }
    }
  }

  return {
    path,
    get diverged() {
      return diverged;
    },
    update(head) {
      if (!extendsAnchor(head)) return;
      if (!latest || head.seq > latest.seq) latest = head;
      kick();
    },
    flushSync() {
      const head = latest;
      if (!head || head.seq <= writtenSeq || !extendsAnchor(head)) return;
      const tmp = nextTmp();
      try {
        writeFileSync(tmp, render(head));
        renameSync(tmp, path);
        writtenSeq = head.seq;
        if (!anchor || head.seq > anchor.seq) anchor = { seq: head.seq, mac: head.hash };
        succeeded();
      } catch (err) {
        rmSync(tmp, { force: true });
        failed(err);
      }
    },
    async settled() {
      while (inFlight) await inFlight;
    },
  };
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

/**
 * Log `audit.checkpoint` now, every CHECKPOINT_LOG_INTERVAL_MS (unref'd timer) and once more when
 * stopped (call the returned function after the last append, before the database closes; with
 * `false` it only stops the timer).
 */
export function scheduleCheckpointLog(tip: () => { seq: number; hash: string; key_id: string | null } | undefined, log: Logger, intervalMs = CHECKPOINT_LOG_INTERVAL_MS): (final?: boolean) => void {
  const emit = () => {
    try {
      const head = tip();
      if (head) log.info({ seq: head.seq, mac: head.hash, key_id: head.key_id, ts: new Date().toISOString() }, 'audit.checkpoint');
    } catch (err) {
      log.error({ err }, 'audit.checkpoint could not read the head');
    }
  };
  emit();
  const timer = setInterval(emit, intervalMs);
  timer.unref();
  return (final = true) => {
    clearInterval(timer);
    if (final) emit();
  };
}
