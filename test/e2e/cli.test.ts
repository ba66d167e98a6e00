/**
 * The command line as an operator uses it: `serve` started with only the documented settings
 * (accepts a registration from the MCP SDK, stops cleanly on SIGTERM), `migrate`, `audit verify`,
 * `audit export`, and bad usage.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_ARGS } from '../helpers/cli-bin.js';
import { freePort, TEST_SECRET_KEY } from '../helpers/app.js';
import { registerClient, discoverAuthorizationServerMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import { run, type Io } from '../../src/cli/index.js';
import { databaseEnv, dropTrigger, onPostgres, openTestSql, TEST_ENGINE } from '../helpers/engine.js';


function capture(env: Record<string, string | undefined>): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, env, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

const children: ChildProcess[] = [];
afterAll(() => children.forEach((c) => c.kill('SIGKILL')));

describe('cli › serve', () => {
  it(`starts with only PUBLIC_URL, DATABASE_PATH${onPostgres ? ', DATABASE_URL' : ''}, UPSTREAM_* and MCP_UPSTREAM_URL, registers an SDK client, stops on SIGTERM`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'serve-'));
    const database = await databaseEnv(dir);
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    const child = spawn(process.execPath, [...CLI_ARGS, 'serve'], {
      env: {
        PATH: process.env.PATH,
        PUBLIC_URL: publicUrl,
        PORT: String(port),
        ...database,
        // PostgreSQL needs the SECRET_KEY every replica shares; SQLite generates one into the data directory.
        ...(onPostgres ? { SECRET_KEY: TEST_SECRET_KEY } : {}),
        UPSTREAM_ISSUER: 'https://idp.example.com',
        UPSTREAM_CLIENT_ID: 'proxy',
        UPSTREAM_CLIENT_SECRET: 'upstream-client-secret-value',
        MCP_UPSTREAM_URL: 'http://127.0.0.1:9/mcp',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    child.stdout?.on('data', (d) => (output += d));
    child.stderr?.on('data', (d) => (output += d));
    for (let i = 0; i < 600 && !output.includes('MCP Consent Proxy listening'); i++) await new Promise((r) => setTimeout(r, 50)); // at most 30 s
    expect(output).toContain(`MCP endpoint:  ${publicUrl}/mcp`);

    const metadata = await discoverAuthorizationServerMetadata(publicUrl);
    expect(metadata?.issuer).toBe(publicUrl);
    const info = await registerClient(publicUrl, { metadata, clientMetadata: { client_name: 'sdk', redirect_uris: ['http://127.0.0.1:5555/cb'] } });
    expect(info.client_id).toBeTruthy();

    const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    if (onPostgres) expect(output).not.toContain('SECRET_KEY is not set');
    else expect(output).toContain('SECRET_KEY is not set: generated a new one');
    expect(output).not.toContain('upstream-client-secret-value');
    if (database.DATABASE_URL) expect(output).not.toContain(database.DATABASE_URL);
    const db = await openTestSql(dir);
    const events = (await db.all<{ event: string }>('SELECT event FROM audit_log ORDER BY seq')).map((r) => r.event);
    await db.close();
    expect(events).toEqual(['system.started', 'registration.accepted', 'system.stopped']);
    if (!onPostgres) expect(readFileSync(join(dir, 'secret.key'), 'utf8').trim()).toMatch(/^[A-Za-z0-9+/=]{44}$/);
  }, 30_000);

  it('exits 1 with every configuration problem listed', async () => {
    const io = capture({ PUBLIC_URL: 'nope', UPSTREAM_ISSUER: 'https://idp.example.com' });
    expect(await run(['serve'], io)).toBe(1);
    expect(io.stderr.join('\n')).toMatch(/^invalid configuration:\n {2}- PUBLIC_URL: must be an absolute URL/);
    expect(io.stderr.join('\n')).toContain('UPSTREAM_CLIENT_ID: required');
  });
});

describe(`cli › migrate and audit (${TEST_ENGINE})`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-'));
  let env: Record<string, string> = {};
  beforeAll(async () => {
    env = { ...(await databaseEnv(dir)), SECRET_KEY: TEST_SECRET_KEY };
  });

  it('migrate creates the database and is idempotent', async () => {
    const io = capture(env);
    expect(await run(['migrate'], io)).toBe(0);
    // PostgreSQL: one consolidated schema file first (migrations/postgres/README.md); the URL, which may hold a password, is never printed.
    expect(io.stdout[0]).toMatch(onPostgres ? /^applied 0001-schema\.sql(, \d{4}-[a-z0-9-]+\.sql)* to PostgreSQL \(DATABASE_URL\)$/ : /^applied 0001-oidc-models.sql, /);
    if (env.DATABASE_URL) expect(io.stdout.join('\n')).not.toContain(env.DATABASE_URL);
    const again = capture(env);
    expect(await run(['migrate'], again)).toBe(0);
    expect(again.stdout[0]).toMatch(/is up to date/);
  });

  it('audit verify exits 0 on an intact chain and 1 naming the first bad row', async () => {
    const db = await openTestSql(dir);
    const { createAuditLogStore } = await import('../../src/store/audit-log.js');
    const { Audit } = await import('../../src/audit/audit.js');
    const { createCheckpointWriter } = await import('../../src/audit/checkpoint.js');
    const { KeyRing } = await import('../../src/crypto/keys.js');
    const { pino } = await import('pino');
    const { auditKey } = new KeyRing(Buffer.from(TEST_SECRET_KEY, 'base64'));
    const log = pino({ level: 'silent' });
    const audit = new Audit(createAuditLogStore(db, { key: auditKey }), log, { checkpoint: createCheckpointWriter(join(dir, 'audit-checkpoint.json'), auditKey, log) });
    for (let i = 0; i < 3; i++) await audit.record({ event: 'registration.accepted', clientId: `c${i}` });
    await audit.flush();
    const ok = capture(env);
    expect(await run(['audit', 'verify'], ok)).toBe(0);
    expect(ok.stdout[0]).toMatch(/^audit log intact: 3 rows, chain verified up to row 3/);
    await dropTrigger(db, 'audit_log_no_update', 'audit_log');
    await db.run("UPDATE audit_log SET client_id = 'x' WHERE seq = 2");
    await db.close();
    const bad = capture(env);
    expect(await run(['audit', 'verify'], bad)).toBe(1);
    expect(bad.stderr[0]).toBe('audit log BROKEN at row 2: row 2 was altered (its MAC does not match its content)');
    const json = capture(env);
    expect(await run(['audit', 'verify', '--json'], json)).toBe(1);
    expect(JSON.parse(json.stdout[0] as string)).toMatchObject({ ok: false, firstBadSeq: 2 });
  });

  it('audit export writes NDJSON, optionally since a time', async () => {
    const io = capture(env);
    expect(await run(['audit', 'export'], io)).toBe(0);
    const lines = io.stdout.map((l) => JSON.parse(l));
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3]);
    expect(lines[0]).toMatchObject({ event: 'registration.accepted', client_id: 'c0', outcome: 'allow' });
    const later = capture(env);
    expect(await run(['audit', 'export', '--since', '2999-01-01T00:00:00Z'], later)).toBe(0);
    expect(later.stdout).toEqual([]);
    const file = join(dir, 'out.ndjson');
    expect(await run(['audit', 'export', '-o', file], capture(env))).toBe(0);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(3);
  });

  it('reports a missing database (SQLite: the file), unknown commands and flags with exit codes 1 and 2', async () => {
    const missing = capture({ DATABASE_PATH: join(dir, 'nope', 'missing.db') });
    expect(await run(['audit', 'verify'], missing)).toBe(1);
    expect(missing.stderr[0]).toMatch(/^no database at .*missing.db; start the server once or run "mcp-consent-proxy migrate"/);
    const unknown = capture(env);
    expect(await run(['frobnicate'], unknown)).toBe(2);
    expect(unknown.stderr[0]).toMatch(/unknown command "frobnicate"/);
    const group = capture(env);
    expect(await run(['audit'], group)).toBe(2);
    expect(group.stderr[0]).toBe(`"audit" needs a subcommand: audit verify, audit checkpoint-reset, audit export; run 'mcp-consent-proxy <command> --help' for its options`);
    const typo = capture(env);
    expect(await run(['audit', 'verfy'], typo)).toBe(2);
    expect(typo.stderr[0]).toMatch(/^unknown subcommand "audit verfy": audit verify, /);
    const groupHelp = capture(env);
    expect(await run(['consents', '--help'], groupHelp)).toBe(0);
    expect(groupHelp.stdout[0]).toMatch(/^consents commands:\n  consents list  .+\n  consents revoke  /);
    const flag = capture(env);
    expect(await run(['audit', 'verify', '--colour'], flag)).toBe(2);
    expect(flag.stderr[0]).toMatch(/Unknown option '--colour'/);
    const since = capture(env);
    expect(await run(['audit', 'export', '--since', 'yesterday'], since)).toBe(2);
    // A six-digit year compared as text with the stored ts would export every row (review 2026-12-07).
    const farFuture = capture(env);
    expect(await run(['audit', 'export', '--since', '+275760-09-13T00:00:00Z'], farFuture)).toBe(2);
    expect(farFuture.stdout).toEqual([]);
    expect(farFuture.stderr[0]).toContain('between the years 0000 and 9999');
    const help = capture(env);
    expect(await run(['--help'], help)).toBe(0);
    expect(help.stdout[0]).toContain('audit verify');
    // Every summary starts in one column (the longest name, audit checkpoint-reset, pushed its own out).
    const columns = new Set(help.stdout[0]!.split('\n').filter((l) => /^  [a-z]/.test(l)).map((l) => /^  \S+(?: \S+)? +/.exec(l)![0].length));
    expect(columns.size).toBe(1);
  });
});

describe('cli › --version', () => {
  it('prints the version in package.json and exits 0', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      const io = capture({});
      expect(await run([flag], io)).toBe(0);
      expect(io.stdout).toEqual([version]);
    }
  });
});
