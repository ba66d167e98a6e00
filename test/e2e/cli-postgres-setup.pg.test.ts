/**
 * The CLI and `serve` on a PostgreSQL database that is not ready for them (the review of
 * 2026-12-06, README "Running several replicas"):
 * - a database without the schema: the commands other than `migrate` refuse it (as a missing
 *   SQLite file is refused) and create nothing — a misspelt database name must not "verify";
 * - a role that may not create the schema (the application role, before the owner migrated):
 *   `migrate` and `serve` say what to do instead of "permission denied for schema public", and
 *   nothing is created;
 * - a data directory that does not exist yet: opening the storage creates it, so the audit
 *   checkpoint file (DESIGN §9) is written there — it was an ENOENT logged with a stack trace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { TEST_SECRET_KEY } from '../helpers/app.js';
import { testDatabaseUrl, withDatabase } from '../helpers/pg.js';
import { run, type Io } from '../../src/cli/index.js';
import { loadConfig } from '../../src/config/load.js';
import { createCore, openStorage } from '../../src/runtime/core.js';
import { readMigrations } from '../../src/db/migrate.js';
import { PG_MIGRATIONS_DIR } from '../../src/db/migrate-pg.js';
import { CHECKPOINT_FILE } from '../../src/audit/checkpoint.js';

const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
const EMPTY = `t_cli_empty_${suffix}`;
const APP = `mcp_app_${suffix}`;
const MIGRATED = `t_cli_migrated_${suffix}`;

/** The test cluster's URL with another database, and optionally another user (trust authentication). */
function urlOf(database: string, user?: string): string {
  const url = new URL(withDatabase(testDatabaseUrl(), database));
  if (user) url.username = user;
  return url.href;
}

function capture(env: Record<string, string>): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, env, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

let superuser: pg.Client;

/** The tables in `database`'s public schema. */
async function tablesIn(database: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: urlOf(database) });
  await client.connect();
  try {
    return (await client.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).rows.map((r) => r.t);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  superuser = new pg.Client({ connectionString: testDatabaseUrl() });
  await superuser.connect();
  await superuser.query(`CREATE ROLE ${APP} LOGIN`);
  // Owned by the superuser: the role may connect, but (PostgreSQL 15) not create in schema public.
  await superuser.query(`CREATE DATABASE ${EMPTY} TEMPLATE template0 ENCODING 'UTF8'`);
  await superuser.query(`CREATE DATABASE ${MIGRATED} TEMPLATE template0 ENCODING 'UTF8'`);
});

afterAll(async () => {
  for (const db of [EMPTY, MIGRATED]) await superuser.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await superuser.query(`DROP ROLE IF EXISTS ${APP}`);
  await superuser.end();
});

describe('cli › a PostgreSQL database that is not ready', () => {
  it('without the schema: audit verify, audit export and the data commands refuse it and create nothing', async () => {
    const env = { DATABASE_URL: urlOf(EMPTY), SECRET_KEY: TEST_SECRET_KEY, DATABASE_PATH: join(mkdtempSync(join(tmpdir(), 'cli-empty-')), 'proxy.db') };
    for (const args of [['audit', 'verify'], ['audit', 'export'], ['consents', 'list'], ['clients', 'list']]) {
      const io = capture(env);
      expect(await run(args, io), args.join(' ')).toBe(1);
      expect(io.stderr).toEqual(['the PostgreSQL database named by DATABASE_URL has no schema yet; run "mcp-consent-proxy migrate" (or start the server once) to create it']);
      expect(io.stdout).toEqual([]);
    }
    expect(await tablesIn(EMPTY)).toEqual([]);
  });

  it('as a role that may not create the schema: migrate and serve say to migrate as the owner; nothing is created', async () => {
    const migrations = readMigrations(PG_MIGRATIONS_DIR);
    const expected = `the PostgreSQL database needs ${migrations.length} migrations (next: ${migrations[0]?.name}) and this role may not apply them (permission denied for schema public): run "mcp-consent-proxy migrate" as the owner of the database and of its tables, apply the application role's grants again (docs/compose/grants.sql), then start this again`;
    const env = {
      DATABASE_URL: urlOf(EMPTY, APP),
      SECRET_KEY: TEST_SECRET_KEY,
      DATABASE_PATH: join(mkdtempSync(join(tmpdir(), 'cli-app-role-')), 'proxy.db'),
      PUBLIC_URL: 'http://127.0.0.1:9',
      PORT: '9',
      UPSTREAM_ISSUER: 'https://idp.example.com',
      UPSTREAM_CLIENT_ID: 'proxy',
      UPSTREAM_CLIENT_SECRET: 'upstream-client-secret-value',
      MCP_UPSTREAM_URL: 'http://127.0.0.1:9/mcp',
    };
    const migrate = capture(env);
    expect(await run(['migrate'], migrate)).toBe(1);
    expect(migrate.stderr).toEqual([expected]);
    const serve = capture(env);
    expect(await run(['serve'], serve)).toBe(1);
    expect(serve.stderr).toEqual([expected]);
    expect(serve.stdout).toEqual([]);
    expect(await tablesIn(EMPTY)).toEqual([]);
  });

  it('creates a data directory that does not exist yet, and writes the audit checkpoint file there', async () => {
    const owner = capture({ DATABASE_URL: urlOf(MIGRATED), SECRET_KEY: TEST_SECRET_KEY, DATABASE_PATH: join(mkdtempSync(join(tmpdir(), 'cli-owner-')), 'proxy.db') });
    expect(await run(['migrate'], owner), owner.stderr.join('\n')).toBe(0);
    const dataDir = join(mkdtempSync(join(tmpdir(), 'cli-fresh-')), 'not', 'yet');
    expect(existsSync(dataDir)).toBe(false);
    const config = loadConfig({ DATABASE_URL: urlOf(MIGRATED), SECRET_KEY: TEST_SECRET_KEY, DATABASE_PATH: join(dataDir, 'proxy.db') }, { requireUpstream: false });
    const logged: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void logged.push(line) });
    const core = createCore(config, await openStorage(config, { log, mustExist: true }), { log });
    try {
      await core.audit.record({ event: 'cli.client_disabled', clientId: 'c-1' });
      await core.audit.flush();
    } finally {
      await core.sql.close();
    }
    expect(JSON.parse(readFileSync(join(dataDir, CHECKPOINT_FILE), 'utf8'))).toMatchObject({ seq: 1 });
    expect(logged).toEqual([]);
  });
});
