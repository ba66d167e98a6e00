/**
 * Forward-only migrations for PostgreSQL (DESIGN §3, §8): the same rules as the SQLite runner
 * (src/db/migrate.ts: `NNNN-kebab-name.sql`, consecutive, each pending file in its own
 * transaction together with its schema_migrations row and SHA-256 checksum; an edited applied
 * file, a gap, or a database from a newer build stops the start), over migrations/postgres/.
 *
 * Replicas start at once: the whole run holds a session-level advisory lock (pg_advisory_lock) on
 * one dedicated connection, so N concurrent starts apply each file once — the first migrates, the
 * others wait, then find nothing pending and only verify the checksums. The lock is released at
 * the end, and by PostgreSQL itself if this process dies (the session ends).
 */
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { checkApplied, MigrationError, readMigrations, type AppliedMigration, type MigrateResult } from './migrate.js';
import { DatabaseMissingError } from './open.js';
import type { PgSql } from './pg-sql.js';
import { lockKey } from './sql.js';

export const PG_MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/postgres/', import.meta.url));

/** The advisory lock every migration run takes (and nothing else does). */
export const MIGRATION_LOCK = 'mcp-consent-proxy:migrate';

/**
 * Apply pending PostgreSQL migrations; verify applied ones. Idempotent; safe to run concurrently.
 * `mustExist` (the CLI's commands other than `migrate`): a database without the schema is an
 * error, not created — as a missing SQLite file is (a misspelt database name must not "verify").
 */
export async function migratePg(sql: PgSql, dir = PG_MIGRATIONS_DIR, options: { mustExist?: boolean } = {}): Promise<MigrateResult> {
  const files = readMigrations(dir);
  const client = await sql.pool.connect();
  let broken: Error | undefined;
  const onClientError = (err: Error) => {
    broken ??= err; // the connection dropped; the pending query rejects too
  };
  client.on('error', onClientError);
  try {
    // A migration waits as long as it must — for another process's run and for its DDL's locks on
    // tables serving replicas use — not the server pool's bound (src/db/pg-lock-timeout.ts); so its
    // connection is closed after it, never pooled with that setting.
    await client.query('SET lock_timeout = 0');
    await client.query('SELECT pg_advisory_lock($1::bigint)', [lockKey(MIGRATION_LOCK)]);
    try {
      return await migrateLocked(client, files, options.mustExist ?? false);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [lockKey(MIGRATION_LOCK)]).catch((err: Error) => {
        broken = err;
      });
    }
  } catch (err) {
    broken ??= err as Error;
    throw err;
  } finally {
    // Closed rather than pooled (lock_timeout 0; a failed run's session also drops the advisory
    // lock if the unlock could not be sent).
    client.off('error', onClientError);
    client.release(broken ?? true);
  }
}

/** SQLSTATE 42501: the role lacks a privilege (here: CREATE on the schema, or the tables' owner's rights). */
const isPermissionDenied = (err: unknown) => (err as { code?: unknown }).code === '42501';

/** What to do when this role cannot apply the migrations the build needs (README "Running several replicas"). */
function cannotMigrate(pending: number, next: string, cause: unknown): MigrationError {
  return new MigrationError(
    `the PostgreSQL database needs ${pending} migration${pending === 1 ? '' : 's'} (next: ${next}) and this role may not apply them (${(cause as Error).message}): run "mcp-consent-proxy migrate" as the owner of the database and of its tables, apply the application role's grants again (docs/compose/grants.sql), then start this again`,
    { cause },
  );
}

async function migrateLocked(client: pg.PoolClient, files: ReturnType<typeof readMigrations>, mustExist: boolean): Promise<MigrateResult> {
  // Created only when missing: CREATE TABLE IF NOT EXISTS checks CREATE on the schema even when the
  // table exists, and the application role of README "Running several replicas" (insert-only on
  // audit_log, owning nothing) has none — `serve` as that role only verifies what the owner applied.
  const { rows: found } = await client.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
  const hasTable = found[0]?.t != null;
  const applied = !hasTable ? [] : (await client.query<AppliedMigration>('SELECT version, name, checksum FROM schema_migrations ORDER BY version')).rows;
  if (mustExist && applied.length === 0) {
    throw new DatabaseMissingError(
      'PostgreSQL (DATABASE_URL)',
      'the PostgreSQL database named by DATABASE_URL has no schema yet; run "mcp-consent-proxy migrate" (or start the server once) to create it',
    );
  }
  checkApplied(files, applied);
  const next = files[applied.length]?.name;
  if (next === undefined) return { applied: [], current: files.length };
  try {
    if (!hasTable)
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`);
  } catch (err) {
    if (isPermissionDenied(err)) throw cannotMigrate(files.length, next, err);
    throw err;
  }

  const done: string[] = [];
  for (const file of files.slice(applied.length)) {
    await client.query('BEGIN');
    try {
      await client.query(file.sql); // simple query protocol: a file may hold many statements
      await client.query('INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)', [file.version, file.name, file.checksum, new Date().toISOString()]);
      await client.query('COMMIT');
    } catch (err) {
      // If even ROLLBACK fails the connection is broken; migratePg closes it. Report the cause.
      await client.query('ROLLBACK').catch(() => undefined);
      if (isPermissionDenied(err)) throw cannotMigrate(files.length - applied.length - done.length, file.name, err);
      throw err;
    }
    done.push(file.name);
  }
  return { applied: done, current: files.length };
}
