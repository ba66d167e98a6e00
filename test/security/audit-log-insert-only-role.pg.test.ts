/**
 * The application role is insert-only on audit_log (README "Running several replicas", DESIGN §8
 * and §9, issue 11): an owner role runs `migrate`, then docs/compose/grants.sql — exactly the
 * GRANTs the README shows — gives the application role its privileges; P runs as that role.
 * - P works as that role: it starts (finding: `serve` ran CREATE TABLE IF NOT EXISTS
 *   schema_migrations at every start, which needs CREATE on the schema even when the table exists,
 *   so the insert-only role could not start at all), a client authorizes and calls a tool, and
 *   every decision is audited (the role inserts rows);
 * - as that role, UPDATE, DELETE and TRUNCATE on audit_log are refused by the privileges, and so
 *   are dropping or disabling its triggers (it does not own the table) — where the owner could;
 *   no row changed;
 * - `audit verify` as that role passes.
 * - a role lacking a privilege P uses (review 2026-12-08: an upgrade added a table and grants.sql
 *   was not applied again) is refused at `serve`'s start with what it lacks; before, P started,
 *   answered /readyz 200 and every revocation rolled back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { startTestApp, TEST_SECRET_KEY } from '../helpers/app.js';
import { testDatabaseUrl, withDatabase } from '../helpers/pg.js';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { callTool, openSession } from '../helpers/mcp-http.js';
import { run, type Io } from '../../src/cli/index.js';

const GRANTS = readFileSync(new URL('../../docs/compose/grants.sql', import.meta.url), 'utf8');
const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
const OWNER = `mcp_owner_${suffix}`;
const APP = `mcp_app_${suffix}`;
const DATABASE = `t_insert_only_${suffix}`;

/** The test cluster's URL with another user (trust authentication: no password) and database. */
function urlAs(user: string, database = DATABASE): string {
  const url = new URL(withDatabase(testDatabaseUrl(), database));
  url.username = user;
  url.password = '';
  return url.href;
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

/** The error PostgreSQL answers `statement` with (undefined if it succeeds). */
async function refusal(client: pg.Client, statement: string): Promise<{ code: string; message: string } | undefined> {
  try {
    await client.query(statement);
    return undefined;
  } catch (err) {
    return { code: (err as { code: string }).code, message: (err as Error).message };
  }
}

function capture(env: Record<string, string>): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, env, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

let superuser: pg.Client;
let stack: Stack | undefined;

beforeAll(async () => {
  superuser = await connect(testDatabaseUrl());
  await superuser.query(`CREATE ROLE ${OWNER} LOGIN`);
  await superuser.query(`CREATE ROLE ${APP} LOGIN`);
  await superuser.query(`CREATE DATABASE ${DATABASE} OWNER ${OWNER} TEMPLATE template0 ENCODING 'UTF8'`);
  // migrate as the owner, then grants.sql as the owner (README's steps 1 and 2).
  const migrate = capture({ DATABASE_URL: urlAs(OWNER), SECRET_KEY: TEST_SECRET_KEY });
  expect(await run(['migrate'], migrate), migrate.stderr.join('\n')).toBe(0);
  const owner = await connect(urlAs(OWNER));
  try {
    // A hardened database whose functions PUBLIC may not execute: grants.sql must grant what P calls.
    await owner.query('REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC');
    await owner.query(GRANTS.replaceAll('mcp_app', APP));
  } finally {
    await owner.end();
  }
  stack = await startStack({ env: { DATABASE_URL: urlAs(APP) } });
});

afterAll(async () => {
  await stack?.close();
  await superuser.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
  await superuser.query(`DROP ROLE IF EXISTS ${APP}`);
  await superuser.query(`DROP ROLE IF EXISTS ${OWNER}`);
  await superuser.end();
});

describe('the application role is insert-only on audit_log (README GRANTs)', () => {
  it('P runs as the role: authorization, consent, token and gateway work, and are audited', async () => {
    const app = stack as Stack;
    const { tokens } = await authorizeClient(app, new Browser(), { login: 'alice' });
    expect(tokens.status).toBe(200);
    const token = tokens.body.access_token as string;
    const res = await callTool(`${app.app.url}/mcp`, token, await openSession(`${app.app.url}/mcp`, token), 'whoami');
    expect(res.status).toBe(200);
    await app.app.runtime.audit.flush();
    const client = await connect(urlAs(APP));
    try {
      expect((await client.query('SELECT current_user AS u')).rows[0].u).toBe(APP);
      const events = (await client.query<{ event: string }>('SELECT event FROM audit_log ORDER BY seq')).rows.map((r) => r.event);
      expect(events).toEqual(expect.arrayContaining(['consent.approved', 'token.issued', 'gateway.forwarded']));
    } finally {
      await client.end();
    }
  });

  it('as the role, UPDATE, DELETE and TRUNCATE on audit_log are refused, and so is touching its triggers; no row changes', async () => {
    const client = await connect(urlAs(APP));
    try {
      const before = (await client.query('SELECT seq, event, client_id, hash FROM audit_log ORDER BY seq')).rows;
      expect(before.length).toBeGreaterThan(3);
      for (const statement of ["UPDATE audit_log SET client_id = 'x' WHERE seq = 2", 'DELETE FROM audit_log WHERE seq = 2', 'TRUNCATE audit_log']) {
        expect(await refusal(client, statement), statement).toEqual({ code: '42501', message: 'permission denied for table audit_log' });
      }
      for (const statement of ['DROP TRIGGER audit_log_no_update ON audit_log', 'ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_delete', 'DROP TABLE audit_log']) {
        expect(await refusal(client, statement), statement).toEqual({ code: '42501', message: expect.stringMatching(/^must be owner of (table|relation) audit_log$/) });
      }
      // Nor can it rewrite the record of the applied migrations, or create tables.
      expect((await refusal(client, "UPDATE schema_migrations SET checksum = 'x'"))?.code).toBe('42501');
      expect((await refusal(client, 'CREATE TABLE audit_log_copy (seq BIGINT)'))?.code).toBe('42501');
      expect((await client.query('SELECT seq, event, client_id, hash FROM audit_log ORDER BY seq')).rows).toEqual(before);
    } finally {
      await client.end();
    }
    // The owner, by contrast, could drop the triggers: what stops the application is not owning the table.
    const owner = await connect(urlAs(OWNER));
    try {
      await owner.query('BEGIN');
      expect(await refusal(owner, 'DROP TRIGGER audit_log_no_update ON audit_log')).toBeUndefined();
      await owner.query('ROLLBACK');
    } finally {
      await owner.end();
    }
  });

  it("a role lacking a privilege P uses (grants.sql not applied after an upgrade's migrate): serve refuses to start, naming it; granted, it starts", async () => {
    const owner = await connect(urlAs(OWNER));
    try {
      await owner.query(`REVOKE INSERT ON upstream_revocations FROM ${APP}`);
      await expect(startTestApp({ env: { DATABASE_URL: urlAs(APP) } })).rejects.toThrow(/the role in DATABASE_URL lacks INSERT on upstream_revocations: .*grants\.sql/);
      await owner.query(GRANTS.replaceAll('mcp_app', APP));
    } finally {
      await owner.end();
    }
    const again = await startTestApp({ env: { DATABASE_URL: urlAs(APP) } });
    await again.close();
  });

  it('audit verify as the role passes', async () => {
    await stack?.app.runtime.audit.flush();
    const io = capture({ DATABASE_URL: urlAs(APP), SECRET_KEY: TEST_SECRET_KEY, DATABASE_PATH: `${stack?.app.dir}/proxy.db` });
    expect(await run(['audit', 'verify'], io), io.stderr.join('\n')).toBe(0);
    expect(io.stdout[0]).toMatch(/^audit log intact: \d+ rows/);
  });
});
