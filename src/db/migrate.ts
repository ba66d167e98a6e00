/**
 * Forward-only SQL migrations (style C7): `migrations/NNNN-kebab-name.sql`, four digits,
 * consecutive from 0001. Each pending file runs in its own transaction together with the row
 * that records its name and SHA-256 checksum. A file changed after it was applied, a gap in the
 * numbering, or a database carrying migrations this build does not know stops the start.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from './open.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

const FILE_NAME = /^(\d{4})-([a-z0-9]+(?:-[a-z0-9]+)*)\.sql$/;

export interface MigrationFile {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export class MigrationError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

export function readMigrations(dir = MIGRATIONS_DIR): MigrationFile[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  return files.map((name, index) => {
    const match = FILE_NAME.exec(name);
    if (!match) throw new MigrationError(`migration file name ${name} does not match NNNN-kebab-name.sql`);
    const version = Number(match[1]);
    if (version !== index + 1) throw new MigrationError(`migration ${name} is out of sequence: expected number ${String(index + 1).padStart(4, '0')}`);
    const sql = readFileSync(join(dir, name), 'utf8');
    return { version, name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
}

export interface MigrateResult {
  applied: string[];
  current: number;
}

/** Apply pending migrations; verify applied ones. Idempotent. */
export function migrate(db: Db, dir = MIGRATIONS_DIR): MigrateResult {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL
  ) STRICT`);
  const files = readMigrations(dir);
  const applied = db.prepare('SELECT version, name, checksum FROM schema_migrations ORDER BY version').all() as {
    version: number;
    name: string;
    checksum: string;
  }[];

  checkApplied(files, applied);

  const record = db.prepare('INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)');
  const done: string[] = [];
  for (const file of files.slice(applied.length)) {
    db.transaction(() => {
      db.exec(file.sql);
      record.run(file.version, file.name, file.checksum, new Date().toISOString());
    })();
    done.push(file.name);
  }
  return { applied: done, current: files.length };
}

export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
}

/**
 * Refuse a database migrated by a newer build, or one whose applied files were changed since
 * (both engines: src/db/migrate-pg.ts uses it too).
 */
export function checkApplied(files: MigrationFile[], applied: AppliedMigration[]): void {
  const newest = applied.at(-1);
  if (newest && newest.version > files.length) {
    throw new MigrationError(
      `the database was migrated by a newer version of mcp-consent-proxy (it has migration ${newest.name}, this build knows up to ${files.at(-1)?.name ?? 'none'}); run the newer version or restore a backup`,
    );
  }
  for (const row of applied) {
    const file = files[row.version - 1];
    if (!file || file.name !== row.name || file.checksum !== row.checksum) {
      throw new MigrationError(`migration ${row.name} was changed after it was applied (checksum differs); restore the original file and put the change in a new migration`);
    }
  }
}
