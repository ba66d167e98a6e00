#!/usr/bin/env node
/**
 * The `mcp-consent-proxy` command (package.json `bin`): compiled to dist/cli/bin.js by
 * `npm run build`. From a clone without a build: `npx tsx src/cli/bin.ts` (or `npm run dev`).
 */
import { run } from './index.js';

process.exitCode = await run(process.argv.slice(2));
