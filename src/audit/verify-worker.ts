/**
 * Runs the audit chain verification in a worker thread with its own read-only connection, so
 * verifying a million rows (seconds) does not stall the server's event loop. The same
 * `verifyChain` as `audit verify`: keyed MACs, the checkpoint file, an optional given checkpoint.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from '../db/open.js';
import { createAuditLogStore } from '../store/audit-log.js';
import { verifyChain } from './verify.js';
import type { GivenCheckpoint } from './checkpoint.js';

const data = workerData as { path: string; keys: { kid: string; key: Uint8Array }[]; checkpointFile?: string; checkpoint?: GivenCheckpoint };
// Buffers arrive as plain Uint8Arrays (structured clone).
const keys = data.keys.map((k) => ({ kid: k.kid, key: Buffer.from(k.key) }));
const db = openDatabase(data.path, { mustExist: true, readonly: true });
try {
  parentPort?.postMessage(verifyChain(createAuditLogStore(db), { keys, checkpointFile: data.checkpointFile, checkpoint: data.checkpoint }));
} finally {
  db.close();
}
