/** Verify the audit chain off the main thread (src/audit/verify-worker.ts). */
import { Worker } from 'node:worker_threads';
import type { VerifyOptions, VerifyResult } from './verify.js';
import type { VerifyTarget } from './verify-worker.js';

/**
 * What the worker reads: PostgreSQL when DATABASE_URL is set, else the SQLite file; and the
 * environment it runs in: for PostgreSQL only what `pg` reads (Config.databaseDriverEnv), for
 * SQLite none.
 */
export function verifyTarget(config: { databaseUrl: string | undefined; databasePath: string; databaseDriverEnv: Record<string, string> }): { target: VerifyTarget; env: Record<string, string> } {
  return config.databaseUrl ? { target: { url: config.databaseUrl }, env: { ...config.databaseDriverEnv } } : { target: { path: config.databasePath }, env: {} };
}

/**
 * The worker's entry: compiled, the worker itself (dist/audit/verify-worker.js); from the
 * TypeScript sources (tsx, vitest), an entry that registers tsx in the worker first, as loaders
 * registered in the main thread do not reach workers.
 */
const WORKER_ENTRY = new URL(import.meta.url.endsWith('.ts') ? './verify-worker-entry.js' : './verify-worker.js', import.meta.url);

/**
 * The worker gets the derived audit MAC keys (KeyRing.auditKeys()), never SECRET_KEY: that is
 * all verification needs, and nothing else derived from SECRET_KEY crosses into it. `target` is
 * the SQLite file, or DATABASE_URL for PostgreSQL. Its process.env is `env` (verifyTarget), not
 * a copy of the server's (Node's default, which holds SECRET_KEY).
 */
export function verifyChainInWorker(target: VerifyTarget, options: VerifyOptions, env: Record<string, string> = {}): Promise<VerifyResult> {
  const workerData = { target, keys: options.keys.map((k) => ({ kid: k.kid, key: k.key })), checkpointFile: options.checkpointFile, checkpoint: options.checkpoint };
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_ENTRY, { workerData, env });
    worker.once('message', (result: VerifyResult) => resolve(result));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`audit verification worker exited with ${code}`));
    });
  });
}
