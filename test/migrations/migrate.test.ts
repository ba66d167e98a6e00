import { describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../src/db/open.js';
import { migrate, MIGRATIONS_DIR, MigrationError, readMigrations } from '../../src/db/migrate.js';

function copyMigrations(): string {
  const dir = mkdtempSync(join(tmpdir(), 'migrations-'));
  // The SQLite files only: migrations/postgres/ is the other engine's (src/db/migrate-pg.ts).
  for (const f of readdirSync(MIGRATIONS_DIR).filter((name) => name.endsWith('.sql'))) copyFileSync(join(MIGRATIONS_DIR, f), join(dir, f));
  return dir;
}

describe('migrations', () => {
  it('takes an empty database to the latest schema, with WAL and foreign keys on', () => {
    const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'db-')), 'p.db'));
    const result = migrate(db);
    expect(result.applied).toEqual(readMigrations().map((m) => m.name));
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    expect(tables).toEqual(expect.arrayContaining(['audit_log', 'clients_meta', 'oidc_models', 'schema_migrations', 'sealed_secrets']));
    const recorded = db.prepare('SELECT version, name, checksum FROM schema_migrations ORDER BY version').all() as { version: number; checksum: string }[];
    expect(recorded.map((r) => r.version)).toEqual(result.applied.map((_, i) => i + 1));
    for (const r of recorded) expect(r.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is a no-op when re-run, and keeps the data', () => {
    const db = openDatabase(':memory:');
    migrate(db);
    db.prepare("INSERT INTO clients_meta (client_id, registered_at, redirect_hosts) VALUES ('c1', 1, 'a.example')").run();
    expect(migrate(db).applied).toEqual([]);
    expect(db.prepare('SELECT client_id FROM clients_meta').all()).toEqual([{ client_id: 'c1' }]);
  });

  it('applies only the new files on a database migrated by an older build', () => {
    const dir = copyMigrations();
    const files = readdirSync(dir).sort();
    const older = mkdtempSync(join(tmpdir(), 'older-'));
    for (const f of files.slice(0, 2)) copyFileSync(join(dir, f), join(older, f));
    const db = openDatabase(':memory:');
    expect(migrate(db, older).applied).toEqual(files.slice(0, 2));
    expect(migrate(db, dir).applied).toEqual(files.slice(2));
  });

  it('refuses to start when an applied file was edited', () => {
    const dir = copyMigrations();
    const db = openDatabase(':memory:');
    migrate(db, dir);
    appendFileSync(join(dir, '0002-clients-meta.sql'), '\n-- edited after release\n');
    expect(() => migrate(db, dir)).toThrow(MigrationError);
    expect(() => migrate(db, dir)).toThrow('migration 0002-clients-meta.sql was changed after it was applied (checksum differs); restore the original file and put the change in a new migration');
  });

  it('refuses a database from a newer version', () => {
    const db = openDatabase(':memory:');
    migrate(db);
    const n = readMigrations().length + 1;
    db.prepare("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, 'x', 'now')").run(n, `${String(n).padStart(4, '0')}-future.sql`);
    expect(() => migrate(db)).toThrow(/migrated by a newer version of mcp-consent-proxy/);
  });

  it('refuses badly named or out-of-sequence files, and rolls back a failing file', () => {
    const dir = copyMigrations();
    writeFileSync(join(dir, '0099-gap.sql'), 'SELECT 1;');
    expect(() => readMigrations(dir)).toThrow(/out of sequence/);
    const bad = copyMigrations();
    writeFileSync(join(bad, 'add_thing.sql'), 'SELECT 1;');
    expect(() => readMigrations(bad)).toThrow(/does not match NNNN-kebab-name.sql/);
    const failing = copyMigrations();
    const next = String(readdirSync(failing).length + 1).padStart(4, '0');
    writeFileSync(join(failing, `${next}-broken.sql`), 'CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);');
    const db = openDatabase(':memory:');
    expect(() => migrate(db, failing)).toThrow(/no such table/);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'half_done'").get()).toBeUndefined();
    expect(db.prepare('SELECT count(*) AS n FROM schema_migrations').get()).toEqual({ n: readdirSync(failing).length - 1 });
  });
});
