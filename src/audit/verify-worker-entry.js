// Worker-thread entry: loaders registered in the main thread do not reach workers, so register
// tsx here, then load the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./verify-worker.ts');
