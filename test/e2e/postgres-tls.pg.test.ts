/**
 * TLS to PostgreSQL (README "TLS to PostgreSQL"): DATABASE_URL's libpq-style parameters
 * (`sslmode`, `sslrootcert`) reach every connection the proxy opens — the main pool and the
 * small pool of the session locks (src/db/pg-locks.ts) — and a certificate that does not verify is
 * refused before anything is sent, with one sentence saying what to set.
 *
 * The test cluster (.ci/pg-cluster.sh) offers TLS with a certificate for `localhost` (only) from a
 * test CA it makes (TEST_DATABASE_CA), so 127.0.0.1 — the same server — is a host name the
 * certificate is not for; plain connections keep working for the other tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { TEST_SECRET_KEY } from '../helpers/app.js';
import { clusterSocket, pgDatabasePerFile } from '../helpers/pg.js';
import { run, type Io } from '../../src/cli/index.js';
import { PgSql } from '../../src/db/pg-sql.js';

const db = pgDatabasePerFile('tls');
const CA = process.env.TEST_DATABASE_CA;

/** This file's database (or `database`) with `params`, at `host` (default: the cluster's 127.0.0.1). */
function urlWith(params: Record<string, string>, host?: string, database?: string): string {
  const url = new URL(db.url);
  if (host) url.hostname = host;
  if (database) url.pathname = `/${database}`;
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.href;
}

const temporary: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temporary.push(dir);
  return dir;
}

function capture(env: Record<string, string>): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, env, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

const cliEnv = (url: string) => ({ DATABASE_URL: url, SECRET_KEY: TEST_SECRET_KEY, DATABASE_PATH: join(tempDir('pg-tls-'), 'proxy.db') });

let admin: pg.Client;

/** Whether each open connection to this file's database with `application` uses TLS (pg_stat_ssl). */
async function tlsOf(application: string): Promise<boolean[]> {
  const { rows } = await admin.query<{ ssl: boolean }>(
    'SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid WHERE a.application_name = $1 AND a.datname = $2',
    [application, db.name],
  );
  return rows.map((r) => r.ssl);
}

async function tablesIn(database = db.name): Promise<string[]> {
  const client = new pg.Client({ connectionString: urlWith({}, undefined, database) });
  await client.connect();
  try {
    return (await client.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).rows.map((r) => r.t);
  } finally {
    await client.end();
  }
}

/** A CA of our own that did not sign the server's certificate. */
function otherCa(): string {
  const dir = tempDir('pg-tls-other-ca-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=not the test CA', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt')], { stdio: 'ignore' });
  return join(dir, 'ca.crt');
}

beforeAll(async () => {
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
});

afterAll(async () => {
  await admin?.end();
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
});

/** A new empty database for fn; afterwards it must still be empty (nothing created), and is dropped. */
async function inEmptyDatabase(label: string, fn: (database: string) => Promise<void>): Promise<void> {
  const database = `${db.name}_${label}`;
  await admin.query(`CREATE DATABASE ${database} TEMPLATE template0`);
  try {
    await fn(database);
    expect(await tablesIn(database)).toEqual([]);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  }
}

/** `migrate` with DATABASE_URL = url: its exit code and stderr. */
async function migrate(url: string): Promise<{ code: number; stderr: string[] }> {
  const io = capture(cliEnv(url));
  return { code: await run(['migrate'], io), stderr: io.stderr };
}

describe('PostgreSQL over TLS', () => {
  it('the test cluster offers TLS (TEST_DATABASE_CA, set by .ci/pg-cluster.sh)', () => {
    expect(CA, 'start the cluster with .ci/pg-cluster.sh, which makes a test CA (needs openssl)').toBeTruthy();
  });

  it('sslmode=verify-full with sslrootcert, at a host the certificate names: migrate works, and every connection of the pool and of the lock pool is TLS', async () => {
    const url = urlWith({ sslmode: 'verify-full', sslrootcert: CA! }, 'localhost');
    const io = capture(cliEnv(url));
    expect(await run(['migrate'], io), io.stderr.join('\n')).toBe(0);
    expect(await tablesIn()).toContain('oidc_models');

    const sql = new PgSql({ url });
    try {
      expect(await sql.one<{ n: number }>('SELECT count(*) AS n FROM oidc_models')).toEqual({ n: 0 });
      // Every connection by that name is TLS (the migrate run's may not have left pg_stat_activity yet: TLS as well).
      const pool = await tlsOf('mcp-consent-proxy');
      expect(pool.length).toBeGreaterThan(0);
      expect(pool.every(Boolean), JSON.stringify(pool)).toBe(true);
      const locks = await sql.exclusive('tls-test', 5_000, () => tlsOf('mcp-consent-proxy-locks'));
      expect(locks.length).toBeGreaterThan(0);
      expect(locks.every(Boolean), JSON.stringify(locks)).toBe(true);
      expect(await sql.one('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).toEqual({ ssl: true });
    } finally {
      await sql.close();
    }
    // Without sslmode the same server is reached in plain TCP: TLS is the URL's choice. Asked of
    // its own connection: the TLS pool's, just closed, may still be listed for a moment (CI,
    // 2026-12-07: [true, false]).
    const plain = new PgSql({ url: db.url });
    try {
      expect(await plain.one('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).toEqual({ ssl: false });
    } finally {
      await plain.close();
    }
  });

  it('a certificate another CA issued: migrate refuses it in one sentence and creates nothing', async () => {
    await inEmptyDatabase('other_ca', async (database) => {
      const { code, stderr } = await migrate(urlWith({ sslmode: 'verify-full', sslrootcert: otherCa() }, 'localhost', database));
      expect(code).toBe(1);
      expect(stderr).toEqual([expect.stringMatching(/^migrate failed: the PostgreSQL server's TLS certificate was refused \(.+\): name the certificate authority that issued it with sslrootcert=/)]);
    });
  });

  it('the right CA at a host name the certificate is not for (127.0.0.1, the same server): refused, nothing created', async () => {
    await inEmptyDatabase('altname', async (database) => {
      const { code, stderr } = await migrate(urlWith({ sslmode: 'verify-full', sslrootcert: CA! }, undefined, database));
      expect(code).toBe(1);
      expect(stderr).toEqual([expect.stringMatching(/^migrate failed: the PostgreSQL server's TLS certificate was refused \(Hostname\/IP does not match certificate's altnames: .*\): name the certificate authority/)]);
    });
  });

  it('a TLS file that cannot be read, and TLS asked of a unix socket: one sentence each, nothing created', async () => {
    await inEmptyDatabase('files', async (database) => {
      const missing = await migrate(urlWith({ sslmode: 'verify-full', sslrootcert: join(tempDir('pg-tls-none-'), 'ca.pem') }, 'localhost', database));
      expect(missing.code).toBe(1);
      expect(missing.stderr).toEqual([expect.stringMatching(/^migrate failed: a TLS file DATABASE_URL names \(sslrootcert, sslcert or sslkey\) cannot be read \(ENOENT: no such file or directory, open '.+ca\.pem'\)/)]);
      const socket = await clusterSocket();
      const noTls = await migrate(`postgres://postgres@/${database}?host=${encodeURIComponent(socket.dir)}&port=${socket.port}&sslmode=verify-full&sslrootcert=${encodeURIComponent(CA!)}`);
      expect(noTls.code).toBe(1);
      expect(noTls.stderr).toEqual([expect.stringMatching(/^migrate failed: DATABASE_URL \(sslmode, sslrootcert, sslcert or ssl\) or PGSSLMODE asks for TLS, but the PostgreSQL server does not offer it: a unix socket/)]);
    });
  });

  it('what else turns TLS on (still verified), and the two parameters that turn the check off (README)', async () => {
    /** Connect with pg's reading of `url`: 'tls', 'plain', or the refusal's code. */
    const outcome = async (url: string): Promise<string> => {
      const sql = new PgSql({ url, poolMax: 1 });
      try {
        const row = await sql.one<{ ssl: number }>('SELECT CASE WHEN ssl THEN 1 ELSE 0 END AS ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
        return row?.ssl === 1 ? 'tls' : 'plain';
      } catch (err) {
        return String((err as { code?: string }).code);
      } finally {
        await sql.close();
      }
    };
    expect(await outcome(urlWith({ sslrootcert: CA! }, 'localhost'))).toBe('tls');
    expect(await outcome(urlWith({ sslrootcert: CA! }))).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(await outcome(urlWith({ ssl: 'true' }, 'localhost'))).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    const saved = process.env.PGSSLMODE;
    process.env.PGSSLMODE = 'require';
    try {
      expect(await outcome(urlWith({}, 'localhost'))).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    } finally {
      if (saved === undefined) delete process.env.PGSSLMODE;
      else process.env.PGSSLMODE = saved;
    }
    // The operator's explicit opt-outs: encrypted, nothing checked (not the CA, not the name).
    expect(await outcome(urlWith({ sslmode: 'no-verify' }))).toBe('tls');
    expect(await outcome(urlWith({ uselibpqcompat: 'true', sslmode: 'require' }))).toBe('tls');
    expect(await outcome(urlWith({ uselibpqcompat: 'true', sslmode: 'verify-ca', sslrootcert: CA! }))).toBe('tls');
    expect(await outcome(urlWith({ sslmode: 'verify-ca', sslrootcert: CA! }))).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('sslmode=require without sslrootcert verifies too (pg 8 reads it as verify-full): the test CA is not trusted, doctor says why', async () => {
    const io = capture({ ...cliEnv(urlWith({ sslmode: 'require' })), PUBLIC_URL: 'http://127.0.0.1:9', UPSTREAM_ISSUER: 'https://idp.example.com', UPSTREAM_CLIENT_ID: 'proxy', UPSTREAM_CLIENT_SECRET: 'upstream-client-secret-value', MCP_UPSTREAM_URL: 'http://127.0.0.1:9/mcp' });
    expect(await run(['doctor'], io)).toBe(1);
    expect(io.stdout.join('\n')).toMatch(/TLS certificate was refused \(unable to verify the first certificate[;)]/);
  });
});
