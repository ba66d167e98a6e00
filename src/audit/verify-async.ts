/** Verify the audit chain off the main thread (src/audit/verify-worker.ts). */
import { Worker } from 'node:worker_threads';
import type { VerifyResult } from './verify.js';

export function verifyChainInWorker(databasePath: string): Promise<VerifyResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./verify-worker-entry.js', import.meta.url), { workerData: { path: databasePath } });
    worker.once('message', (result: VerifyResult) => resolve(result));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`audit verification worker exited with ${code}`));
    });
  });
}
