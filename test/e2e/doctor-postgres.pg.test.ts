/**
 * `mcp-consent-proxy doctor` on PostgreSQL (DATABASE_URL; issue 15 "database writable and
 * migrated", issue 11): the database check asks the PostgreSQL database, not the SQLite file at
 * DATABASE_PATH — not migrated, migrated, a role that may not write, a server that does not
 * answer — with a fix for each failure, and never prints the URL (it may carry a password).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase, withDatabase, testDatabaseUrl, type TestDatabase } from '../helpers/pg.js';
import { freePort } from '../helpers/app.js';
import { checkDatabase } from '../../src/cli/doctor/database.js';
import { postgresStatus } from '../../src/db/status-pg.js';
import { PgSql } from '../../src/db/pg-sql.js';
import { migratePg } from '../../src/db/migrate-pg.js';
import type { Config } from '../../src/config/load.js';

const OPTIONS = { timeoutMs: 3000, now: () => Date.now() };
const PASSWORD = 'doctor-secret-pw';
let db: TestDatabase;
const role = `doctor_ro_${process.pid}`;

const config = (url: string) => ({ databaseUrl: url, databasePath: '/nonexistent/proxy.db' }) as unknown as Readonly<Config>;
const printed = (r: { detail: string; fix?: string | undefined }) => `${r.detail} ${r.fix ?? ''}`;

async function asAdmin(database: string, query: string): Promise<void> {
  const client = new pg.Client({ connectionString: withDatabase(testDatabaseUrl(), database) });
  await client.connect();
  try {
    await client.query(query);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  db = await createTestDatabase('doctor');
});
afterAll(async () => {
  await db.drop();
  await asAdmin('postgres', `DROP ROLE IF EXISTS ${role}`);
});

describe('doctor › database on PostgreSQL', () => {
  it('not migrated: fails with migrate as the fix, and does not print the URL', async () => {
    const result = await checkDatabase(config(db.url), OPTIONS);
    expect(result).toMatchObject({ status: 'fail', detail: 'the PostgreSQL database (DATABASE_URL) has no schema yet', fix: expect.stringContaining('mcp-consent-proxy migrate') });
    expect(printed(result)).not.toContain(db.name);
  });

  it('migrated: passes, every PostgreSQL migration applied', async () => {
    const sql = new PgSql({ url: db.url, poolMax: 1 });
    await migratePg(sql);
    await sql.close();
    const result = await checkDatabase(config(db.url), OPTIONS);
    expect(result).toMatchObject({ status: 'pass', detail: expect.stringMatching(/writable, all \d+ migrations applied/) });
  });

  it('a role that may read but not write: fails naming the table and the privilege', async () => {
    await asAdmin('postgres', `CREATE ROLE ${role} LOGIN PASSWORD '${PASSWORD}'`);
    await asAdmin(db.name, `GRANT USAGE ON SCHEMA public TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
    const url = new URL(db.url);
    url.username = role;
    url.password = PASSWORD;
    expect(await postgresStatus(url.href, OPTIONS.timeoutMs)).toEqual({ state: 'not-writable', problem: 'this role lacks INSERT,UPDATE,DELETE on oidc_models' });
    const result = await checkDatabase(config(url.href), OPTIONS);
    expect(result.status).toBe('fail');
    expect(printed(result)).not.toContain(PASSWORD);
  });

  it('no server answering: fails within the timeout with the connection fix, the password not printed', async () => {
    const url = `postgres://someone:${PASSWORD}@127.0.0.1:${await freePort()}/nothing`;
    const started = Date.now();
    const result = await checkDatabase(config(url), OPTIONS);
    expect(Date.now() - started).toBeLessThan(OPTIONS.timeoutMs + 1000);
    expect(result).toMatchObject({ status: 'fail', detail: expect.stringContaining('cannot be opened'), fix: expect.stringContaining('DATABASE_URL') });
    expect(printed(result)).not.toContain(PASSWORD);
  });
});
