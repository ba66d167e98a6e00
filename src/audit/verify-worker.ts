/**
 * Runs the audit chain verification in a worker thread with its own read-only connection (SQLite)
 * or its own one-connection pool (PostgreSQL, DATABASE_URL), so
 * verifying a million rows (seconds) does not stall the server's event loop. The same
 * `verifyChain` as `audit verify`: keyed MACs, the checkpoint file, an optional given checkpoint.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openSqliteSql } from '../db/sqlite-sql.js';
import { PgSql } from '../db/pg-sql.js';
import type { Sql } from '../db/sql.js';
import { createAuditLogStore } from '../store/audit-log.js';
import { verifyChain } from './verify.js';
import type { GivenCheckpoint } from './checkpoint.js';

/** The database to read: the SQLite file, or DATABASE_URL (PostgreSQL, one connection). */
export type VerifyTarget = { path: string } | { url: string };

const data = workerData as { target: VerifyTarget; keys: { kid: string; key: Uint8Array }[]; checkpointFile?: string; checkpoint?: GivenCheckpoint };
// Buffers arrive as plain Uint8Arrays (structured clone).
const keys = data.keys.map((k) => ({ kid: k.kid, key: Buffer.from(k.key) }));
const sql: Sql = 'url' in data.target ? new PgSql({ url: data.target.url, poolMax: 1 }) : openSqliteSql(data.target.path, { mustExist: true, readonly: true });
try {
  parentPort?.postMessage(await verifyChain(createAuditLogStore(sql), { keys, checkpointFile: data.checkpointFile, checkpoint: data.checkpoint }));
} finally {
  await sql.close();
}
