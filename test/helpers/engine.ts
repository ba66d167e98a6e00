/**
 * Which database engine the test suite runs on: `TEST_ENGINE=postgres` runs every test app (and
 * every test that opens a database through these helpers) on PostgreSQL — a fresh database per
 * data directory on TEST_DATABASE_URL's cluster (test/helpers/pg.ts), with DATABASE_URL set —;
 * unset (or `sqlite`) keeps SQLite in the data directory, as the embedded default runs.
 * `.ci/run` runs the whole suite at least once per engine (SQLite on Node 20 and 24, PostgreSQL on 22).
 *
 * A data directory keeps its database across restarts (stack.restart(), tests that start a
 * second server on the same directory): the same directory always gets the same PostgreSQL
 * database, as it would the same SQLite file. The databases are dropped when the test file ends.
 */
import { afterAll } from 'vitest';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from './pg.js';
import type { Sql } from '../../src/db/sql.js';
import { openSqliteSql } from '../../src/db/sqlite-sql.js';
import { PgSql } from '../../src/db/pg-sql.js';
import { migrate } from '../../src/db/migrate.js';
import { migratePg } from '../../src/db/migrate-pg.js';

export type TestEngine = 'sqlite' | 'postgres';

function engineFromEnv(): TestEngine {
  const value = process.env.TEST_ENGINE?.trim().toLowerCase();
  if (value === undefined || value === '' || value === 'sqlite') return 'sqlite';
  if (value === 'postgres' || value === 'postgresql') return 'postgres';
  throw new Error(`TEST_ENGINE must be sqlite or postgres (got "${process.env.TEST_ENGINE}")`);
}

export const TEST_ENGINE: TestEngine = engineFromEnv();
export const onPostgres = TEST_ENGINE === 'postgres';

/**
 * Drop trigger `name` of `table` (an attacker with write access to the database, in the tamper
 * tests): SQLite names triggers per schema, PostgreSQL per table.
 */
export async function dropTrigger(db: Sql, name: string, table: string): Promise<void> {
  await db.run(db.engine === 'postgres' ? `DROP TRIGGER IF EXISTS ${name} ON ${table}` : `DROP TRIGGER IF EXISTS ${name}`);
}

/** The SQLite file of a data directory (also its data directory on PostgreSQL: secret, checkpoint). */
export const databasePathIn = (dir: string) => join(dir, 'proxy.db');

const databases = new Map<string, Promise<TestDatabase>>();
// Only inside vitest (the benchmark imports these helpers too, and runs on SQLite).
if (process.env.VITEST) {
  afterAll(async () => {
    const all = [...databases.values()];
    databases.clear();
    for (const db of all) await (await db).drop();
  });
}

/**
 * The environment a server (or the CLI) on data directory `dir` needs for its database:
 * DATABASE_PATH always (it names the data directory), DATABASE_URL on PostgreSQL.
 */
export async function databaseEnv(dir: string): Promise<Record<string, string>> {
  const env: Record<string, string> = { DATABASE_PATH: databasePathIn(dir) };
  if (!onPostgres) return env;
  let db = databases.get(dir);
  if (!db) {
    db = createTestDatabase('app');
    databases.set(dir, db);
  }
  env.DATABASE_URL = (await db).url;
  return env;
}

/** The database of data directory `dir`, opened and migrated, behind the Sql interface (close it). */
export async function openTestSql(dir: string): Promise<Sql> {
  const env = await databaseEnv(dir);
  if (env.DATABASE_URL) {
    const sql = new PgSql({ url: env.DATABASE_URL, poolMax: 2 });
    await migratePg(sql);
    return sql;
  }
  const sql = openSqliteSql(env.DATABASE_PATH as string);
  migrate(sql.db);
  return sql;
}
