/**
 * The `mcp-consent-proxy` command line (DESIGN §5). Exit codes: 0 ok, 1 failure, 2 bad usage.
 * Every failure is one clear sentence on stderr, never a bare stack trace. The commands live in
 * src/cli/commands/; this module finds one, parses its arguments and maps its failures.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../config/load.js';
import { DatabaseMissingError } from '../db/open.js';
import { MigrationError } from '../db/migrate.js';
import { MissingSecretError } from './context.js';
import { defaultIo, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, HELP_OPTION, UsageError, type Command, type Io } from './command.js';
import { STORAGE_COMMANDS } from './commands/storage.js';
import { DATA_COMMANDS } from './commands/data.js';
import { DOCTOR_COMMAND } from './commands/doctor.js';
import { packageVersion } from './version.js';

export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type Io } from './command.js';

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'run the server (the default)',
    usage: 'mcp-consent-proxy serve',
    options: {},
    async run(_args, io) {
      const { serve } = await import('./commands/serve.js');
      return serve(io);
    },
  },
  ...STORAGE_COMMANDS,
  ...DATA_COMMANDS,
  ...DOCTOR_COMMAND,
};

function topHelp(): string {
  const lines = ['usage: mcp-consent-proxy <command> [options]', '       mcp-consent-proxy --version', '', 'commands:'];
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length)) + 2;
  for (const [name, cmd] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(width)} ${cmd.summary}`);
  lines.push('', 'Configuration comes from the environment (see README "Configuration").', "Run 'mcp-consent-proxy <command> --help' for a command's options.");
  return lines.join('\n');
}

/** `audit`, `clients`, `consents` without a known subcommand: their list (with --help, exit 0), else a usage error naming them; undefined for any other word. */
function groupAnswer(argv: string[], io: Io): number | undefined {
  const group = Object.keys(COMMANDS).filter((name) => name.startsWith(`${argv[0]} `));
  if (!group.length) return undefined;
  const sub = argv[1];
  if (sub === '--help' || sub === '-h') {
    io.out(`${argv[0]} commands:\n${group.map((name) => `  ${name}  ${(COMMANDS[name] as Command).summary}`).join('\n')}`);
    return EXIT_OK;
  }
  const which = sub === undefined || sub.startsWith('-') ? `"${argv[0]}" needs a subcommand` : `unknown subcommand "${argv[0]} ${sub}"`;
  io.err(`${which}: ${group.join(', ')}; run 'mcp-consent-proxy <command> --help' for its options`);
  return EXIT_USAGE;
}

function findCommand(argv: string[]): { name: string; rest: string[] } | undefined {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    if (COMMANDS[name]) return { name, rest: argv.slice(words) };
  }
  return undefined;
}

/**
 * Client ids are random base64url and may start with "-" (1 in 64), as may consent subjects:
 * such a value is data, not an option. A value after a string option is joined to it
 * (`--client=-abc`), and any other word starting with "-" that names no declared option goes
 * after `--` as a positional.
 */
export function normaliseArgs(args: string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const known = new Map<string, { name: string; type: string }>();
  for (const [name, def] of Object.entries(options)) {
    known.set(`--${name}`, { name, type: def.type });
    if (def.short) known.set(`-${def.short}`, { name, type: def.type });
  }
  const flags: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] as string;
    if (arg === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    const def = known.get(arg.split('=')[0] as string);
    if (def) {
      if (def.type === 'string' && !arg.includes('=') && i + 1 < args.length) {
        flags.push(`--${def.name}=${args[i + 1] as string}`);
        i += 1;
      } else flags.push(arg);
    } else if (arg.startsWith('--'))
      flags.push(arg); // an unknown option: parseArgs names it
    else positionals.push(arg);
  }
  return positionals.length ? [...flags, '--', ...positionals] : flags;
}

/** Run the CLI; resolves with the exit code. */
export async function run(argv: string[], io: Io = defaultIo): Promise<number> {
  if (argv.length === 0) argv = ['serve'];
  if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.out(topHelp());
    return EXIT_OK;
  }
  if (argv[0] === '--version' || argv[0] === '-v' || argv[0] === 'version') {
    io.out(packageVersion());
    return EXIT_OK;
  }
  const found = findCommand(argv);
  if (!found) {
    const grouped = groupAnswer(argv, io);
    if (grouped !== undefined) return grouped;
  }
  if (!found) {
    io.err(
      `unknown command "${argv
        .filter((a) => !a.startsWith('-'))
        .slice(0, 2)
        .join(' ')}"; run 'mcp-consent-proxy --help' for the list`,
    );
    return EXIT_USAGE;
  }
  const command = COMMANDS[found.name] as Command;
  let parsed;
  try {
    parsed = parseArgs({
      args: normaliseArgs(found.rest, { ...command.options, ...HELP_OPTION }),
      options: { ...command.options, ...HELP_OPTION },
      strict: true,
      allowPositionals: Boolean(command.positionals),
    });
  } catch (err) {
    io.err(`${(err as Error).message.replace(/\. To specify.*$/s, '')}\nusage: ${command.usage}`);
    return EXIT_USAGE;
  }
  if (parsed.values.help) {
    io.out(`${command.summary}\nusage: ${command.usage}`);
    return EXIT_OK;
  }
  try {
    return await command.run(parsed, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${err.message}\nusage: ${command.usage}`);
      return EXIT_USAGE;
    }
    if (err instanceof ConfigError || err instanceof MigrationError || err instanceof DatabaseMissingError || err instanceof MissingSecretError) {
      io.err(err.message);
      return EXIT_FAILURE;
    }
    io.err(`${found.name} failed: ${(err as Error).message}`);
    return EXIT_FAILURE;
  }
}
