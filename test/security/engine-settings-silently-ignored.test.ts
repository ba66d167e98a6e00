/**
 * DESIGN §4 (every setting documented and honoured), issue 11: a storage setting of the other
 * engine was silently ignored — DATABASE_SYNCHRONOUS=FULL with DATABASE_URL started a server
 * whose durability was PostgreSQL's `synchronous_commit`, not the fsync per commit the operator
 * asked for; DATABASE_POOL_MAX without DATABASE_URL did nothing. Each is now a configuration
 * problem: `serve` (and every command) refuses to start, naming the setting, before opening a
 * database or a port.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const UPSTREAM = { UPSTREAM_ISSUER: 'https://idp.example.com', UPSTREAM_CLIENT_ID: 'proxy', MCP_UPSTREAM_URL: 'https://mcp.example.com/mcp' };
const POSTGRES = { DATABASE_URL: 'postgres://proxy:db-password@db.internal/proxy', SECRET_KEY: Buffer.alloc(32, 5).toString('base64') };

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

describe('engine settings silently ignored', () => {
  it('DATABASE_SYNCHRONOUS with DATABASE_URL is refused, naming the setting (and not echoing the URL)', () => {
    for (const value of ['FULL', 'NORMAL']) {
      const problems = problemsOf({ ...UPSTREAM, ...POSTGRES, DATABASE_SYNCHRONOUS: value });
      expect(problems).toEqual(["DATABASE_SYNCHRONOUS: a SQLite setting, without effect with DATABASE_URL (PostgreSQL's durability is its server's synchronous_commit); unset it"]);
      expect(problems.join('\n')).not.toContain('db-password');
    }
    expect(loadConfig({ ...UPSTREAM, DATABASE_SYNCHRONOUS: 'FULL' }).databaseSynchronous).toBe('FULL');
  });

  it('DATABASE_POOL_MAX without DATABASE_URL is refused, naming the setting', () => {
    expect(problemsOf({ ...UPSTREAM, DATABASE_POOL_MAX: '20' })).toEqual(['DATABASE_POOL_MAX: only used with DATABASE_URL (PostgreSQL); SQLite has one connection. Unset it, or set DATABASE_URL']);
    expect(loadConfig({ ...UPSTREAM, ...POSTGRES, DATABASE_POOL_MAX: '20' }).databasePoolMax).toBe(20);
  });
});
