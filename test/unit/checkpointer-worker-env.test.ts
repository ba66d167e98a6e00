/**
 * SECURITY.md "Audit log access": the SQLite checkpointer's worker (src/db/checkpointer.ts) runs
 * with an empty environment, not Node's default copy of the server's (which holds SECRET_KEY;
 * review of 2026-12-06). The real worker starts, with the options P passes, and reports the
 * environment it sees; it still checkpoints.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, expect, it, vi } from 'vitest';
import { openDatabase } from '../../src/db/open.js';
import { startCheckpointer } from '../../src/db/checkpointer.js';

const seen: Record<string, string>[] = [];
vi.mock('node:worker_threads', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:worker_threads')>();
  class ReportingWorker extends actual.Worker {
    constructor(entry: string | URL, options?: import('node:worker_threads').WorkerOptions) {
      super(entry, options);
      // A second worker with the very same options tells what environment the checkpointer's has.
      const probe = new actual.Worker('require("node:worker_threads").parentPort.postMessage({ ...process.env })', { ...options, eval: true, workerData: undefined });
      probe.once('message', (env: Record<string, string>) => {
        seen.push(env);
        void probe.terminate();
      });
    }
  }
  return { ...actual, Worker: ReportingWorker };
});

const saved = process.env.SECRET_KEY;
afterEach(() => {
  if (saved === undefined) delete process.env.SECRET_KEY;
  else process.env.SECRET_KEY = saved;
});

it('runs with an empty environment and still checkpoints', async () => {
  process.env.SECRET_KEY = randomBytes(32).toString('base64url');
  const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'checkpointer-env-')), 'p.db'));
  const errors: string[] = [];
  const checkpointer = startCheckpointer(db, db.name, (message) => errors.push(message), 20);
  db.exec('CREATE TABLE t (x)');
  for (let i = 0; i < 50; i++) db.prepare('INSERT INTO t VALUES (?)').run(i);
  for (let i = 0; i < 500 && seen.length === 0; i++) await new Promise((done) => setTimeout(done, 10));
  expect(seen).toEqual([{}]);
  await checkpointer.stop();
  expect(errors).toEqual([]);
  db.close();
});
