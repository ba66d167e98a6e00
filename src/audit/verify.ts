/**
 * Recomputes the audit chain from the first row and checks it against the checkpoints kept
 * outside the database (DESIGN §3, §9). Reports the first row whose sequence number, link to its
 * predecessor, or own hash/MAC does not match; then whether the chain reaches the checkpoint
 * file's row (and the `--checkpoint` one) with the same MAC there.
 * - Keyed rows are checked with the audit key of their key id (SECRET_KEY, or
 *   SECRET_KEY_PREVIOUS for rows from before a rotation); an unknown key id is a failure that
 *   names the keys at hand.
 * - Legacy rows (plain SHA-256, key id NULL) are accepted only before the first keyed row: every
 *   row since migration 0011 is keyed, so a legacy row after a keyed one was rewritten.
 * - A missing checkpoint file while the log has keyed rows is a failure, not a warning: the
 *   server and the CLI rewrite it at every commit, so it is missing only when deleted (or when
 *   the database was copied without it) — and deleting it is the one step that would hide a
 *   truncated tail. With no keyed row yet (right after the upgrade) it is a warning.
 */
import { GENESIS_HASH, rowHash, rowMac, type AuditKey, type AuditRow } from '../store/audit-chain.js';
import { readCheckpointFile, unknownKey, type Checkpoint, type CheckpointFileRead, type GivenCheckpoint } from './checkpoint.js';
import type { AuditLogStore } from '../store/audit-log.js';

export interface VerifyOptions {
  /** audit MAC keys, current first (KeyRing.auditKeys()); empty without SECRET_KEY */
  keys: AuditKey[];
  /** the checkpoint file to check; undefined when there is none (':memory:' databases) */
  checkpointFile?: string | undefined;
  /** a checkpoint kept elsewhere (`audit verify --checkpoint <seq>:<mac>`) */
  checkpoint?: GivenCheckpoint | undefined;
}

export interface CheckpointCheck {
  /** matches: the chain reaches this row and its MAC is the one recorded */
  status: 'matches' | 'missing' | 'invalid' | 'beyond_chain' | 'differs' | 'not_checked';
  path?: string;
  seq?: number;
  mac?: string;
  key_id?: string;
  ts?: string;
}

export interface VerifyFacts {
  /** rows verified (before the first bad one) */
  rows: number;
  /** the last verified row and its hash/MAC (0 and the genesis hash when none) */
  tipSeq: number;
  tipHash: string;
  /** rows 1..legacyRows are plain SHA-256, written before the keyed chain began */
  legacyRows: number;
  /** the first keyed row, null when there is none */
  keyedFrom: number | null;
  /** the audit key ids seen */
  keyIds: string[];
  /** null when no checkpoint file applies (':memory:') */
  checkpointFile: CheckpointCheck | null;
  /** the `--checkpoint` one, null when none was given */
  checkpoint: CheckpointCheck | null;
  warnings: string[];
}

export type VerifyResult = (VerifyFacts & { ok: true }) | (VerifyFacts & { ok: false; firstBadSeq: number | null; problem: string });

const span = (from: number, to: number) => (from === to ? `row ${from}` : `rows ${from}–${to}`);
const removed = (from: number, to: number) => `${span(from, to)} ${from === to ? 'was' : 'were'} removed`;

/** The checkpoints to compare the chain with, read before the rows (see verifyChain). */
interface Checkpoints {
  path: string | undefined;
  fileRead: CheckpointFileRead | undefined;
  fileCp: Checkpoint | undefined;
  given: GivenCheckpoint | undefined;
}

/** How far the walk along the chain got: the rows verified so far. */
interface Walk {
  prev: string;
  expectedSeq: number;
  rows: number;
  legacyRows: number;
  keyedFrom: number | null;
  keyIds: Set<string>;
}

interface Problem {
  seq: number | null;
  text: string;
}

function factsOf(walk: Walk, cps: Checkpoints): VerifyFacts {
  const { path, fileRead, fileCp, given } = cps;
  return {
    rows: walk.rows,
    tipSeq: walk.expectedSeq - 1,
    tipHash: walk.prev,
    legacyRows: walk.legacyRows,
    keyedFrom: walk.keyedFrom,
    keyIds: [...walk.keyIds],
    checkpointFile: path ? { path, status: fileRead?.status === 'ok' ? 'not_checked' : (fileRead?.status ?? 'not_checked'), ...fileCp } : null,
    checkpoint: given ? { status: 'not_checked', ...given } : null,
    warnings: [],
  };
}

const broken = (firstBadSeq: number | null, problem: string, facts: VerifyFacts): VerifyResult => ({ ok: false, ...facts, firstBadSeq, problem });

/**
 * One row: its place in the sequence, its link to its predecessor, its hash (legacy) or MAC
 * (keyed). Advances the walk past it, or returns what is wrong with it.
 */
function step(walk: Walk, row: AuditRow, keys: Map<string, AuditKey>, allKeys: AuditKey[]): Problem | undefined {
  const { prev } = walk;
  if (row.seq !== walk.expectedSeq) return { seq: walk.expectedSeq, text: `row ${walk.expectedSeq} is missing (next row is ${row.seq})` };
  if (row.prev_hash !== prev) return { seq: row.seq, text: `row ${row.seq} does not link to row ${row.seq - 1} (prev_hash differs)` };
  if (row.key_id === null) {
    if (walk.keyedFrom !== null)
      return {
        seq: row.seq,
        text: `row ${row.seq} is a plain SHA-256 (legacy) row after the keyed chain began at row ${walk.keyedFrom}: every row since is keyed, so this one was rewritten`,
      };
    if (rowHash(prev, row) !== row.hash) return { seq: row.seq, text: `row ${row.seq} was altered (its hash does not match its content)` };
    walk.legacyRows += 1;
  } else {
    const key = keys.get(row.key_id);
    if (!key) return { seq: row.seq, text: `row ${row.seq} was made with audit key ${row.key_id}, ${unknownKey(allKeys)}` };
    if (rowMac(key, prev, row) !== row.hash) return { seq: row.seq, text: `row ${row.seq} was altered (its MAC does not match its content)` };
    walk.keyedFrom ??= row.seq;
    walk.keyIds.add(row.key_id);
  }
  walk.prev = row.hash;
  walk.expectedSeq += 1;
  walk.rows += 1;
  return undefined;
}

/** Does the chain reach the checkpoint file's row with the MAC the file recorded? */
function compareFile(result: VerifyFacts, cps: Checkpoints, atFile: AuditRow | undefined, problems: Problem[]): void {
  const { path, fileRead, fileCp } = cps;
  const check = result.checkpointFile;
  if (!path || !check) return;
  const tip = result.tipSeq;
  if (fileRead?.status === 'invalid') {
    problems.push({ seq: null, text: fileRead.problem });
  } else if (fileRead?.status === 'missing') {
    if (result.keyedFrom !== null) {
      problems.push({
        seq: null,
        text: `the checkpoint file ${path} is missing although the log has keyed rows (the server and the CLI rewrite it at every commit): deleting it is how a truncated tail would be hidden. If this database was copied, copy the file with it`,
      });
    } else if (result.rows > 0) {
      result.warnings.push(
        `no row is keyed yet and there is no checkpoint file ${path}: expected only right after upgrading, before the first new row. Otherwise the keyed rows and the checkpoint were removed — check against a shipped audit.checkpoint line with --checkpoint <seq>:<mac>`,
      );
    }
  } else if (fileCp) {
    if (fileCp.seq > tip) {
      check.status = 'beyond_chain';
      problems.push({ seq: tip + 1, text: `the chain ends at row ${tip} but the checkpoint file records row ${fileCp.seq} (written ${fileCp.ts}): ${removed(tip + 1, fileCp.seq)}` });
    } else if (atFile?.hash !== fileCp.mac || atFile.key_id !== fileCp.key_id) {
      check.status = 'differs';
      problems.push({ seq: fileCp.seq, text: `row ${fileCp.seq} differs from the checkpoint file (written ${fileCp.ts}): the log was rewritten from there or before` });
    } else {
      check.status = 'matches';
    }
  }
}

/** Does the chain reach the given checkpoint's row (`--checkpoint <seq>:<mac>`) with that MAC? */
function compareGiven(result: VerifyFacts, given: GivenCheckpoint | undefined, atGiven: AuditRow | undefined, problems: Problem[]): void {
  if (!given || !result.checkpoint) return;
  const tip = result.tipSeq;
  if (given.seq > tip) {
    result.checkpoint.status = 'beyond_chain';
    problems.push({ seq: tip + 1, text: `the chain ends at row ${tip} but the given checkpoint records row ${given.seq}: ${removed(tip + 1, given.seq)}` });
  } else if (atGiven?.hash !== given.mac) {
    result.checkpoint.status = 'differs';
    problems.push({ seq: given.seq, text: `row ${given.seq} differs from the given checkpoint: the log was rewritten from there or before` });
  } else {
    result.checkpoint.status = 'matches';
  }
}

export async function verifyChain(store: AuditLogStore, options: VerifyOptions = { keys: [] }): Promise<VerifyResult> {
  // Read the checkpoint file BEFORE the rows: it is written only after its row is committed, so
  // read first it never names a row newer than the rows read after it (the rows are read in
  // keyset pages, each seeing every row committed before it: a server appending meanwhile cannot
  // make an intact chain look truncated).
  const path = options.checkpointFile;
  const fileRead: CheckpointFileRead | undefined = path ? readCheckpointFile(path, options.keys) : undefined;
  const cps: Checkpoints = { path, fileRead, fileCp: fileRead?.status === 'ok' ? fileRead.checkpoint : undefined, given: options.checkpoint };

  const keys = new Map(options.keys.map((k) => [k.kid, k]));
  const walk: Walk = { prev: GENESIS_HASH, expectedSeq: 1, rows: 0, legacyRows: 0, keyedFrom: null, keyIds: new Set() };
  let atFile: AuditRow | undefined;
  let atGiven: AuditRow | undefined;
  for await (const row of store.iterate()) {
    const problem = step(walk, row, keys, options.keys);
    if (problem) return broken(problem.seq, problem.text, factsOf(walk, cps));
    if (row.seq === cps.fileCp?.seq) atFile = row;
    if (row.seq === cps.given?.seq) atGiven = row;
  }

  const result = factsOf(walk, cps);
  const problems: Problem[] = [];
  compareFile(result, cps, atFile, problems);
  compareGiven(result, cps.given, atGiven, problems);
  const first = problems[0];
  return first ? broken(first.seq, problems.map((p) => p.text).join('; '), result) : { ok: true, ...result };
}

/** The facts in sentences (CLI and admin page): where the keyed part starts, each checkpoint. */
export function describeVerification(result: VerifyResult): string[] {
  const lines: string[] = [];
  if (result.legacyRows > 0) {
    const pinned = result.keyedFrom !== null ? `; pinned by row ${result.keyedFrom}'s MAC over row ${result.legacyRows}'s hash` : '; no keyed row yet';
    lines.push(`${span(1, result.legacyRows)}: plain SHA-256 (legacy, written before the keyed chain: not tamper-evident on their own against database writers${pinned})`);
  }
  if (result.keyedFrom !== null) lines.push(`${span(result.keyedFrom, result.tipSeq)}: keyed (HMAC-SHA-256, audit key ${result.keyIds.join(', ')})`);
  const describe = (name: string, c: CheckpointCheck) => {
    const at = c.seq !== undefined ? `row ${c.seq}${c.ts ? ` (written ${c.ts})` : ''} ` : '';
    const what = {
      matches: 'matches the chain',
      missing: 'missing',
      invalid: 'not valid',
      beyond_chain: 'is beyond the end of the chain',
      differs: 'differs from the chain',
      not_checked: 'not checked (the chain broke first)',
    }[c.status];
    lines.push(`${name}: ${at}${what}`);
  };
  if (result.checkpointFile) describe(`checkpoint file ${result.checkpointFile.path}`, result.checkpointFile);
  if (result.checkpoint) describe('given checkpoint', result.checkpoint);
  return lines;
}
