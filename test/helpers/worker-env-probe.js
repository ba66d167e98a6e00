// Stands in for the audit verify worker (test/unit/audit-verify-worker-env.test.ts): reports the
// environment the worker was started with, as its result.
import { parentPort } from 'node:worker_threads';

parentPort.postMessage({ env: { ...process.env } });
