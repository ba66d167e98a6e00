#!/usr/bin/env node
// The `mcp-consent-proxy` command: loads the TypeScript sources through tsx.
import { register } from 'tsx/esm/api';

register();
const { run } = await import('./index.ts');
process.exitCode = await run(process.argv.slice(2));
