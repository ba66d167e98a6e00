/**
 * Doctor: the database is there, writable and migrated. `probeDatabase` is the one function that
 * knows the storage engine: SQLite (src/db/status.ts) or PostgreSQL with DATABASE_URL
 * (src/db/status-pg.ts). The URL is never printed (it may carry a password).
 */
import type { Config } from '../../config/load.js';
import { describeMissing, sqliteStatus, type DatabaseStatus } from '../../db/status.js';
import { fail, pass, type CheckResult, type DoctorOptions } from './check.js';

const TITLE = 'database writable and migrated';

export async function probeDatabase(config: Readonly<Config>, options: DoctorOptions): Promise<DatabaseStatus> {
  // The pg driver loaded only for PostgreSQL (src/runtime/core.ts says why).
  if (config.databaseUrl) return (await import('../../db/status-pg.js')).postgresStatus(config.databaseUrl, options.timeoutMs);
  return sqliteStatus(config.databasePath, options.timeoutMs);
}

export async function checkDatabase(config: Readonly<Config>, options: DoctorOptions): Promise<CheckResult> {
  const path = config.databaseUrl ? 'the PostgreSQL database (DATABASE_URL)' : config.databasePath;
  const status = await probeDatabase(config, options);
  const migrateFix = config.databaseUrl
    ? 'As the database owner (DATABASE_URL with the owner role), run mcp-consent-proxy migrate, then apply docs/compose/grants.sql for the role the proxy runs as (README "Running several replicas"); serve migrates at start only as a role that may.'
    : 'Run mcp-consent-proxy migrate with this configuration (the server also migrates at start).';
  switch (status.state) {
    case 'ready':
      return pass('database', TITLE, `${path}: writable, all ${status.applied} migrations applied`);
    case 'missing':
      return fail(
        'database',
        TITLE,
        config.databaseUrl ? `${path} has no schema yet` : `no database at ${path}`,
        `${migrateFix} If it should exist, check ${config.databaseUrl ? 'the database named in DATABASE_URL' : 'DATABASE_PATH and the volume mounted there'}.`,
      );
    case 'pending':
      return fail('database', TITLE, `${path}: ${status.applied} of ${status.known} migrations applied (next: ${status.next})`, migrateFix);
    case 'newer':
      return fail(
        'database',
        TITLE,
        `${path} was migrated by a newer version (${status.newest}; this one knows up to ${status.known})`,
        'Run the newer version of mcp-consent-proxy, or restore a backup made for this one.',
      );
    case 'changed':
      return fail(
        'database',
        TITLE,
        `${path}: migration ${status.name} differs from the file it was applied from`,
        'Reinstall this version (its migrations/ were changed); put schema changes in a new migration.',
      );
    case 'not-writable':
      if (config.databaseUrl) return fail('database', TITLE, `${path} is not writable (${status.problem})`, 'Point DATABASE_URL at the primary server, not a read-only standby or replica.');
      return fail(
        'database',
        TITLE,
        `${path}: cannot take the write lock (${status.problem})`,
        'Let the user running the proxy write the database file and its directory (WAL files, secret.key and the audit checkpoint live there), and stop any other process holding its write lock.',
      );
    case 'lacks-privileges': {
      const lacking = describeMissing(status.missing);
      return fail(
        'database',
        TITLE,
        `${path}: the role in DATABASE_URL lacks ${lacking}`,
        `As the database owner (the role that ran mcp-consent-proxy migrate), grant this role ${lacking}: apply docs/compose/grants.sql, this role in place of mcp_app (README "Running several replicas"; again after every migrate, as an upgrade may add tables).`,
      );
    }
    case 'unusable':
      return fail(
        'database',
        TITLE,
        `${path} cannot be opened: ${status.problem}`,
        config.databaseUrl
          ? 'Check DATABASE_URL (host, port, database, user, password) and that PostgreSQL is running and reachable from here.'
          : "Check that DATABASE_PATH names this proxy's SQLite file (restore it from a backup if it is damaged).",
      );
  }
}
