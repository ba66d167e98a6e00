/**
 * PostgreSQL for tests. `TEST_DATABASE_URL` names a cluster and a superuser (`.ci/pg-cluster.sh
 * start` prints one); each test file gets a database of its own, created from template0 and
 * dropped (WITH (FORCE): connections a failed test left open do not keep it) when the file ends.
 *
 * PostgreSQL test files are named `*.pg.test.ts`. test/vitest.config.ts leaves them out when
 * neither TEST_DATABASE_URL nor CI is set (a developer without a cluster); in CI they always run,
 * and without TEST_DATABASE_URL they fail with the message below.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';

export const MISSING_URL =
  'TEST_DATABASE_URL is not set: the PostgreSQL tests (*.pg.test.ts) need a cluster. Start a throwaway one with ' +
  '`eval "$(.ci/pg-cluster.sh start)"` (stop it with `.ci/pg-cluster.sh stop`); in CI, .ci/run must start it and export the URL.';

export function testDatabaseUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error(MISSING_URL);
  return url;
}

/** `url` with its database name replaced (the path), keeping user, host, port and parameters. */
export function withDatabase(url: string, database: string): string {
  const match = /^(postgres(?:ql)?:\/\/[^/?#]*)(?:\/[^?#]*)?(.*)$/i.exec(url);
  if (!match) throw new Error('TEST_DATABASE_URL must be a postgres:// or postgresql:// URL');
  return `${match[1]}/${encodeURIComponent(database)}${match[2]}`;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: testDatabaseUrl() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A new, empty database on the test cluster. */
export async function createTestDatabase(label = 'test'): Promise<TestDatabase> {
  const name = `t_${label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 30)}_${process.pid}_${randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE template0 ENCODING 'UTF8'`));
  return {
    name,
    url: withDatabase(testDatabaseUrl(), name),
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`)).then(() => undefined),
  };
}

/**
 * One database for the calling test file: created before its tests, dropped after them. Read
 * `.url` inside hooks and tests.
 */
export function pgDatabasePerFile(label: string): { readonly url: string; readonly name: string } {
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(label);
  });
  afterAll(async () => {
    await db?.drop();
  });
  return {
    get url() {
      if (!db) throw new Error(MISSING_URL);
      return db.url;
    },
    get name() {
      if (!db) throw new Error(MISSING_URL);
      return db.name;
    },
  };
}

/** The cluster's unix socket directory and port (for `?host=/socket/dir` URLs). */
export async function clusterSocket(): Promise<{ dir: string; port: number }> {
  return admin(async (c) => {
    const dirs = (await c.query<{ d: string }>("SELECT current_setting('unix_socket_directories') AS d")).rows[0]!.d;
    const port = Number((await c.query<{ p: string }>("SELECT current_setting('port') AS p")).rows[0]!.p);
    const dir = dirs.split(',')[0]!.trim();
    if (!dir) throw new Error('the test cluster listens on no unix socket');
    return { dir, port };
  });
}

/**
 * Whether a connection to this pool's database waits for a lock (`pg_stat_activity`), asked every
 * 20 ms for up to 10 s (it answers as soon as it sees one; 2 s was tight on a loaded 2-core VM):
 * the tests that prove one transaction waits for another's row lock.
 */
export async function lockWaitSeen(pool: pg.Pool): Promise<boolean> {
  for (let i = 0; i < 500; i++) {
    const { rows } = await pool.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
    if ((rows[0] as { n: number }).n > 0) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

/**
 * `work(holder)` on a connection of its own from `pool`, in a transaction it commits — the tests
 * that hold one side's lock while the other side runs. A failing statement or assertion in `work`
 * rolls the transaction back before the connection goes back to the pool (never returned inside
 * an open transaction) and is returned as `error` (its code and message); `{}` when it committed.
 */
export async function holding(pool: pg.Pool, work: (holder: pg.PoolClient) => Promise<void>): Promise<{ error?: string }> {
  const holder = await pool.connect();
  try {
    await holder.query('BEGIN');
    await work(holder);
    await holder.query('COMMIT');
    return {};
  } catch (err) {
    await holder.query('ROLLBACK').catch(() => undefined);
    return { error: `${(err as { code?: string }).code ?? ''} ${(err as Error).message}` };
  } finally {
    holder.release();
  }
}

/**
 * Make the COMMITs of `pool`'s connections lose their answer as `mode()` (asked at each COMMIT)
 * says: `after` sends COMMIT and loses the answer (it committed), `before` loses the connection
 * before sending it (it did not), undefined answers normally — the "Connection terminated" a
 * dropped connection gives (the tests of afterCommit's ifUnknown and of what relies on it).
 */
export function loseCommitAnswers(pool: pg.Pool, mode: () => 'after' | 'before' | undefined): void {
  const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
  (pool as unknown as { connect: () => Promise<pg.PoolClient> }).connect = async () => {
    const client = await connect();
    const query = client.query.bind(client) as (config: unknown) => Promise<unknown>;
    (client as unknown as { query: (config: unknown) => Promise<unknown> }).query = async (config: unknown) => {
      const lose = config === 'COMMIT' ? mode() : undefined;
      if (lose === undefined) return query(config);
      if (lose === 'after') await query(config);
      throw new Error('Connection terminated unexpectedly');
    };
    return client;
  };
}
