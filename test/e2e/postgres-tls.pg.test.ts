/**
 * TLS to PostgreSQL (README "TLS to PostgreSQL"): DATABASE_URL's libpq-style parameters
 * (`sslmode`, `sslrootcert`) reach every connection the proxy opens — the main pool and the
 * small pool of the session locks (src/db/pg-locks.ts) — and a certificate that does not verify is
 * refused before anything is sent, with one sentence saying what to set.
 *
 * The test cluster (.ci/pg-cluster.sh) offers TLS with a certificate for 127.0.0.1 from a test CA it
 * makes (TEST_DATABASE_CA); plain connections keep working for the other tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { TEST_SECRET_KEY } from '../helpers/app.js';
import { pgDatabasePerFile } from '../helpers/pg.js';
import { run, type Io } from '../../src/cli/index.js';
import { PgSql } from '../../src/db/pg-sql.js';

const db = pgDatabasePerFile('tls');
const CA = process.env.TEST_DATABASE_CA;

function urlWith(params: Record<string, string>): string {
  const url = new URL(db.url);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.href;
}

function capture(env: Record<string, string>): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, env, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

const cliEnv = (url: string) => ({ DATABASE_URL: url, SECRET_KEY: TEST_SECRET_KEY, DATABASE_PATH: join(mkdtempSync(join(tmpdir(), 'pg-tls-')), 'proxy.db') });

let admin: pg.Client;

/** Whether each open connection to this file's database with `application` uses TLS (pg_stat_ssl). */
async function tlsOf(application: string): Promise<boolean[]> {
  const { rows } = await admin.query<{ ssl: boolean }>(
    'SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid WHERE a.application_name = $1 AND a.datname = $2',
    [application, db.name],
  );
  return rows.map((r) => r.ssl);
}

async function tablesIn(): Promise<string[]> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return (await client.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).rows.map((r) => r.t);
  } finally {
    await client.end();
  }
}

/** A CA of our own that did not sign the server's certificate. */
function otherCa(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pg-tls-other-ca-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=not the test CA', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt')], { stdio: 'ignore' });
  return join(dir, 'ca.crt');
}

beforeAll(async () => {
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
});

afterAll(async () => {
  await admin?.end();
});

describe('PostgreSQL over TLS', () => {
  it('the test cluster offers TLS (TEST_DATABASE_CA, set by .ci/pg-cluster.sh)', () => {
    expect(CA, 'start the cluster with .ci/pg-cluster.sh, which makes a test CA (needs openssl)').toBeTruthy();
  });

  it('sslmode=verify-full with sslrootcert: migrate works, and every connection of the pool and of the lock pool is TLS', async () => {
    const url = urlWith({ sslmode: 'verify-full', sslrootcert: CA! });
    const io = capture(cliEnv(url));
    expect(await run(['migrate'], io), io.stderr.join('\n')).toBe(0);
    expect(await tablesIn()).toContain('oidc_models');

    const sql = new PgSql({ url });
    try {
      expect(await sql.one<{ n: number }>('SELECT count(*) AS n FROM oidc_models')).toEqual({ n: 0 });
      expect(await tlsOf('mcp-consent-proxy')).toEqual([true]);
      const locks = await sql.exclusive('tls-test', 5_000, () => tlsOf('mcp-consent-proxy-locks'));
      expect(locks).toEqual([true]);
    } finally {
      await sql.close();
    }
    // Without sslmode the same server is reached in plain TCP: TLS is the URL's choice.
    const plain = new PgSql({ url: db.url });
    try {
      await plain.one('SELECT 1 AS one');
      expect(await tlsOf('mcp-consent-proxy')).toEqual([false]);
    } finally {
      await plain.close();
    }
  });

  it('a certificate another CA issued: migrate refuses it in one sentence and creates nothing', async () => {
    const fresh = new URL(db.url);
    const name = `${db.name}_other`;
    await admin.query(`CREATE DATABASE ${name} TEMPLATE template0`);
    try {
      fresh.pathname = `/${name}`;
      fresh.searchParams.set('sslmode', 'verify-full');
      fresh.searchParams.set('sslrootcert', otherCa());
      const io = capture(cliEnv(fresh.href));
      expect(await run(['migrate'], io)).toBe(1);
      expect(io.stderr).toHaveLength(1);
      expect(io.stderr[0]).toMatch(/^migrate failed: the PostgreSQL server's TLS certificate was refused \(.+\): name the certificate authority that issued it with sslrootcert=/);
      const client = new pg.Client({ connectionString: db.url.replace(`/${db.name}`, `/${name}`) });
      await client.connect();
      try {
        expect((await client.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).rows).toEqual([]);
      } finally {
        await client.end();
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  });

  it('sslmode=require without sslrootcert verifies too (pg 8 reads it as verify-full): the test CA is not trusted, doctor says why', async () => {
    const io = capture({ ...cliEnv(urlWith({ sslmode: 'require' })), PUBLIC_URL: 'http://127.0.0.1:9', UPSTREAM_ISSUER: 'https://idp.example.com', UPSTREAM_CLIENT_ID: 'proxy', UPSTREAM_CLIENT_SECRET: 'upstream-client-secret-value', MCP_UPSTREAM_URL: 'http://127.0.0.1:9/mcp' });
    expect(await run(['doctor'], io)).toBe(1);
    expect(io.stdout.join('\n')).toMatch(/TLS certificate was refused \(unable to verify the first certificate\)/);
  });
});
