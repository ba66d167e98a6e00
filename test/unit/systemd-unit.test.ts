/**
 * docs/systemd/mcp-consent-proxy.service (README "Quick start": run it as a service) cannot be run
 * here, so it is checked statically: the command it starts exists; every variable it sets is a
 * configuration key; the database path is absolute (a relative one follows the working directory)
 * and writable under its sandbox; it stops with SIGTERM and waits longer than serve's drain
 * (release review 2026-12-08: no unit was shipped, and `./data` under systemd resolved to /data).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCHEMA } from '../../src/config/schema.js';
import { SHUTDOWN_GRACE_MS } from '../../src/cli/commands/serve.js';
import { run } from '../../src/cli/index.js';

const unit = readFileSync(new URL('../../docs/systemd/mcp-consent-proxy.service', import.meta.url), 'utf8');
const directives = unit
  .split('\n')
  .filter((line) => line && !line.startsWith('#') && !line.startsWith('['))
  .map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]);
const all = (name: string) => directives.filter(([key]) => key === name).map(([, value]) => value);
const one = (name: string) => {
  const values = all(name);
  expect(values, name).toHaveLength(1);
  return values[0] as string;
};

describe('docs/systemd/mcp-consent-proxy.service', () => {
  it('starts `mcp-consent-proxy serve`, a command that exists, as an unprivileged user', async () => {
    expect(one('ExecStart')).toBe('/usr/bin/env mcp-consent-proxy serve');
    const io = { out: (_t: string) => undefined, err: (_t: string) => undefined, env: {} };
    expect(await run(['serve', '--help'], io)).toBe(0);
    expect(one('User')).not.toBe('root');
  });

  it('sets only configuration keys, DATABASE_PATH absolute and writable in its sandbox', () => {
    const env = Object.fromEntries(all('Environment').map((assignment) => assignment.split(/=(.*)/s).slice(0, 2) as [string, string]));
    for (const key of Object.keys(env)) expect(key in SCHEMA || key === 'NODE_ENV', key).toBe(true);
    expect(isAbsolute(env.DATABASE_PATH as string)).toBe(true);
    expect(one('ReadWritePaths')).toBe(dirname(env.DATABASE_PATH as string));
    expect(one('WorkingDirectory')).toBe(dirname(env.DATABASE_PATH as string));
    expect(one('EnvironmentFile')).toMatch(/^\//);
  });

  it('stops with SIGTERM and waits longer than the drain, for the audit flush after it', () => {
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(Number(one('TimeoutStopSec')) * 1000).toBeGreaterThanOrEqual(3 * SHUTDOWN_GRACE_MS);
  });
});
