/**
 * The databases the doctor tests need, made in one place (the one helper that touches SQLite
 * directly for them, so a change of storage engine is adapted here): migrated, from a newer
 * version, with a changed migration, not a database at all, and one whose write lock is held.
 */
import { writeFileSync } from 'node:fs';
import { openDatabase } from '../../src/db/open.js';
import { migrate } from '../../src/db/migrate.js';

export function migratedDatabase(path: string): void {
  const db = openDatabase(path);
  migrate(db);
  db.close();
}

/** As if a newer release had applied a migration this one does not know. */
export function newerDatabase(path: string): void {
  migratedDatabase(path);
  const db = openDatabase(path);
  db.prepare("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (999, '0999-from-the-future.sql', 'x', '2030-01-01T00:00:00Z')").run();
  db.close();
}

/** As if migrations/0002 had been edited after it was applied. */
export function changedMigrationDatabase(path: string): void {
  migratedDatabase(path);
  const db = openDatabase(path);
  db.prepare("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 2").run();
  db.close();
}

export function notADatabase(path: string): void {
  writeFileSync(path, 'this is not an SQLite database, but a text file of some length '.repeat(64));
}

/** Another connection holds the write lock until `release` is called. */
export function holdWriteLock(path: string): { release(): void } {
  const db = openDatabase(path);
  db.exec('BEGIN EXCLUSIVE');
  return {
    release() {
      db.exec('ROLLBACK');
      db.close();
    },
  };
}
