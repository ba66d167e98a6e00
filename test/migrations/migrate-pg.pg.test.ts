/**
 * PostgreSQL migrations (src/db/migrate-pg.ts, migrations/postgres/): they apply on a fresh
 * database, N replicas starting at once apply each file once, checksums and numbering are held as
 * on SQLite; the schema has the SQLite schema's tables, columns, indexes and triggers; and the
 * triggers behave the same on both engines, through the same SQL: audit_log refuses UPDATE, DELETE,
 * TRUNCATE, an insert off the head and an unkeyed insert (DESIGN §3, §9), and gateway_generation
 * moves on the same events (GW-01).
 */
import { appendFileSync, copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, MigrationError, readMigrations } from '../../src/db/migrate.js';
import { migratePg, PG_MIGRATIONS_DIR } from '../../src/db/migrate-pg.js';
import { openDatabase } from '../../src/db/open.js';
import { PgSql } from '../../src/db/pg-sql.js';
import type { Sql } from '../../src/db/sql.js';
import { SqliteSql } from '../../src/db/sqlite-sql.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';

/** Tables only the PostgreSQL schema has (the shared rate-limit store of issue 11). */
const PG_ONLY_TABLES = ['rate_limits'];
const PG_ONLY_INDEXES = ['rate_limits_window'];
const PG_ONLY_TRIGGERS = ['audit_log_no_truncate'];

function copyPgMigrations(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pg-migrations-'));
  for (const f of readdirSync(PG_MIGRATIONS_DIR).filter((name) => name.endsWith('.sql'))) copyFileSync(join(PG_MIGRATIONS_DIR, f), join(dir, f));
  return dir;
}

async function withDatabase<T>(label: string, fn: (db: TestDatabase) => Promise<T>): Promise<T> {
  const db = await createTestDatabase(label);
  try {
    return await fn(db);
  } finally {
    await db.drop();
  }
}

describe('PostgreSQL migrations', () => {
  it('take a fresh database to the latest schema; a re-run is a no-op', async () => {
    await withDatabase('fresh', async (db) => {
      const sql = new PgSql({ url: db.url });
      try {
        const result = await migratePg(sql);
        const files = readMigrations(PG_MIGRATIONS_DIR);
        expect(result).toEqual({ applied: files.map((f) => f.name), current: files.length });
        const recorded = await sql.all<{ version: number; name: string; checksum: string }>('SELECT version, name, checksum FROM schema_migrations ORDER BY version');
        expect(recorded).toEqual(files.map((f) => ({ version: f.version, name: f.name, checksum: f.checksum })));
        expect(await migratePg(sql)).toEqual({ applied: [], current: files.length });
      } finally {
        await sql.close();
      }
    });
  });

  it('5 replicas migrating a fresh database at once apply each file once, without error', async () => {
    const dir = copyPgMigrations();
    // Two more files, the second slow, so that the starts really overlap.
    const next = readMigrations(dir).length + 1;
    const numbered = (n: number, name: string) => `${String(n).padStart(4, '0')}-${name}.sql`;
    writeFileSync(join(dir, numbered(next, 'extra')), 'CREATE TABLE extra (x BIGINT);');
    writeFileSync(join(dir, numbered(next + 1, 'slow')), 'SELECT pg_sleep(0.2); CREATE TABLE slow (x BIGINT);');
    await withDatabase('concurrent', async (db) => {
      const replicas = Array.from({ length: 5 }, () => new PgSql({ url: db.url, poolMax: 2 }));
      try {
        const results = await Promise.all(replicas.map((sql) => migratePg(sql, dir)));
        const names = readMigrations(dir).map((f) => f.name);
        expect(results.flatMap((r) => r.applied).sort()).toEqual(names);
        expect(results.filter((r) => r.applied.length > 0)).toHaveLength(1);
        for (const r of results) expect(r.current).toBe(names.length);
        expect(await replicas[0]!.one('SELECT count(*) AS n FROM schema_migrations')).toEqual({ n: names.length });
        // The lock is released: nothing is left waiting, and a later start takes it at once.
        expect(await replicas[0]!.one("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).toEqual({ n: 0 });
        expect((await migratePg(replicas[1]!, dir)).applied).toEqual([]);
      } finally {
        await Promise.all(replicas.map((sql) => sql.close()));
      }
    });
  });

  it('refuse an edited applied file and a database from a newer build; roll back a failing file', async () => {
    const dir = copyPgMigrations();
    await withDatabase('checks', async (db) => {
      const sql = new PgSql({ url: db.url });
      try {
        await migratePg(sql, dir);
        const first = readdirSync(dir).filter((f) => f.endsWith('.sql'))[0]!;
        appendFileSync(join(dir, first), '\n-- edited after release\n');
        await expect(migratePg(sql, dir)).rejects.toThrow(MigrationError);
        await expect(migratePg(sql, dir)).rejects.toThrow(`migration ${first} was changed after it was applied (checksum differs)`);

        const fine = copyPgMigrations();
        const next = String(readMigrations(fine).length + 1).padStart(4, '0');
        writeFileSync(join(fine, `${next}-broken.sql`), 'CREATE TABLE half_done (x BIGINT); INSERT INTO no_such_table VALUES (1);');
        await expect(migratePg(sql, fine)).rejects.toThrow(/no_such_table/);
        expect(await sql.one("SELECT to_regclass('half_done') IS NULL AS gone")).toEqual({ gone: true });
        expect(await sql.one('SELECT count(*) AS n FROM schema_migrations')).toEqual({ n: readMigrations(fine).length - 1 });

        await sql.run("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, 'x', 'now')", [
          Number(next),
          `${next}-future.sql`,
        ]);
        await expect(migratePg(sql, copyPgMigrations())).rejects.toThrow(/migrated by a newer version of mcp-consent-proxy/);
        // Each failed run gave its connection back and its lock up.
        expect(await sql.one("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).toEqual({ n: 0 });
      } finally {
        await sql.close();
      }
    });
  });
});

describe('PostgreSQL schema = SQLite schema (same tables, columns, indexes, triggers)', () => {
  let db: TestDatabase;
  let sql: PgSql;
  beforeAll(async () => {
    db = await createTestDatabase('parity');
    sql = new PgSql({ url: db.url });
    await migratePg(sql);
  });
  afterAll(async () => {
    await sql?.close();
    await db?.drop();
  });

  it('every SQLite table and column exists in PostgreSQL, in the same order, with the mapped type and nullability', async () => {
    const lite = openDatabase(':memory:');
    migrate(lite);
    const liteTables = (lite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    const pgTables = (await sql.all<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name")).map((r) => r.name);
    expect(pgTables).toEqual([...liteTables, ...PG_ONLY_TABLES].sort());

    for (const table of liteTables) {
      const liteColumns = (lite.prepare(`SELECT name, type, "notnull" AS nn, pk FROM pragma_table_info(?)`).all(table) as { name: string; type: string; nn: number; pk: number }[]).map((c) => ({
        name: c.name,
        type: c.type === 'INTEGER' ? 'bigint' : c.type.toLowerCase(),
        // PRIMARY KEY columns are NOT NULL in PostgreSQL and in SQLite's STRICT tables alike.
        nullable: c.nn === 0 && c.pk === 0,
      }));
      const pgColumns = await sql.all<{ name: string; type: string; nullable: number }>(
        `SELECT column_name AS name, data_type AS type, CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END AS nullable
         FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position`,
        [table],
      );
      expect(pgColumns.map((c) => ({ ...c, nullable: c.nullable === 1 })), table).toEqual(liteColumns);
    }
    // Every TEXT column compares and folds case as SQLite does (byte order).
    expect(await sql.all("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() AND data_type = 'text' AND table_name <> 'schema_migrations' AND collation_name IS DISTINCT FROM 'C'")).toEqual([]);

    const liteIndexes = (lite.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    const pgIndexes = (
      await sql.all<{ name: string }>(
        `SELECT i.relname AS name FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
         WHERE n.nspname = current_schema() AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) ORDER BY i.relname`,
      )
    ).map((r) => r.name);
    expect(pgIndexes).toEqual([...liteIndexes, ...PG_ONLY_INDEXES].sort());

    const liteTriggers = (lite.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    const pgTriggers = (await sql.all<{ name: string }>('SELECT tgname AS name FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname')).map((r) => r.name);
    expect(pgTriggers).toEqual([...liteTriggers, ...PG_ONLY_TRIGGERS].sort());
    lite.close();
  });
});

/** Both engines at the latest schema, behind the same Sql interface. */
function bothEngines(label: string): { engines: () => [string, Sql][] } {
  let db: TestDatabase;
  let pgSql: PgSql;
  let liteSql: SqliteSql;
  beforeAll(async () => {
    db = await createTestDatabase(label);
    pgSql = new PgSql({ url: db.url });
    await migratePg(pgSql);
    const lite = openDatabase(':memory:');
    migrate(lite);
    liteSql = new SqliteSql(lite);
  });
  afterAll(async () => {
    await pgSql?.close();
    await liteSql?.close();
    await db?.drop();
  });
  return {
    engines: () => [
      ['sqlite', liteSql],
      ['postgres', pgSql],
    ],
  };
}

describe('audit_log is append-only on both engines (DESIGN §3, §9; SQLite 0003/0011)', () => {
  const { engines } = bothEngines('audit');
  const insert = 'INSERT INTO audit_log (seq, ts, event, outcome, prev_hash, hash, key_id) VALUES (?, ?, ?, ?, ?, ?, ?)';
  const row = (seq: number | null, keyId: string | null = 'k1') => [seq, '2026-01-01T00:00:00.000Z', 'x.y', 'info', 'prev', 'hash', keyId];

  it('appends at the head and refuses UPDATE, DELETE, an insert off the head and an unkeyed insert, leaving the rows as they were', async () => {
    for (const [engine, sql] of engines()) {
      expect(await sql.run(insert, row(1)), engine).toEqual({ changes: 1 });
      expect(await sql.run(insert, row(2)), engine).toEqual({ changes: 1 });
      const before = await sql.all('SELECT * FROM audit_log ORDER BY seq');

      await expect(sql.run("UPDATE audit_log SET event = 'forged' WHERE seq = 1"), engine).rejects.toThrow('audit_log is append-only');
      await expect(sql.run("UPDATE audit_log SET hash = 'x'"), engine).rejects.toThrow('audit_log is append-only');
      await expect(sql.run('DELETE FROM audit_log WHERE seq = 2'), engine).rejects.toThrow('audit_log is append-only');
      await expect(sql.run('DELETE FROM audit_log'), engine).rejects.toThrow('audit_log is append-only');
      const offHead = 'audit_log is append-only: a new row must take the seq after the head';
      await expect(sql.run(insert, row(4)), `${engine}: gap`).rejects.toThrow(offHead);
      await expect(sql.run(insert, row(2)), `${engine}: over the head`).rejects.toThrow(offHead);
      await expect(sql.run(insert, row(1)), `${engine}: below the head`).rejects.toThrow(offHead);
      await expect(sql.run(insert, row(null)), `${engine}: NULL seq`).rejects.toThrow();
      await expect(sql.run(`${insert} ON CONFLICT (seq) DO NOTHING`, row(2)), `${engine}: upsert over a row`).rejects.toThrow(offHead);
      await expect(sql.run(`${insert} ON CONFLICT (seq) DO UPDATE SET event = 'forged'`, row(1)), `${engine}: upsert rewriting a row`).rejects.toThrow(
        'audit_log is append-only',
      );
      await expect(sql.run(insert, row(3, null)), `${engine}: unkeyed`).rejects.toThrow('audit_log is append-only: a new row must carry its key id');
      // A refused statement inside a transaction takes the whole transaction with it.
      await expect(
        sql.transaction(async () => {
          await sql.run(insert, row(3));
          await sql.run('DELETE FROM audit_log WHERE seq = 1');
        }),
        engine,
      ).rejects.toThrow('audit_log is append-only');

      expect(await sql.all('SELECT * FROM audit_log ORDER BY seq'), engine).toEqual(before);
    }
  });

  it('PostgreSQL also refuses TRUNCATE, and any upsert (even at the head)', async () => {
    const [, sql] = engines().find(([engine]) => engine === 'postgres')!;
    const before = await sql.all('SELECT * FROM audit_log ORDER BY seq');
    expect(before.length).toBeGreaterThan(0);
    await expect(sql.run('TRUNCATE audit_log')).rejects.toThrow('audit_log is append-only');
    await expect(sql.run('TRUNCATE TABLE audit_log RESTART IDENTITY CASCADE')).rejects.toThrow('audit_log is append-only');
    const head = before.length + 1;
    await expect(sql.run(`${insert} ON CONFLICT (seq) DO UPDATE SET event = 'forged'`, row(head))).rejects.toThrow('audit_log is append-only');
    expect(await sql.all('SELECT * FROM audit_log ORDER BY seq')).toEqual(before);
    expect(await sql.run(insert, row(head))).toEqual({ changes: 1 });
  });
});

describe('gateway_generation moves on the same events on both engines (GW-01, SQLite 0008; PostgreSQL 0004: once per transaction)', () => {
  const { engines } = bothEngines('generation');

  const consent = (grantId: string) => [
    "INSERT INTO consents (subject, client_id, redirect_uri, resource, scopes, upstream_scopes, granted_at, expires_at, grant_id) VALUES ('alice', 'c1', 'https://app.example/cb', 'https://mcp.example/mcp', 'mcp:tools', 'openid', 1, 2, ?)",
    [grantId],
  ] as const;
  const upstream = (grantId: string) => [
    `INSERT INTO upstream_tokens (grant_id, subject, sealed_access, updated_at) VALUES (?, 'alice', 'sealed', 1)
     ON CONFLICT (grant_id) DO UPDATE SET sealed_access = excluded.sealed_access, updated_at = excluded.updated_at`,
    [grantId],
  ] as const;
  const steps: [string, string, readonly unknown[], number][] = [
    ['an access token is stored', "INSERT INTO oidc_models (model, key, payload, grant_id) VALUES ('AccessToken', 'at1', '{}', 'g1')", [], 0],
    ['an access token is updated', "UPDATE oidc_models SET payload = '{\"x\":1}' WHERE model = 'AccessToken' AND key = 'at1'", [], 1],
    ['a grant is stored and updated', "INSERT INTO oidc_models (model, key, payload) VALUES ('Grant', 'g1', '{}')", [], 0],
    ['(grant update)', "UPDATE oidc_models SET payload = '{\"y\":1}' WHERE model = 'Grant'", [], 0],
    ['a client is registered', "INSERT INTO clients_meta (client_id, registered_at, redirect_hosts) VALUES ('c1', 1, 'app.example')", [], 0],
    ['a consent is granted', ...consent('g1'), 1],
    ['a consent is used (last_used_at)', "UPDATE consents SET last_used_at = 5 WHERE grant_id = 'g1'", [], 0],
    ['the browser binding is set', "UPDATE consents SET browser_hash = 'b' WHERE grant_id = 'g1'", [], 0],
    ['a consent is revoked', "UPDATE consents SET revoked_at = 6, revoked_reason = 'user' WHERE grant_id = 'g1'", [], 1],
    ['an upstream token is saved', ...upstream('g1'), 1],
    ['an upstream token is refreshed (upsert)', ...upstream('g1'), 1],
    ['an upstream token is removed', "DELETE FROM upstream_tokens WHERE grant_id = 'g1'", [], 1],
    ['two upstream tokens are saved', ...upstream('g1'), 1],
    // SQLite bumps once per changed row (2); PostgreSQL once per transaction (0004): both move it.
    ['a consent is deleted (its upstream token goes with it)', "DELETE FROM consents WHERE grant_id = 'g1'", [], 2],
    ['access tokens are purged', "DELETE FROM oidc_models WHERE model = 'AccessToken'", [], 1],
    ['a grant is deleted', "DELETE FROM oidc_models WHERE model = 'Grant'", [], 0],
    ['an MCP session is bound', "INSERT INTO mcp_sessions (id_hash, subject, client_id, created_at, last_used_at) VALUES ('s', 'alice', 'c1', 1, 1)", [], 0],
  ];

  it('each step moves the counter on SQLite and PostgreSQL alike — by one per changed row on SQLite, by one per transaction on PostgreSQL', async () => {
    for (const [engine, sql] of engines()) {
      const generation = async () => (await sql.one<{ n: number }>('SELECT n FROM gateway_generation WHERE id = 1'))!.n;
      const seen: [string, number][] = [];
      for (const [label, statement, params] of steps) {
        const before = await generation();
        await sql.run(statement, params);
        seen.push([label, (await generation()) - before]);
      }
      expect(seen, engine).toEqual(steps.map(([label, , , delta]) => [label, engine === 'postgres' ? Math.sign(delta) : delta]));
    }
  });

  it('PostgreSQL: a statement changing thousands of access tokens moves it once (was once per row: 30,000 rows held its lock 6.5 s), a transaction of several changes once, two transactions twice', async () => {
    const [, sql] = engines().find(([engine]) => engine === 'postgres')!;
    const generation = async () => (await sql.one<{ n: number }>('SELECT n FROM gateway_generation WHERE id = 1'))!.n;
    await sql.run(
      "INSERT INTO oidc_models (model, key, payload, grant_id, expires_at) SELECT 'AccessToken', 'bulk' || CAST(i AS TEXT), '{}', 'g-bulk', 1 FROM generate_series(1, 5000) AS i",
    );
    let before = await generation();
    await sql.run("DELETE FROM oidc_models WHERE expires_at IS NOT NULL AND expires_at < ? AND model <> 'Client'", [2]);
    expect(await generation()).toBe(before + 1);
    expect(await sql.one("SELECT key FROM oidc_models WHERE grant_id = 'g-bulk'")).toBeUndefined();

    before = await generation();
    await sql.transaction(async () => {
      await sql.run(...consent('g-tx'));
      await sql.run(...upstream('g-tx'));
      await sql.run("UPDATE consents SET revoked_at = 7, revoked_reason = 'user' WHERE grant_id = 'g-tx'");
    });
    expect(await generation()).toBe(before + 1);
    await sql.run("UPDATE consents SET revoked_at = 8 WHERE grant_id = 'g-tx'");
    await sql.run("DELETE FROM upstream_tokens WHERE grant_id = 'g-tx'");
    expect(await generation()).toBe(before + 3);
  });

  it('PostgreSQL: a change rolled back to a savepoint takes its mark with it, so the next change in that transaction still moves the counter', async () => {
    const db = await createTestDatabase('generation-savepoint');
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: db.url });
    try {
      const owner = new PgSql({ url: db.url });
      await migratePg(owner).finally(() => owner.close());
      await client.connect();
      const generation = async () => Number((await client.query('SELECT n FROM gateway_generation WHERE id = 1')).rows[0].n);
      await client.query("INSERT INTO oidc_models (model, key, payload, grant_id) VALUES ('AccessToken', 'a', '{}', 'g'), ('AccessToken', 'b', '{}', 'g')");
      const before = await generation();
      await client.query('BEGIN');
      await client.query('SAVEPOINT s');
      await client.query("DELETE FROM oidc_models WHERE key = 'a'");
      await client.query('ROLLBACK TO SAVEPOINT s');
      await client.query("DELETE FROM oidc_models WHERE key = 'b'");
      await client.query('COMMIT');
      expect(await generation()).toBe(before + 1);
      expect((await client.query("SELECT key FROM oidc_models WHERE model = 'AccessToken'")).rows).toEqual([{ key: 'a' }]);
      // A session that sets the mark's name itself does not make a change skip the bump.
      await client.query("SET mcp_consent_proxy.generation_bumped = 'yes'");
      await client.query("DELETE FROM oidc_models WHERE key = 'a'");
      expect(await generation()).toBe(before + 2);
    } finally {
      await client.end();
      await db.drop();
    }
  });
});
