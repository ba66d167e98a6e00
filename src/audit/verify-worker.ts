/**
 * Runs the audit chain verification in a worker thread with its own read-only connection, so
 * verifying a million rows (seconds) does not stall the server's event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase } from '../db/open.js';
import { createAuditLogStore } from '../store/audit-log.js';
import { verifyChain } from './verify.js';

const db = openDatabase(workerData.path as string, { mustExist: true, readonly: true });
try {
  parentPort?.postMessage(verifyChain(createAuditLogStore(db)));
} finally {
  db.close();
}
