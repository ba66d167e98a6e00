#!/usr/bin/env node
/**
 * The `mcp-consent-proxy` command (package.json `bin`): compiled to dist/cli/bin.js by
 * `npm run build`. From a clone without a build: `npx tsx src/cli/bin.ts` (or `npm run dev`).
 *
 * A command is over when `run` returns (`serve` only after its shutdown, which waits for its
 * requests, the revocations at U they started, the audit log and the database). The process then
 * ends on its own once nothing is pending — and at the latest EXIT_GRACE_MS later, whatever a
 * library left open: pg leaves a connection open after a failed SCRAM exchange (no password in
 * DATABASE_URL), which kept a failed `migrate` or `serve` alive until the server's authentication
 * timeout, so a container that should have restarted did not (README "Exit codes": 0 ok, 1 failure).
 */
import { EXIT_GRACE_MS } from './exit.js';
import { run } from './index.js';

const code = await run(process.argv.slice(2));
process.exitCode = code;
setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
