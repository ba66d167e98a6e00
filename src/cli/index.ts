/**
 * The `mcp-consent-proxy` command line (DESIGN §5). Exit codes: 0 ok, 1 failure, 2 bad usage.
 * Every failure is one clear sentence on stderr, never a bare stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createWriteStream, type WriteStream } from 'node:fs';
import { ConfigError, loadConfig } from '../config/load.js';
import { DatabaseMissingError, openDatabase } from '../db/open.js';
import { migrate, MigrationError } from '../db/migrate.js';
import { createAuditLogStore } from '../store/audit-log.js';
import { verifyChain } from '../audit/verify.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

class UsageError extends Error {}

export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: Record<string, string | undefined>;
}

const defaultIo: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  env: process.env,
};

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(args: { values: Record<string, unknown>; positionals: string[] }, io: Io): Promise<number>;
}

const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

function storageDb(io: Io, mustExist: boolean) {
  const config = loadConfig(io.env, { requireUpstream: false });
  return { config, db: openDatabase(config.databasePath, { mustExist, synchronous: config.databaseSynchronous }) };
}

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'run the server (the default)',
    usage: 'mcp-consent-proxy serve',
    options: {},
    async run(_args, io) {
      const { serve } = await import('./serve.js');
      return serve(io);
    },
  },
  migrate: {
    summary: 'create or upgrade the database, then exit',
    usage: 'mcp-consent-proxy migrate',
    options: {},
    async run(_args, io) {
      const { db, config } = storageDb(io, false);
      try {
        const result = migrate(db);
        io.out(result.applied.length ? `applied ${result.applied.join(', ')} to ${config.databasePath}` : `${config.databasePath} is up to date (migration ${result.current})`);
        return EXIT_OK;
      } finally {
        db.close();
      }
    },
  },
  'audit verify': {
    summary: 'recompute the audit log hash chain; exit 1 and name the first bad row if broken',
    usage: 'mcp-consent-proxy audit verify [--json]',
    options: { json: { type: 'boolean' } },
    async run({ values }, io) {
      const { db } = storageDb(io, true);
      try {
        migrate(db);
        const result = verifyChain(createAuditLogStore(db));
        if (values.json) io.out(JSON.stringify(result));
        else if (result.ok) io.out(`audit log intact: ${result.rows} rows, chain verified up to row ${result.tipSeq} (hash ${result.tipHash})`);
        else io.err(`audit log BROKEN at row ${result.firstBadSeq}: ${result.problem}`);
        return result.ok ? EXIT_OK : EXIT_FAILURE;
      } finally {
        db.close();
      }
    },
  },
  'audit export': {
    summary: 'write the audit log as NDJSON (one row per line, hashes included)',
    usage: 'mcp-consent-proxy audit export [--since <ISO time>] [--output <file>]',
    options: { since: { type: 'string' }, output: { type: 'string', short: 'o' } },
    async run({ values }, io) {
      const since = values.since as string | undefined;
      if (since !== undefined && Number.isNaN(Date.parse(since))) throw new UsageError(`--since must be an ISO 8601 time such as 2026-11-01T00:00:00Z (got "${since}")`);
      const { db } = storageDb(io, true);
      let file: WriteStream | undefined;
      try {
        const store = createAuditLogStore(db);
        const write = values.output ? ((file = createWriteStream(values.output as string)), (line: string) => file?.write(`${line}\n`)) : (line: string) => io.out(line);
        let n = 0;
        for (const row of store.iterate(since ? { from: new Date(since).toISOString() } : {})) {
          write(JSON.stringify({ ...row, details: row.details ? JSON.parse(row.details) : null }));
          n += 1;
        }
        if (file) {
          await new Promise<void>((resolve, reject) => file?.end((err?: Error | null) => (err ? reject(err) : resolve())));
          io.err(`wrote ${n} rows to ${values.output as string}`);
        }
        return EXIT_OK;
      } finally {
        db.close();
      }
    },
  },
};

function topHelp(): string {
  const lines = ['usage: mcp-consent-proxy <command> [options]', '', 'commands:'];
  for (const [name, cmd] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(18)} ${cmd.summary}`);
  lines.push('', 'Configuration comes from the environment (see README "Configuration").', "Run 'mcp-consent-proxy <command> --help' for a command's options.");
  return lines.join('\n');
}

function findCommand(argv: string[]): { name: string; rest: string[] } | undefined {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    if (COMMANDS[name]) return { name, rest: argv.slice(words) };
  }
  return undefined;
}

/** Run the CLI; resolves with the exit code. */
export async function run(argv: string[], io: Io = defaultIo): Promise<number> {
  if (argv.length === 0) argv = ['serve'];
  if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.out(topHelp());
    return EXIT_OK;
  }
  const found = findCommand(argv);
  if (!found) {
    io.err(`unknown command "${argv.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ')}"; run 'mcp-consent-proxy --help' for the list`);
    return EXIT_USAGE;
  }
  const command = COMMANDS[found.name] as Command;
  let parsed;
  try {
    parsed = parseArgs({ args: found.rest, options: { ...command.options, ...HELP_OPTION }, strict: true, allowPositionals: false });
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
    if (err instanceof ConfigError || err instanceof MigrationError || err instanceof DatabaseMissingError) {
      io.err(err.message);
      return EXIT_FAILURE;
    }
    io.err(`${found.name} failed: ${(err as Error).message}`);
    return EXIT_FAILURE;
  }
}
