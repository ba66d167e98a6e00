/**
 * What every CLI command shares: its shape, the I/O it writes to, exit codes (DESIGN §5: 0 ok,
 * 1 failure, 2 bad usage), and the small helpers of the data commands.
 */
import type { ParseArgsConfig } from 'node:util';
import { loadConfig } from '../config/load.js';
import { openConfiguredDatabase } from '../runtime/core.js';
import { cliLogger, openCliContext, type CliContext } from './context.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {}

export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: Record<string, string | undefined>;
}

export const defaultIo: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  env: process.env,
};

export interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** positional arguments it takes (names, for usage) */
  positionals?: string[];
  run(args: { values: Record<string, unknown>; positionals: string[] }, io: Io): Promise<number>;
}

export const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

/** The configured database (SQLite, or PostgreSQL with DATABASE_URL), migrated, for the storage commands. */
export async function storageDb(io: Io, mustExist: boolean) {
  const config = loadConfig(io.env, { requireUpstream: false });
  return { config, db: await openConfiguredDatabase(config, { log: cliLogger(), mustExist }) };
}

/** Plain-text table for list output. */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  if (!rows.length) return '(none)';
  const cells = rows.map((r) => columns.map((c) => (r[c] === null || r[c] === undefined ? '' : String(r[c]))));
  const widths = columns.map((c, i) => Math.min(48, Math.max(c.length, ...cells.map((row) => (row[i] as string).length))));
  const line = (values: string[]) =>
    values
      .map((v, i) => (v.length > (widths[i] as number) ? `${v.slice(0, (widths[i] as number) - 1)}…` : v.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(columns), ...cells.map(line)].join('\n');
}

export const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : null);

export async function withContext<T>(io: Io, work: (ctx: CliContext) => Promise<T> | T, options?: { checkpoint?: boolean }): Promise<T> {
  const ctx = await openCliContext(io.env, options);
  try {
    return await work(ctx);
  } finally {
    await ctx.close();
  }
}

export function requirePositional(positionals: string[], name: string): string {
  const value = positionals[0];
  if (!value || positionals.length > 1) throw new UsageError(`expected exactly one ${name}`);
  return value;
}
