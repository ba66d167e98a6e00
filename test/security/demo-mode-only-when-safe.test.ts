/**
 * Demo mode only when safe (issue 9 item 2, DESIGN §4): forgetting UPSTREAM_ISSUER on a
 * production configuration must not start the demo IdP (any user name signs in, `admin`
 * included) in front of the real MCP server. Each production signal without an upstream is a
 * configuration error naming the variables, and `serve` exits 1 before opening the database or
 * a port. DEMO=true starts the demo on purpose; ADMIN_SUBJECTS is never honoured in demo mode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { run, type Io } from '../../src/cli/index.js';
import { freePort, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { Browser, signIn } from '../helpers/admin.js';
import type { Stack } from '../helpers/stack.js';

/** Each production signal of DESIGN §4, alone, with the words the refusal must name. */
const SIGNALS: [label: string, env: Record<string, string>, named: string][] = [
  ['a non-loopback PUBLIC_URL', { PUBLIC_URL: 'https://mcp.example.com' }, 'PUBLIC_URL=https://mcp.example.com'],
  ['a non-loopback HOST', { HOST: '0.0.0.0' }, 'HOST=0.0.0.0'],
  ['NODE_ENV=production', { NODE_ENV: 'production' }, 'NODE_ENV=production'],
  ['MCP_UPSTREAM_URL', { MCP_UPSTREAM_URL: 'https://mcp-internal.example.com/mcp' }, 'MCP_UPSTREAM_URL'],
  ['UPSTREAM_CLIENT_ID', { UPSTREAM_CLIENT_ID: 'Ov23liProxy' }, 'UPSTREAM_CLIENT_ID'],
  ['UPSTREAM_CLIENT_SECRET', { UPSTREAM_CLIENT_SECRET: 'upstream-secret-never-printed' }, 'UPSTREAM_CLIENT_SECRET'],
  ['GATEWAY_ROUTES', { GATEWAY_ROUTES: '/api/github=https://api.github.com' }, 'GATEWAY_ROUTES'],
  ['ADMIN_SUBJECTS', { ADMIN_SUBJECTS: '583231' }, 'ADMIN_SUBJECTS'],
  ['DATABASE_URL', { DATABASE_URL: 'postgres://proxy:db-password@db.internal/proxy', SECRET_KEY: Buffer.alloc(32, 9).toString('base64') }, 'DATABASE_URL'],
];

function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

function capture(env: Record<string, string | undefined>): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, env, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

/** true when something accepts TCP connections on 127.0.0.1:port */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('demo mode only when safe', () => {
  it('starts the demo with no upstream and no production signal (the newcomer case)', () => {
    const config = loadConfig({ PUBLIC_URL: 'http://127.0.0.1:8080', HOST: '127.0.0.1', NODE_ENV: 'test' });
    expect(config.demo).toBe(true);
    expect(config.adminSubjects).toEqual(['admin']);
  });

  it.each(SIGNALS)('%s without an upstream: ConfigError naming UPSTREAM_ISSUER, UPSTREAM_PRESET and the signal', (_label, env, named) => {
    const problems = problemsOf(env);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^UPSTREAM_ISSUER: not set, so no upstream is configured \(UPSTREAM_PRESET=oidc\)/);
    expect(problems[0]).toContain(named);
    expect(problems[0]).toContain('DEMO=true');
    expect(problems.join('\n')).not.toContain('upstream-secret-never-printed');
    expect(problems.join('\n')).not.toContain('db-password');
  });

  it('names every signal seen, and UPSTREAM_CLIENT_ID for the github and google presets', () => {
    const all = problemsOf({ PUBLIC_URL: 'https://mcp.example.com', NODE_ENV: 'production', MCP_UPSTREAM_URL: 'https://m.example.com/mcp', ADMIN_SUBJECTS: '1' });
    expect(all[0]).toContain('PUBLIC_URL=https://mcp.example.com (not a loopback host), NODE_ENV=production, MCP_UPSTREAM_URL, ADMIN_SUBJECTS');
    for (const preset of ['github', 'google']) {
      const problems = problemsOf({ UPSTREAM_PRESET: preset, UPSTREAM_CLIENT_SECRET: 'x', PUBLIC_URL: 'https://mcp.example.com' });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(new RegExp(`^UPSTREAM_CLIENT_ID: not set, so no upstream is configured \\(UPSTREAM_PRESET=${preset}\\)`));
    }
  });

  it('`serve` exits 1 before opening the database or listening', async () => {
    for (const [label, env, named] of SIGNALS) {
      const dir = mkdtempSync(join(tmpdir(), 'demo-refused-'));
      const port = await freePort();
      const database = join(dir, 'proxy.db');
      const io = capture({ PORT: String(port), DATABASE_PATH: database, ...env });
      expect(await run(['serve'], io), label).toBe(1);
      const stderr = io.stderr.join('\n');
      expect(stderr).toMatch(/^invalid configuration:\n {2}- UPSTREAM_ISSUER: not set/);
      expect(stderr).toContain(named);
      expect(io.stdout.join('\n')).not.toContain('DEMO MODE');
      expect(await listening(port), label).toBe(false);
      expect(existsSync(database), label).toBe(false);
      expect(existsSync(join(dir, 'secret.key')), label).toBe(false);
    }
  });

  it('DEMO=false forbids the demo even on a laptop; DEMO=true with a configured upstream is refused', () => {
    expect(problemsOf({ DEMO: 'false' })[0]).toMatch(/^UPSTREAM_ISSUER: required — DEMO=false forbids demo mode/);
    expect(problemsOf({ DEMO: 'true', UPSTREAM_ISSUER: 'https://idp.example.com', UPSTREAM_CLIENT_ID: 'x', MCP_UPSTREAM_URL: 'https://m.example.com/mcp' })[0]).toMatch(
      /^DEMO: true, but an upstream is configured \(UPSTREAM_ISSUER\)/,
    );
    expect(problemsOf({ DEMO: 'true', UPSTREAM_CLIENT_ID: 'x' })[0]).toMatch(/^UPSTREAM_CLIENT_ID: set, but no upstream is configured/);
  });

  it.each(SIGNALS.filter(([, env]) => !('UPSTREAM_CLIENT_ID' in env) && !('UPSTREAM_CLIENT_SECRET' in env)))('DEMO=true with %s starts demo mode', (_label, env) => {
    const config = loadConfig({ ...env, DEMO: 'true' });
    expect(config.demo).toBe(true);
    expect(config.upstream).toBeUndefined();
    expect(config.adminSubjects).toEqual(['admin']);
  });
});

describe('demo mode only when safe › ADMIN_SUBJECTS is never honoured in demo mode', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({
      env: { UPSTREAM_ISSUER: undefined, UPSTREAM_CLIENT_ID: undefined, UPSTREAM_CLIENT_SECRET: undefined, MCP_UPSTREAM_URL: undefined, DEMO: 'true', ADMIN_SUBJECTS: 'alice' },
    });
  });
  afterAll(() => app.close());
  const stack = () => ({ app }) as Stack;

  it('runs the demo, warns that ADMIN_SUBJECTS is ignored, and keeps admin = the demo user "admin"', () => {
    expect(app.config.demo).toBe(true);
    expect(app.config.adminSubjects).toEqual(['admin']);
    expect(app.config.warnings).toContain('ADMIN_SUBJECTS is ignored in demo mode: the demo user "admin" is the admin');
  });

  it('"alice" signed in at the demo IdP is refused at /admin; no admin session is written', async () => {
    const page = await signIn(stack(), new Browser(), 'admin', 'alice');
    expect(page.status).toBe(403);
    expect(page.html).toContain('Not an administrator');
    expect((await rows(app, 'SELECT count(*) AS n FROM admin_sessions'))[0].n).toBe(0);
    await app.runtime.audit.flush();
    expect(await rows(app, "SELECT subject FROM audit_log WHERE event = 'admin.login_denied'")).toEqual([{ subject: 'alice' }]);
  });

  it('"admin" signed in at the demo IdP opens /admin', async () => {
    const browser = new Browser();
    const page = await signIn(stack(), browser, 'admin', 'admin');
    expect(page.status).toBe(200);
    expect(page.url).toMatch(/\/admin$/);
    expect(await rows(app, 'SELECT subject FROM admin_sessions')).toEqual([{ subject: 'admin' }]);
  });
});
