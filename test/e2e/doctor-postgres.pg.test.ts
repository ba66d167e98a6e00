/**
 * `mcp-consent-proxy doctor` on PostgreSQL (DATABASE_URL; issue 15 "database writable and
 * migrated", issue 11): the database check asks the PostgreSQL database, not the SQLite file at
 * DATABASE_PATH — not migrated, migrated, a role that may not write, a server that does not
 * answer — with a fix for each failure, and never prints the URL (it may carry a password).
 * Privileges: each one the proxy uses is checked on its own, on every table it uses (a role with
 * INSERT but not UPDATE on oidc_models passed, and /register answered 500); a role granted by
 * docs/compose/grants.sql passes, insert-only on audit_log.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase, withDatabase, testDatabaseUrl, type TestDatabase } from '../helpers/pg.js';
import { freePort, TEST_SECRET_KEY } from '../helpers/app.js';
import { checkDatabase } from '../../src/cli/doctor/database.js';
import { formatReport, runDoctor } from '../../src/cli/doctor/run.js';
import { postgresStatus, TABLE_PRIVILEGES } from '../../src/db/status-pg.js';
import { PgSql } from '../../src/db/pg-sql.js';
import { migratePg } from '../../src/db/migrate-pg.js';
import type { Config } from '../../src/config/load.js';

const OPTIONS = { timeoutMs: 3000, now: () => Date.now() };
const PASSWORD = 'doctor-secret-pw';
let db: TestDatabase;
const role = `doctor_ro_${process.pid}`;
const partial = `doctor_partial_${process.pid}`;
const granted = `doctor_app_${process.pid}`;
const GRANTS = readFileSync(new URL('../../docs/compose/grants.sql', import.meta.url), 'utf8');

/** `db`'s URL as `user` (with PASSWORD: it must never be printed). */
function urlAs(user: string): string {
  const url = new URL(db.url);
  url.username = user;
  url.password = PASSWORD;
  return url.href;
}

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
  for (const r of [role, partial, granted]) await asAdmin('postgres', `DROP ROLE IF EXISTS ${r}`);
});

describe('doctor › database on PostgreSQL', () => {
  it('not migrated: fails with migrate as the fix, and does not print the URL', async () => {
    const result = await checkDatabase(config(db.url), OPTIONS);
    expect(result).toMatchObject({ status: 'fail', detail: 'the PostgreSQL database (DATABASE_URL) has no schema yet', fix: expect.stringMatching(/^As the database owner .*mcp-consent-proxy migrate, then apply docs\/compose\/grants\.sql/) });
    expect(printed(result)).not.toContain(db.name);
  });

  it('migrated: passes, every PostgreSQL migration applied', async () => {
    const sql = new PgSql({ url: db.url, poolMax: 1 });
    await migratePg(sql);
    await sql.close();
    const result = await checkDatabase(config(db.url), OPTIONS);
    expect(result).toMatchObject({ status: 'pass', detail: expect.stringMatching(/writable, all \d+ migrations applied/) });
  });

  it('a role that may read but not write: fails naming each table and each privilege, with the PostgreSQL fix', async () => {
    await asAdmin('postgres', `CREATE ROLE ${role} LOGIN PASSWORD '${PASSWORD}'`);
    await asAdmin(db.name, `GRANT USAGE ON SCHEMA public TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
    const status = await postgresStatus(urlAs(role), OPTIONS.timeoutMs);
    expect(status).toMatchObject({ state: 'lacks-privileges' });
    expect(status.state === 'lacks-privileges' && status.missing).toEqual(
      expect.arrayContaining([
        { object: 'oidc_models', privileges: ['INSERT', 'UPDATE', 'DELETE'] },
        { object: 'audit_log', privileges: ['INSERT'] },
        { object: 'rate_limits', privileges: ['INSERT', 'UPDATE', 'DELETE'] },
      ]),
    );
    const result = await checkDatabase(config(urlAs(role)), OPTIONS);
    expect(result).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('lacks INSERT, UPDATE, DELETE on oidc_models; INSERT, UPDATE, DELETE on clients_meta; INSERT on audit_log;'),
      fix: expect.stringContaining('docs/compose/grants.sql'),
    });
    // PostgreSQL's own wording: no SQLite write lock, file or WAL
    expect(printed(result)).not.toMatch(/write lock|WAL|file/);
    expect(printed(result)).not.toContain(PASSWORD);
  });

  it("a role with INSERT but not UPDATE or DELETE (the review's role): fails, naming what each table lacks, audit_log not among them", async () => {
    await asAdmin('postgres', `CREATE ROLE ${partial} LOGIN PASSWORD '${PASSWORD}'`);
    await asAdmin(db.name, `GRANT USAGE ON SCHEMA public TO ${partial}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${partial}; GRANT INSERT ON oidc_models, consents, audit_log TO ${partial}`);
    const lacking =
      'UPDATE, DELETE on oidc_models; INSERT, UPDATE, DELETE on clients_meta; INSERT, UPDATE on sealed_secrets; UPDATE on consents; ' +
      'INSERT, UPDATE, DELETE on browser_sessions; INSERT, UPDATE, DELETE on upstream_transactions; INSERT, UPDATE, DELETE on upstream_tokens; ' +
      'INSERT, UPDATE, DELETE on upstream_revocations; INSERT, UPDATE, DELETE on admin_sessions; UPDATE on gateway_generation; INSERT, UPDATE, DELETE on mcp_sessions; INSERT, UPDATE, DELETE on rate_limits';
    const result = await checkDatabase(config(urlAs(partial)), OPTIONS);
    expect(result).toMatchObject({ status: 'fail', detail: `the PostgreSQL database (DATABASE_URL): the role in DATABASE_URL lacks ${lacking}` });
    expect(result.fix).toContain(`grant this role ${lacking}: apply docs/compose/grants.sql`);
    expect(printed(result)).not.toContain(PASSWORD);
  });

  it('a role granted by docs/compose/grants.sql (insert-only on audit_log, functions not executable by PUBLIC) passes', async () => {
    await asAdmin('postgres', `CREATE ROLE ${granted} LOGIN PASSWORD '${PASSWORD}'`);
    await asAdmin(db.name, `REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC; ${GRANTS.replaceAll('mcp_app', granted)}`);
    expect(await postgresStatus(urlAs(granted), OPTIONS.timeoutMs)).toMatchObject({ state: 'ready' });
    expect(await checkDatabase(config(urlAs(granted)), OPTIONS)).toMatchObject({ status: 'pass', detail: expect.stringMatching(/writable, all \d+ migrations applied/) });
  });

  it('checks every privilege on its own: grants.sql less any one privilege the proxy uses fails, naming that privilege and table', async () => {
    for (const [table, privileges] of TABLE_PRIVILEGES) {
      for (const privilege of privileges) {
        await asAdmin(db.name, `REVOKE ${privilege} ON ${table} FROM ${granted}`);
        try {
          const result = await checkDatabase(config(urlAs(granted)), OPTIONS);
          expect(result, `${privilege} on ${table}`).toMatchObject({ status: 'fail', detail: `the PostgreSQL database (DATABASE_URL): the role in DATABASE_URL lacks ${privilege} on ${table}` });
        } finally {
          await asAdmin(db.name, `GRANT ${privilege} ON ${table} TO ${granted}`);
        }
      }
    }
    await asAdmin(db.name, `REVOKE EXECUTE ON FUNCTION audit_chain_head_locked(BIGINT) FROM ${granted}`);
    try {
      expect(await checkDatabase(config(urlAs(granted)), OPTIONS)).toMatchObject({ status: 'fail', detail: expect.stringContaining('lacks EXECUTE on function audit_chain_head_locked(bigint)') });
    } finally {
      await asAdmin(db.name, `GRANT EXECUTE ON FUNCTION audit_chain_head_locked(BIGINT) TO ${granted}`);
    }
    expect(await checkDatabase(config(urlAs(granted)), OPTIONS)).toMatchObject({ status: 'pass' });
  });

  it('every table of the PostgreSQL schema is among those whose privileges are checked', async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename");
      expect(rows.map((r) => r.t).sort()).toEqual(TABLE_PRIVILEGES.map(([table]) => table).sort());
    } finally {
      await client.end();
    }
  });

  it('a role without USAGE on the schema: fails naming it, not as an unmigrated database', async () => {
    // PUBLIC may use schema public by default (only CREATE is revoked, grants.sql)
    await asAdmin(db.name, `REVOKE USAGE ON SCHEMA public FROM PUBLIC; REVOKE USAGE ON SCHEMA public FROM ${role}`);
    const result = await checkDatabase(config(urlAs(role)), OPTIONS);
    expect(result).toMatchObject({
      status: 'fail',
      detail: 'the PostgreSQL database (DATABASE_URL): the role in DATABASE_URL lacks USAGE on schema public',
      fix: expect.stringContaining('grants.sql'),
    });
  });

  it('the report names PostgreSQL (DATABASE_URL) as the database, never the URL or the unused DATABASE_PATH', async () => {
    const env = { PUBLIC_URL: `http://127.0.0.1:${await freePort()}`, DATABASE_URL: urlAs(granted), DATABASE_PATH: '/unused/sqlite/mcp.db', SECRET_KEY: TEST_SECRET_KEY, DEMO: 'true' };
    const report = await runDoctor(env, { timeoutMs: 500, now: () => Date.now() });
    expect(report.checks.find((c) => c.id === 'config')).toMatchObject({ status: 'pass', detail: expect.stringMatching(/; database PostgreSQL \(DATABASE_URL\)$/) });
    const text = formatReport(report);
    expect(text).not.toContain('/unused/sqlite');
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(db.name);
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
