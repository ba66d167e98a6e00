// Worker-thread entry when running from the TypeScript sources (tsx, vitest; see verify-async.ts):
// loaders registered in the main thread do not reach workers, so register tsx here, then load the
// TypeScript worker. The compiled build (dist/) starts dist/audit/verify-worker.js directly.
import { register } from 'tsx/esm/api';

register();
await import('./verify-worker.ts');
