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
import { describeVerification, verifyChain } from '../audit/verify.js';
import { checkpointPath, parseCheckpointArg } from '../audit/checkpoint.js';
import { KeyRing } from '../crypto/keys.js';
import { cliSecret, MissingSecretError, openCliContext, type CliContext } from './context.js';

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
  /** positional arguments it takes (names, for usage) */
  positionals?: string[];
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
    summary: 'verify the audit chain (keyed MACs) and the checkpoint file; exit 1 naming the problem if broken',
    usage: 'mcp-consent-proxy audit verify [--checkpoint <seq>:<mac>] [--json]',
    options: { json: { type: 'boolean' }, checkpoint: { type: 'string' } },
    async run({ values }, io) {
      const given = values.checkpoint === undefined ? undefined : parseCheckpointArg(values.checkpoint as string);
      if (values.checkpoint !== undefined && !given) throw new UsageError(`--checkpoint must be <seq>:<mac>, a row number and its 64-hex-digit MAC, as in an audit.checkpoint log line (got "${values.checkpoint as string}")`);
      const { config, db } = storageDb(io, true);
      try {
        migrate(db);
        // DESIGN §9: keyed rows verify with SECRET_KEY's audit key, rows from before a rotation
        // with SECRET_KEY_PREVIOUS's. Without any, legacy rows still verify; keyed ones cannot.
        const secret = cliSecret(config);
        const keys = secret ? new KeyRing(secret, config.secretKeyPrevious).auditKeys() : [];
        const result = verifyChain(createAuditLogStore(db), { keys, checkpointFile: checkpointPath(config), checkpoint: given });
        if (values.json) {
          io.out(JSON.stringify(result));
        } else {
          if (result.ok) io.out(`audit log intact: ${result.rows} rows, chain verified up to row ${result.tipSeq} (hash ${result.tipHash})`);
          else io.err(`audit log BROKEN${result.firstBadSeq === null ? '' : ` at row ${result.firstBadSeq}`}: ${result.problem}`);
          for (const line of describeVerification(result)) io.out(`  ${line}`);
          for (const warning of result.warnings) io.err(`warning: ${warning}`);
        }
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

/** Plain-text table for list output. */
function table(rows: Record<string, unknown>[], columns: string[]): string {
  if (!rows.length) return '(none)';
  const cells = rows.map((r) => columns.map((c) => (r[c] === null || r[c] === undefined ? '' : String(r[c]))));
  const widths = columns.map((c, i) => Math.min(48, Math.max(c.length, ...cells.map((row) => (row[i] as string).length))));
  const line = (values: string[]) => values.map((v, i) => (v.length > (widths[i] as number) ? `${v.slice(0, (widths[i] as number) - 1)}…` : v.padEnd(widths[i] as number))).join('  ').trimEnd();
  return [line(columns), ...cells.map(line)].join('\n');
}

const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : null);

async function withContext<T>(io: Io, work: (ctx: CliContext) => Promise<T> | T): Promise<T> {
  const ctx = openCliContext(io.env);
  try {
    return await work(ctx);
  } finally {
    await ctx.close();
  }
}

function requirePositional(positionals: string[], name: string): string {
  const value = positionals[0];
  if (!value || positionals.length > 1) throw new UsageError(`expected exactly one ${name}`);
  return value;
}

const DATA_COMMANDS: Record<string, Command> = {
  'clients list': {
    summary: 'list registered clients with provenance and active consents',
    usage: 'mcp-consent-proxy clients list [--search <text>] [--disabled | --active] [--limit N] [--json]',
    options: { search: { type: 'string' }, disabled: { type: 'boolean' }, active: { type: 'boolean' }, limit: { type: 'string' }, json: { type: 'boolean' } },
    async run({ values }, io) {
      const limit = values.limit === undefined ? 100 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive whole number');
      return withContext(io, (ctx) => {
        const rows = ctx.stores.clientsMeta.list({ q: values.search as string | undefined, status: values.disabled ? 'disabled' : values.active ? 'active' : undefined, limit });
        const out = rows.map((r) => ({ client_id: r.client_id, client_name: r.client_name, registered_at: iso(r.registered_at), ip: r.ip, redirect_hosts: r.redirect_hosts, last_used_at: iso(r.last_used_at), active_consents: r.active_consents, status: r.disabled_at ? 'disabled' : 'active' }));
        io.out(values.json ? JSON.stringify(out) : table(out, ['client_id', 'client_name', 'registered_at', 'redirect_hosts', 'last_used_at', 'active_consents', 'status']));
        return EXIT_OK;
      });
    },
  },
  'clients disable': {
    summary: 'refuse a client from now on and revoke its consents, grants and tokens',
    usage: 'mcp-consent-proxy clients disable <client_id>',
    options: {},
    positionals: ['client_id'],
    async run({ positionals }, io) {
      const clientId = requirePositional(positionals, 'client_id');
      return withContext(io, (ctx) => {
        const result = ctx.ops.disableClient(clientId, { actor: 'cli' });
        if (!result) {
          io.err(`no client ${clientId}`);
          return EXIT_FAILURE;
        }
        io.out(`disabled ${clientId}; revoked ${result.revokedConsents} consent(s)`);
        return EXIT_OK;
      });
    },
  },
  'clients enable': {
    summary: 'allow a disabled client again (its revoked consents stay revoked)',
    usage: 'mcp-consent-proxy clients enable <client_id>',
    options: {},
    positionals: ['client_id'],
    async run({ positionals }, io) {
      const clientId = requirePositional(positionals, 'client_id');
      return withContext(io, (ctx) => {
        if (!ctx.ops.enableClient(clientId, { actor: 'cli' })) {
          io.err(`no client ${clientId}`);
          return EXIT_FAILURE;
        }
        io.out(`enabled ${clientId}`);
        return EXIT_OK;
      });
    },
  },
  'clients delete': {
    summary: 'delete a client registration, revoking its consents, grants and tokens',
    usage: 'mcp-consent-proxy clients delete <client_id>',
    options: {},
    positionals: ['client_id'],
    async run({ positionals }, io) {
      const clientId = requirePositional(positionals, 'client_id');
      return withContext(io, (ctx) => {
        const result = ctx.ops.deleteClient(clientId, { actor: 'cli' });
        if (!result) {
          io.err(`no client ${clientId}`);
          return EXIT_FAILURE;
        }
        io.out(`deleted ${clientId}; revoked ${result.revokedConsents} consent(s)`);
        return EXIT_OK;
      });
    },
  },
  'consents list': {
    summary: 'list consents (active ones unless --all)',
    usage: 'mcp-consent-proxy consents list [--subject <sub>] [--client <client_id>] [--all] [--limit N] [--json]',
    options: { subject: { type: 'string' }, client: { type: 'string' }, all: { type: 'boolean' }, limit: { type: 'string' }, json: { type: 'boolean' } },
    async run({ values }, io) {
      const limit = values.limit === undefined ? 100 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive whole number');
      return withContext(io, (ctx) => {
        const rows = ctx.stores.consents.list({ subject: values.subject as string | undefined, clientId: values.client as string | undefined, active: !values.all, limit });
        const now = Date.now();
        const out = rows.map((c) => ({
          id: c.id,
          subject: c.subject,
          client_id: c.client_id,
          redirect_uri: c.redirect_uri,
          scopes: c.scopes,
          granted_at: iso(c.granted_at),
          expires_at: iso(c.expires_at),
          status: c.revoked_at ? `revoked (${c.revoked_reason})` : c.expires_at <= now ? 'expired' : 'active',
        }));
        io.out(values.json ? JSON.stringify(out) : table(out, ['id', 'subject', 'client_id', 'redirect_uri', 'scopes', 'granted_at', 'expires_at', 'status']));
        return EXIT_OK;
      });
    },
  },
  'consents revoke': {
    summary: 'revoke a consent: its grant, the tokens issued under it and the upstream token',
    usage: 'mcp-consent-proxy consents revoke <consent_id>',
    options: {},
    positionals: ['consent_id'],
    async run({ positionals }, io) {
      const raw = requirePositional(positionals, 'consent_id');
      const id = Number(raw);
      if (!Number.isInteger(id) || id < 1) throw new UsageError(`consent_id must be a number (got "${raw}")`);
      return withContext(io, (ctx) => {
        const consent = ctx.ops.revokeConsent(id, { actor: 'cli' });
        if (!consent) {
          io.err(`no consent ${id}`);
          return EXIT_FAILURE;
        }
        io.out(`revoked consent ${id} (${consent.subject} → ${consent.client_id})`);
        return EXIT_OK;
      });
    },
  },
};
Object.assign(COMMANDS, DATA_COMMANDS);

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
    } else if (arg.startsWith('--')) flags.push(arg); // an unknown option: parseArgs names it
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
  const found = findCommand(argv);
  if (!found) {
    io.err(`unknown command "${argv.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ')}"; run 'mcp-consent-proxy --help' for the list`);
    return EXIT_USAGE;
  }
  const command = COMMANDS[found.name] as Command;
  let parsed;
  try {
    parsed = parseArgs({ args: normaliseArgs(found.rest, { ...command.options, ...HELP_OPTION }), options: { ...command.options, ...HELP_OPTION }, strict: true, allowPositionals: Boolean(command.positionals) });
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
