/**
 * The audit checkpoint file's format (DESIGN §9; the writer: src/audit/checkpoint.ts):
 * `{v, seq, mac, key_id, ts, checkpoint_mac}`, the last an HMAC-SHA-256 under the audit key
 * `key_id`, domain-separated from the row MACs — read and authenticated here, rendered here, and
 * written here whole (temp file + rename) when an operator starts a new one
 * (`audit checkpoint-reset`).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditKey } from '../store/audit-chain.js';
import { newWriterTag, tempPath } from './checkpoint-temp.js';

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

/** The file's content for `head`: the checkpoint and its MAC under the current audit key. */
export function renderCheckpoint(key: AuditKey, head: Head): string {
  if (head.key_id !== key.kid) throw new Error(`audit row ${head.seq} was not made with audit key ${key.kid}: not checkpointed`);
  const cp: Checkpoint = { seq: head.seq, mac: head.hash, key_id: key.kid, ts: new Date().toISOString() };
  return `${JSON.stringify({ v: 1, ...cp, checkpoint_mac: checkpointMac(key.key, cp) })}\n`;
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
 * `audit checkpoint-reset`: the file made anew for `head` (temp file + rename, as the writer does),
 * the file there before moved aside — kept, named `<file>.replaced-<time>` — so the reset never
 * destroys what it replaces. Resolves with that name, or undefined when there was none.
 */
export async function replaceCheckpointFile(path: string, key: AuditKey, head: Head): Promise<string | undefined> {
  const content = renderCheckpoint(key, head);
  let kept: string | undefined = `${path}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  try {
    await rename(path, kept);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    kept = undefined;
  }
  const tmp = tempPath(path, newWriterTag(), 1);
  try {
    await writeFile(tmp, content);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  return kept;
}
