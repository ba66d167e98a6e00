/**
 * Migration 0014 (issue 14): oidc_models rebuilt as a rowid table. A database migrated by the build
 * before it keeps every row and the whole schema as it was — columns with their types, NOT NULL and
 * primary key, STRICT, every index with its columns and WHERE, the gateway generation's triggers
 * (0008), which the rebuild drops and must make again: a token update or delete that no longer moved
 * the generation would let the gateway keep a revoked token's cached check (GW-01) — except the one
 * intended difference: the table is no longer WITHOUT ROWID.
 */
import { describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Db } from '../../src/db/open.js';
import { migrate, MIGRATIONS_DIR } from '../../src/db/migrate.js';

const UPSERT = `INSERT INTO oidc_models (model, key, payload, grant_id, uid, expires_at) VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (model, key) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid, expires_at = excluded.expires_at`;
const ROWS = 'SELECT model, key, payload, grant_id, uid, expires_at, consumed_at FROM oidc_models ORDER BY model, key';

/** The migrations up to `last` (its number), in a directory of their own: later files may change the schema again. */
function migrationsUpTo(last: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'migrations-'));
  for (const f of readdirSync(MIGRATIONS_DIR).filter((name) => name.endsWith('.sql') && name.slice(0, 4) <= last)) copyFileSync(join(MIGRATIONS_DIR, f), join(dir, f));
  return dir;
}
const UP_TO_0014 = migrationsUpTo('0014');

/** A database migrated by the build before 0014, with rows of every shape. */
function before0014(): Db {
  const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'db-')), 'p.db'));
  expect(migrate(db, migrationsUpTo('0013')).current).toBe(13);
  const insert = db.prepare('INSERT INTO oidc_models (model, key, payload, grant_id, uid, expires_at, consumed_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
  insert.run('Client', 'client-1', '{"client_id":"client-1"}', null, null, null, null);
  insert.run('Grant', 'grant-1', '{"accountId":"u1"}', null, null, 2_000_000, null);
  insert.run('AccessToken', 'at-hash', '{"grantId":"grant-1"}', 'grant-1', null, 1_000_000, null);
  insert.run('RefreshToken', 'rt-hash', '{"grantId":"grant-1"}', 'grant-1', null, 3_000_000, 1_500_000);
  insert.run('Session', 'session-hash', '{"sealed":"x"}', null, 'uid-1', 4_000_000, null);
  return db;
}

/** Everything about oidc_models a query, a constraint or a trigger depends on. */
function schemaOf(db: Db) {
  const all = (sql: string, ...params: unknown[]) => db.prepare(sql).all(...params);
  return {
    columns: all('SELECT cid, name, type, "notnull", dflt_value, pk, hidden FROM pragma_table_xinfo(\'oidc_models\') ORDER BY cid'),
    table: all("SELECT ncol, strict, wr FROM pragma_table_list('oidc_models')"),
    indexes: (all('SELECT name, "unique", origin, partial FROM pragma_index_list(\'oidc_models\') ORDER BY name') as { name: string; unique: number; origin: string; partial: number }[]).map(
      (index) => ({
        ...index,
        // the key columns only: what follows them is the rowid, or in a WITHOUT ROWID table the primary key
        columns: all('SELECT seqno, name, "desc", coll, key FROM pragma_index_xinfo(?) ORDER BY seqno', index.name).filter((c) => (c as { key: number }).key === 1),
        // the automatic primary-key index has no SQL, and no row at all in a WITHOUT ROWID table
        sql: (db.prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?").get(index.name) as { sql: string | null } | undefined)?.sql ?? null,
      }),
    ),
    triggers: all("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'oidc_models' ORDER BY name"),
  };
}

const generation = (db: Db) => (db.prepare('SELECT n FROM gateway_generation WHERE id = 1').get() as { n: number }).n;

describe('migration 0014: oidc_models as a rowid table', () => {
  it('keeps every row and the schema, except that the table is no longer WITHOUT ROWID', () => {
    const db = before0014();
    const rows = db.prepare(ROWS).all();
    const before = schemaOf(db);
    expect(before.table).toEqual([{ ncol: 7, strict: 1, wr: 1 }]);
    expect(before.triggers).toHaveLength(2);
    expect(migrate(db, UP_TO_0014).applied).toEqual(['0014-oidc-models-rowid.sql']);
    expect(db.prepare(ROWS).all()).toEqual(rows);
    const after = schemaOf(db);
    expect(after).toEqual({ ...before, table: [{ ncol: 7, strict: 1, wr: 0 }] });
    // The primary key is now a unique index of its own, and the lookups use it, not a scan.
    expect(after.indexes.find((i) => i.origin === 'pk')).toMatchObject({ unique: 1, columns: [{ name: 'model' }, { name: 'key' }] });
    const plan = db.prepare("EXPLAIN QUERY PLAN SELECT payload FROM oidc_models WHERE model = 'AccessToken' AND key = 'at-hash'").all() as { detail: string }[];
    expect(plan.map((p) => p.detail).join(' ')).toMatch(/USING INDEX sqlite_autoindex_oidc_models_1 \(model=\? AND key=\?\)/);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
  });

  it('still refuses a second row for one (model, key), and the store upsert updates in place', () => {
    const db = before0014();
    migrate(db, UP_TO_0014);
    expect(() => db.prepare("INSERT INTO oidc_models (model, key, payload) VALUES ('AccessToken', 'at-hash', '{}')").run()).toThrow(/UNIQUE constraint failed: oidc_models.model, oidc_models.key/);
    const rowidBefore = db.prepare("SELECT rowid FROM oidc_models WHERE model = 'Client' AND key = 'client-1'").get();
    db.prepare(UPSERT).run('Client', 'client-1', '{"client_id":"client-1","client_name":"renamed"}', null, null, null);
    expect(db.prepare("SELECT rowid, payload FROM oidc_models WHERE model = 'Client' AND key = 'client-1'").get()).toEqual({
      ...(rowidBefore as object),
      payload: '{"client_id":"client-1","client_name":"renamed"}',
    });
    expect(db.prepare("SELECT count(*) AS n FROM oidc_models WHERE model = 'Client'").get()).toEqual({ n: 1 });
  });

  it('appends new rows after the last one, whatever their key', () => {
    const db = before0014();
    migrate(db, UP_TO_0014);
    const last = (db.prepare('SELECT max(rowid) AS m FROM oidc_models').get() as { m: number }).m;
    db.prepare(UPSERT).run('AccessToken', 'zzzz-sorts-last', '{}', 'grant-1', null, 1_000_000);
    db.prepare(UPSERT).run('AccessToken', '0000-sorts-first', '{}', 'grant-1', null, 1_000_000);
    const order = db.prepare("SELECT key, rowid AS r FROM oidc_models WHERE key IN ('0000-sorts-first', 'zzzz-sorts-last') ORDER BY rowid").all();
    expect(order).toEqual([
      { key: 'zzzz-sorts-last', r: last + 1 },
      { key: '0000-sorts-first', r: last + 2 },
    ]);
  });

  it('keeps the gateway generation moving on an access token update or delete (GW-01), and only then', () => {
    const db = before0014();
    migrate(db, UP_TO_0014);
    const n0 = generation(db);
    db.prepare("UPDATE oidc_models SET consumed_at = 1 WHERE model = 'AccessToken' AND key = 'at-hash'").run();
    expect(generation(db)).toBe(n0 + 1);
    db.prepare("UPDATE oidc_models SET consumed_at = 2 WHERE model = 'RefreshToken' AND key = 'rt-hash'").run();
    db.prepare(UPSERT).run('Client', 'client-2', '{}', null, null, null);
    expect(generation(db)).toBe(n0 + 1);
    db.prepare('DELETE FROM oidc_models WHERE grant_id = ?').run('grant-1');
    expect(generation(db)).toBe(n0 + 2);
    expect(db.prepare("SELECT count(*) AS n FROM oidc_models WHERE grant_id = 'grant-1'").get()).toEqual({ n: 0 });
  });
});
