/**
 * The PostgreSQL database's state for `mcp-consent-proxy doctor` (DATABASE_URL), read without
 * changing it — the counterpart of src/db/status.ts: can this process connect (within the
 * doctor's timeout), is the server a writable primary (not a read-only standby) and may this role
 * write the tables the proxy writes, and are the PostgreSQL migrations this build knows applied —
 * none pending, none unknown, none changed (the rules `migrate` enforces, src/db/migrate-pg.ts).
 * The application role may be insert-only on audit_log (README "Running several replicas"):
 * INSERT is what is checked there.
 */
import { PgSql } from './pg-sql.js';
import { readMigrations } from './migrate.js';
import { PG_MIGRATIONS_DIR } from './migrate-pg.js';
import { stateOf, type DatabaseStatus } from './status.js';

/** The tables the proxy writes, with the privileges it needs on each. */
const WRITES: [table: string, privileges: string][] = [
  ['oidc_models', 'INSERT,UPDATE,DELETE'],
  ['consents', 'INSERT,UPDATE'],
  ['audit_log', 'INSERT'],
];

export async function postgresStatus(url: string, timeoutMs: number, dir = PG_MIGRATIONS_DIR): Promise<DatabaseStatus> {
  let sql: PgSql;
  try {
    sql = new PgSql({ url, poolMax: 1, connectTimeoutMs: Math.max(1, Math.round(timeoutMs)) });
  } catch (err) {
    return { state: 'unusable', problem: (err as Error).message };
  }
  try {
    const table = await sql.one<{ t: string | null }>("SELECT CAST(to_regclass('schema_migrations') AS TEXT) AS t");
    if (!table?.t) return { state: 'missing' };
    const standby = await sql.one<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    if (standby?.r) return { state: 'not-writable', problem: 'the server is a read-only standby' };
    for (const [name, privileges] of WRITES) {
      const ok = await sql.one<{ ok: boolean | null }>('SELECT has_table_privilege(CAST(? AS TEXT), CAST(? AS TEXT)) AS ok', [name, privileges]);
      if (ok && ok.ok === false) return { state: 'not-writable', problem: `this role lacks ${privileges} on ${name}` };
    }
    const applied = await sql.all<{ version: number; name: string; checksum: string }>('SELECT version, name, checksum FROM schema_migrations ORDER BY version');
    return stateOf(readMigrations(dir), applied);
  } catch (err) {
    return { state: 'unusable', problem: (err as Error).message };
  } finally {
    await sql.close().catch(() => undefined);
  }
}
