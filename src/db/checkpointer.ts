/**
 * SQLite's WAL checkpoints off the request path (issue 14). In WAL mode every commit appends the
 * pages it changed to the -wal file; a checkpoint copies them back into the database file and,
 * with `synchronous = NORMAL`, fsyncs both files. By default SQLite runs one inside the commit
 * that takes the WAL past 1000 pages — on the event loop, in the middle of some request: the
 * benchmark measured COMMIT at 203 µs on average with it, 101 µs without the fsyncs.
 *
 * Here a worker thread with a connection of its own runs `PRAGMA wal_checkpoint(PASSIVE)` every
 * CHECKPOINT_INTERVAL_MS: PASSIVE never waits for a reader or writer, and a checkpoint is what
 * any connection may do at any time, so durability and isolation are SQLite's own, unchanged
 * (a crash at any moment leaves the database and WAL as SQLite's recovery expects). The server's
 * connection keeps an automatic checkpoint as a safety net, at SAFETY_NET_PAGES (about 40 MB of
 * WAL): reached only if the worker stops or falls behind. The WAL file is truncated back to
 * JOURNAL_SIZE_LIMIT after it was reset.
 *
 * The worker is plain JavaScript (evaluated, so it runs the same from the sources and from dist/)
 * and loads the better-sqlite3 this process loaded. Its failures are reported to `onError` and
 * never stop the server: the safety net checkpoints then.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Db } from './open.js';

export const CHECKPOINT_INTERVAL_MS = 200;
export const SAFETY_NET_PAGES = 10_000;
export const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
let db;
try {
  db = new Database(workerData.path, { fileMustExist: true });
  db.pragma('busy_timeout = 0');
} catch (err) {
  parentPort.postMessage({ error: String(err && err.message) });
  process.exit(0);
}
let failing = false;
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    failing = false;
  } catch (err) {
    if (!failing) parentPort.postMessage({ error: String(err && err.message) });
    failing = true;
  }
}, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
  db.close();
  parentPort.postMessage({ stopped: true });
});
`;

export interface Checkpointer {
  /** stop the worker (after one last checkpoint); resolves once its connection is closed */
  stop(): Promise<void>;
}

/** Start checkpointing `path` (a WAL database `db` is open on) in a worker; `db` gets the safety net. */
export function startCheckpointer(db: Db, path: string, onError: (message: string) => void, intervalMs = CHECKPOINT_INTERVAL_MS): Checkpointer {
  let worker: Worker;
  try {
    const module = createRequire(import.meta.url).resolve('better-sqlite3');
    // env: not a copy of the server's environment (SECRET_KEY); the worker needs only workerData.
    worker = new Worker(WORKER, { eval: true, workerData: { module, path, intervalMs }, env: {} });
  } catch (err) {
    // No worker here (a bundled build, Node's permission model): SQLite keeps checkpointing in its commits.
    onError((err as Error).message);
    return { stop: async () => undefined };
  }
  db.pragma(`wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
  db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
  worker.unref();
  let exited = false;
  const stopped = new Promise<void>((resolve) => {
    worker.on('message', (m: { error?: string; stopped?: boolean }) => {
      if (m.error) onError(m.error);
      if (m.stopped) resolve();
    });
    worker.on('error', (err) => onError(err.message));
    worker.on('exit', () => {
      exited = true;
      resolve();
    });
  });
  return {
    async stop() {
      if (!exited) worker.postMessage('stop');
      await stopped;
      await worker.terminate();
    },
  };
}
