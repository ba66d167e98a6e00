/**
 * Entry for `npm start`: the `serve` command. See src/cli/index.ts for every command.
 */
import { run } from './cli/index.js';

process.exitCode = await run(['serve', ...process.argv.slice(2)]);
