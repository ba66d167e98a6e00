/**
 * The database's state, read without changing it (for `mcp-consent-proxy doctor`), SQLite here and
 * PostgreSQL in src/db/status-pg.ts: does the file
 * exist and open, can this process take the write lock (then released, nothing written), and
 * are the migrations this build knows applied — none pending, none unknown, none changed
 * (the rules `migrate` enforces, src/db/migrate.ts).
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { openDatabase, type Db } from './open.js';
import { MIGRATIONS_DIR, readMigrations, type MigrationFile } from './migrate.js';

/** An object this role may not use as the proxy does: `object` as doctor names it ("oidc_models", "function …", "schema …"). */
export interface MissingPrivileges {
  object: string;
  privileges: string[];
}

/** "INSERT, UPDATE on x; EXECUTE on function y": what doctor and `serve` name as lacking. */
export function describeMissing(missing: MissingPrivileges[]): string {
  return missing.map((m) => `${m.privileges.join(', ')} on ${m.object}`).join('; ');
}

export type DatabaseStatus =
  | { state: 'missing' }
  | { state: 'unusable'; problem: string }
  | { state: 'not-writable'; problem: string }
  /** PostgreSQL: privileges this role lacks, each object (table, function, schema) with its own list. */
  | { state: 'lacks-privileges'; missing: MissingPrivileges[] }
  | { state: 'pending'; applied: number; known: number; next: string }
  | { state: 'newer'; newest: string; known: string }
  | { state: 'changed'; name: string }
  | { state: 'ready'; applied: number };

function appliedMigrations(db: Db): { version: number; name: string; checksum: string }[] {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  return table ? (db.prepare('SELECT version, name, checksum FROM schema_migrations ORDER BY version').all() as { version: number; name: string; checksum: string }[]) : [];
}

function migrationState(db: Db, dir: string): DatabaseStatus {
  return stateOf(readMigrations(dir), appliedMigrations(db));
}

/** Where the applied migrations stand against the files this build knows (the rules `migrate` enforces). */
export function stateOf(files: MigrationFile[], applied: { version: number; name: string; checksum: string }[]): DatabaseStatus {
  const newest = applied.at(-1);
  if (newest && newest.version > files.length) return { state: 'newer', newest: newest.name, known: files.at(-1)?.name ?? 'none' };
  const changed = applied.find((row) => files[row.version - 1]?.name !== row.name || files[row.version - 1]?.checksum !== row.checksum);
  if (changed) return { state: 'changed', name: changed.name };
  if (applied.length < files.length) return { state: 'pending', applied: applied.length, known: files.length, next: (files[applied.length] as { name: string }).name };
  return { state: 'ready', applied: applied.length };
}

/** The SQLite database at `path`; waits at most `lockWaitMs` for the write lock. */
export function sqliteStatus(path: string, lockWaitMs: number, dir = MIGRATIONS_DIR): DatabaseStatus {
  if (!existsSync(path)) return { state: 'missing' };
  let db: Db;
  try {
    db = openDatabase(path, { mustExist: true });
  } catch (err) {
    return { state: 'unusable', problem: (err as Error).message };
  }
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.round(lockWaitMs))}`);
    try {
      accessSync(dirname(path), constants.W_OK); // WAL files, secret.key and the audit checkpoint live there
      db.exec('BEGIN IMMEDIATE');
      db.exec('ROLLBACK');
    } catch (err) {
      return { state: 'not-writable', problem: (err as Error).message };
    }
    return migrationState(db, dir);
  } catch (err) {
    return { state: 'unusable', problem: (err as Error).message };
  } finally {
    db.close();
  }
}
