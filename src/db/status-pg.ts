/**
 * The PostgreSQL database's state for `mcp-consent-proxy doctor` (DATABASE_URL), read without
 * changing it — the counterpart of src/db/status.ts: can this process connect (within the
 * doctor's timeout), is the server a writable primary (not a read-only standby), does this role
 * hold every privilege the proxy uses on every object it uses (docs/compose/grants.sql grants
 * exactly these), and are the PostgreSQL migrations this build knows applied — none pending, none
 * unknown, none changed (the rules `migrate` enforces, src/db/migrate-pg.ts).
 */
import { explainPgConnectionFailure } from './pg-errors.js';
import { PgSql } from './pg-sql.js';
import { readMigrations } from './migrate.js';
import { PG_MIGRATIONS_DIR } from './migrate-pg.js';
import { describeMissing, stateOf, type DatabaseStatus, type MissingPrivileges } from './status.js';

type TablePrivilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';

const READ_WRITE: TablePrivilege[] = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];

/**
 * Every table `serve` uses as the application role, with each privilege its statements need
 * (src/store/*.ts; an upsert needs INSERT and UPDATE, an UPDATE or DELETE with a WHERE needs
 * SELECT), in the order doctor reports them. Each privilege is checked on its own:
 * has_table_privilege with a list is true when ANY ONE of them is held (that let a role with
 * INSERT alone on oidc_models pass while /register answered 500). Keep in step with
 * docs/compose/grants.sql, which grants these and no more where it matters.
 */
export const TABLE_PRIVILEGES: readonly (readonly [table: string, privileges: readonly TablePrivilege[]])[] = [
  ['oidc_models', READ_WRITE],
  ['clients_meta', READ_WRITE],
  // Append-only (migrations/postgres/0001-schema.sql): grants.sql revokes UPDATE and DELETE here, so
  // doctor must not ask for them. SELECT: the insert trigger reads the head, `audit verify` the rows.
  ['audit_log', ['SELECT', 'INSERT']],
  // put() is an upsert; nothing deletes a sealed secret.
  ['sealed_secrets', ['SELECT', 'INSERT', 'UPDATE']],
  // Consents are revoked (UPDATE), never deleted.
  ['consents', ['SELECT', 'INSERT', 'UPDATE']],
  ['browser_sessions', READ_WRITE],
  ['upstream_transactions', READ_WRITE],
  ['upstream_tokens', READ_WRITE],
  // Moved here by a revocation cascade, claimed (UPDATE) and deleted once U answered.
  ['upstream_revocations', READ_WRITE],
  ['admin_sessions', READ_WRITE],
  // Moved by the triggers on oidc_models, consents and upstream_tokens, which run as the writer.
  ['gateway_generation', ['SELECT', 'UPDATE']],
  ['mcp_sessions', READ_WRITE],
  ['rate_limits', READ_WRITE],
  // `serve` verifies the applied migrations at every start; only `migrate`, as the owner, writes here.
  ['schema_migrations', ['SELECT']],
];

/** Functions the proxy calls (grants.sql grants EXECUTE for databases that revoke it from PUBLIC). */
export const FUNCTION_PRIVILEGES: readonly string[] = ['audit_chain_head_locked(bigint)'];

/** What this role lacks of TABLE_PRIVILEGES and FUNCTION_PRIVILEGES, and which of those objects do not exist (yet). */
async function missingPrivileges(sql: PgSql): Promise<{ missing: MissingPrivileges[]; absent: string[] }> {
  const pairs = TABLE_PRIVILEGES.flatMap(([table, privileges]) => privileges.map((privilege) => [table, privilege]));
  // to_regclass: NULL for a table a pending migration has yet to create (has_table_privilege would fail on it).
  const rows = await sql.all<{ t: string; p: string; ok: boolean | null }>(
    `SELECT t, p, has_table_privilege(to_regclass(t), p) AS ok FROM (VALUES ${pairs.map(() => '(CAST(? AS TEXT), CAST(? AS TEXT))').join(', ')}) AS need (t, p)`,
    pairs.flat(),
  );
  const missing: MissingPrivileges[] = [];
  const absent = new Set<string>();
  for (const [table] of TABLE_PRIVILEGES) {
    const mine = rows.filter((row) => row.t === table);
    if (mine.some((row) => row.ok === null)) absent.add(table);
    const lacking = mine.filter((row) => row.ok === false).map((row) => row.p);
    if (lacking.length) missing.push({ object: table, privileges: lacking });
  }
  for (const signature of FUNCTION_PRIVILEGES) {
    const row = await sql.one<{ ok: boolean | null }>("SELECT has_function_privilege(to_regprocedure(CAST(? AS TEXT)), 'EXECUTE') AS ok", [signature]);
    const ok = row?.ok ?? null;
    if (ok === null) absent.add(`function ${signature}`);
    else if (!ok) missing.push({ object: `function ${signature}`, privileges: ['EXECUTE'] });
  }
  return { missing, absent: [...absent] };
}

/**
 * At `serve`'s start on PostgreSQL, once migrated: refuse to start when this role lacks a
 * privilege the proxy uses (review 2026-12-08: a replica whose role had not been granted a table an
 * upgrade added started and answered /readyz 200, and every revocation then rolled back with
 * "permission denied"). One query for the tables, one per function.
 */
export async function assertPrivileges(sql: PgSql): Promise<void> {
  const { missing } = await missingPrivileges(sql);
  if (!missing.length) return;
  const lacking = describeMissing(missing);
  throw new Error(
    `the role in DATABASE_URL lacks ${lacking}: as the database owner (the role that ran mcp-consent-proxy migrate), grant them — apply docs/compose/grants.sql, this role in place of mcp_app, after every migrate (README "Running several replicas"); mcp-consent-proxy doctor lists the same`,
  );
}

/**
 * schema_migrations is not visible to this role: not migrated — or in a schema this role lacks
 * USAGE on (name lookup skips those silently), where `migrate` as this role is the wrong fix.
 */
async function unusableSchemas(sql: PgSql): Promise<MissingPrivileges[]> {
  const rows = await sql.all<{ s: string }>(
    "SELECT n.nspname AS s FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'schema_migrations' AND NOT has_schema_privilege(n.oid, 'USAGE') ORDER BY n.nspname",
  );
  return rows.map((row) => ({ object: `schema ${row.s}`, privileges: ['USAGE'] }));
}

export async function postgresStatus(url: string, timeoutMs: number, dir = PG_MIGRATIONS_DIR): Promise<DatabaseStatus> {
  let sql: PgSql;
  try {
    sql = new PgSql({ url, poolMax: 1, connectTimeoutMs: Math.max(1, Math.round(timeoutMs)) });
  } catch (err) {
    return { state: 'unusable', problem: (err as Error).message };
  }
  try {
    const table = await sql.one<{ t: string | null }>("SELECT CAST(to_regclass('schema_migrations') AS TEXT) AS t");
    if (!table?.t) {
      const schemas = await unusableSchemas(sql);
      return schemas.length ? { state: 'lacks-privileges', missing: schemas } : { state: 'missing' };
    }
    const standby = await sql.one<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    if (standby?.r) return { state: 'not-writable', problem: 'the server is a read-only standby' };
    const { missing, absent } = await missingPrivileges(sql);
    if (missing.length) return { state: 'lacks-privileges', missing };
    const applied = await sql.all<{ version: number; name: string; checksum: string }>('SELECT version, name, checksum FROM schema_migrations ORDER BY version');
    const state = stateOf(readMigrations(dir), applied);
    // Every migration applied, yet an object the proxy uses is not there: its privileges could not be checked.
    if (state.state === 'ready' && absent.length) return { state: 'unusable', problem: `${absent.join(', ')} not found although every migration is applied` };
    return state;
  } catch (err) {
    return { state: 'unusable', problem: (explainPgConnectionFailure(err) as Error).message };
  } finally {
    await sql.close().catch(() => undefined);
  }
}
