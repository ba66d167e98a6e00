/**
 * The audit chain's head in the logs (DESIGN §9; the checkpoint file is src/audit/checkpoint.ts):
 * `audit.checkpoint` lines (info: seq, mac, key_id, ts) at start, at least every
 * CHECKPOINT_LOG_INTERVAL_MS while serving and at stop. Shipped with the logs, they are a
 * checkpoint a database writer cannot reach, checked with `audit verify --checkpoint <seq>:<mac>`.
 */
import type { Logger } from 'pino';

/** `audit.checkpoint` log lines come at least this often while serving. */
export const CHECKPOINT_LOG_INTERVAL_MS = 10 * 60_000;

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
