/**
 * The audit chain's head in the logs (DESIGN §9; the checkpoint file is src/audit/checkpoint.ts):
 * `audit.checkpoint` lines (info: seq, mac, key_id, ts) at start, at least every
 * CHECKPOINT_LOG_INTERVAL_MS while serving and at stop. Shipped with the logs, they are a
 * checkpoint a database writer cannot reach, checked with `audit verify --checkpoint <seq>:<mac>`.
 */
import type { Logger } from 'pino';
import { failureLevel } from '../errors/database-unavailable.js';

/** `audit.checkpoint` log lines come at least this often while serving. */
export const CHECKPOINT_LOG_INTERVAL_MS = 10 * 60_000;

type Tip = { seq: number; hash: string; key_id: string | null } | undefined;

/**
 * Log `audit.checkpoint` now, every CHECKPOINT_LOG_INTERVAL_MS (unref'd timer) and once more when
 * stopped (call the returned function after the last append, before the database closes, and
 * await it; with `false` it only stops the timer).
 */
export function scheduleCheckpointLog(tip: () => Promise<Tip>, log: Logger, intervalMs = CHECKPOINT_LOG_INTERVAL_MS): (final?: boolean) => Promise<void> {
  const emit = async () => {
    try {
      const head = await tip();
      if (head) log.info({ seq: head.seq, mac: head.hash, key_id: head.key_id, ts: new Date().toISOString() }, 'audit.checkpoint');
    } catch (err) {
      log[failureLevel(err)]({ err }, 'audit.checkpoint could not read the head');
    }
  };
  void emit();
  const timer = setInterval(() => void emit(), intervalMs);
  timer.unref();
  return async (final = true) => {
    clearInterval(timer);
    if (final) await emit();
  };
}
