/**
 * Entry for `npm start`: the `serve` command, ended as src/cli/bin.ts ends every command (at the
 * latest EXIT_GRACE_MS after `run` returns, whatever a library left open). See src/cli/index.ts
 * for every command.
 */
import { EXIT_GRACE_MS } from './cli/exit.js';
import { run } from './cli/index.js';

const code = await run(['serve', ...process.argv.slice(2)]);
process.exitCode = code;
setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
