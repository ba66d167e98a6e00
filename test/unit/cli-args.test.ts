/**
 * CLI arguments: client ids are random base64url and start with "-" one time in 64 (a flaky
 * `clients disable` in CI showed it). Such a value is data, never an option.
 */
import { describe, expect, it } from 'vitest';
import { normaliseArgs, run } from '../../src/cli/index.js';

const OPTIONS = { client: { type: 'string' }, output: { type: 'string', short: 'o' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;

describe('cli arguments that start with a dash', () => {
  it('keeps a dash-leading value of a string option and a dash-leading positional as data', () => {
    expect(normaliseArgs(['--client', '-Ab3', '--json'], OPTIONS)).toEqual(['--client=-Ab3', '--json']);
    expect(normaliseArgs(['-Zx_9'], OPTIONS)).toEqual(['--', '-Zx_9']);
    expect(normaliseArgs(['--json', '--', '--weird'], OPTIONS)).toEqual(['--json', '--', '--weird']);
    expect(normaliseArgs(['-h'], OPTIONS)).toEqual(['-h']);
    expect(normaliseArgs(['-o', '-file'], OPTIONS)).toEqual(['--output=-file']);
  });

  it('still refuses an unknown option with exit code 2', async () => {
    const err: string[] = [];
    const io = { out: () => {}, err: (t: string) => void err.push(t), env: {} };
    expect(await run(['audit', 'export', '--frobnicate'], io)).toBe(2);
    expect(err.join('\n')).toMatch(/frobnicate/);
  });

  it('passes a dash-leading client id to the command instead of failing as a usage error', async () => {
    const err: string[] = [];
    const io = { out: () => {}, err: (t: string) => void err.push(t), env: { DATABASE_PATH: '/nonexistent/dir/db.sqlite', SECRET_KEY: Buffer.alloc(32, 7).toString('base64') } };
    // Reaches the command (which then reports the missing database: exit 1), not the parser (2).
    expect(await run(['clients', 'disable', '-AbC123'], io)).toBe(1);
    expect(err.join('\n')).toMatch(/no database/);
  });
});
