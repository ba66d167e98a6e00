/**
 * The composition root's shared floor — what the server and the CLI both wire, wired once:
 * - `openStorage`: the secret (SECRET_KEY, or the one generated into the data directory) → the
 *   key ring → the database (SQLite, or PostgreSQL with DATABASE_URL), migrated → every store
 *   (src/store/index.ts);
 * - `createCore`: storage → the audit service with its checkpoint file (DESIGN §9) → the upstream
 *   client (when one is configured) → the revocation cascade → the operator actions.
 * The server adds the provider, the pages and the gateway (src/runtime/server.ts); the CLI uses
 * the core as it is (src/cli/context.ts).
 */
import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Config, UpstreamConfig } from '../config/load.js';
import { KeyRing } from '../crypto/keys.js';
import { resolveSecretKey } from '../crypto/secret-file.js';
import { migrate } from '../db/migrate.js';
import { explainPgConnectionFailure } from '../db/pg-errors.js';
import { after, type Sql } from '../db/sql.js';
import { openSqliteSql, SqliteSql } from '../db/sqlite-sql.js';
import { createStores, type Stores } from '../store/index.js';
import type { NewAuditRow } from '../store/audit-log.js';
import { Audit } from '../audit/audit.js';
import { checkpointPath, createCheckpointWriter } from '../audit/checkpoint.js';
import { createUpstreamClient, UpstreamError, type UpstreamClient } from '../upstream/presets.js';
import { CLAIM_MS } from '../consent/upstream-revocations.js';
import { createRevocation, type Revocation } from '../consent/revocation.js';
import { createAdminOps, type AdminOps } from '../consent/operations.js';
import { failureLevel } from '../errors/database-unavailable.js';

export interface Storage {
  keys: KeyRing;
  /** the database behind every store (src/db/sql.ts) */
  sql: Sql;
  stores: Stores;
}

export interface StorageOptions {
  log: Logger;
  /** the CLI: never create the database or a secret (they come from the server) */
  mustExist?: boolean;
  /** the server: on SQLite, WAL checkpoints in a worker thread (src/db/checkpointer.ts, issue 14); not the CLI */
  serving?: boolean;
}

export class MissingSecretError extends Error {}

/** The CLI was given another SECRET_KEY than the one the server's data was made with. */
export class SecretKeyMismatchError extends MissingSecretError {}

/** The secret, the database (migrated) and every store. */
export async function openStorage(config: Readonly<Config>, options: StorageOptions): Promise<Storage> {
  const { log } = options;
  const secret = resolveSecretKey(config.secretKey, config.dataDir, { create: !options.mustExist });
  if (!secret) {
    throw new MissingSecretError(
      `SECRET_KEY is not set and no secret.key is in ${config.dataDir}: run this command with the server's SECRET_KEY — it writes audit rows, which are MAC'd with a key derived from it`,
    );
  }
  if (secret.generatedFile && !options.mustExist) {
    log.warn(
      { file: secret.generatedFile },
      secret.created
        ? 'SECRET_KEY is not set: generated a new one into the data directory. Set SECRET_KEY (and back it up) for production.'
        : 'SECRET_KEY is not set: using the one generated earlier in the data directory. Set SECRET_KEY for production.',
    );
  }
  const keys = new KeyRing(secret.key, config.secretKeyPrevious);
  // The data directory holds the audit checkpoint file on either engine (DESIGN §9); SQLite's
  // opening creates it for the database file, PostgreSQL's does not.
  if (config.databaseUrl) mkdirSync(config.dataDir, { recursive: true });
  const sql = await openMigrated(config, options);
  if (options.serving && sql instanceof SqliteSql) {
    sql.checkpointInBackground((message) => log.warn({ message }, 'background WAL checkpoint failed; SQLite checkpoints inside commits until it works again'));
  }
  // The audit chain's MAC key (DESIGN §9): in memory only, never in the database.
  const storage = { keys, sql, stores: createStores(sql, keys, { auditKey: keys.auditKey }) };
  if (options.mustExist) {
    try {
      await checkSameSecret(storage);
    } catch (err) {
      await sql.close();
      throw err;
    }
  }
  return storage;
}

/** The sealed secret `serve` must open at every start: the provider's signing keys (src/runtime/jwks.ts). */
export const SIGNING_KEYS_SECRET = 'jwks';

/**
 * The CLI's data commands write audit rows, each MAC'd under a key derived from SECRET_KEY (DESIGN
 * §9): run with another SECRET_KEY than the server's, they would append rows no `audit verify`
 * with the server's key accepts — and audit rows cannot be removed. So before anything is written:
 * - the key must open the signing keys the server sealed (as `serve` must, at every start; other
 *   sealed values, such as the demo IdP's keys, are re-sealed only when used, so an old one may
 *   rightly stay under a retired key);
 * - the audit log's last keyed row must have been made with this process's current key — not
 *   merely with a key it knows: SECRET_KEY_PREVIOUS set to the server's key would otherwise let a
 *   foreign current key through (found by review). The server writes a row under its current key
 *   at every start, so after a rotation the CLI needs the new key once the server has started with it.
 */
async function checkSameSecret({ keys, stores }: Storage): Promise<void> {
  const refuse = (why: string) =>
    new SecretKeyMismatchError(
      `this SECRET_KEY is not the one the server's data was made with (${why}). This command writes audit rows MAC'd with a key derived from SECRET_KEY: run it with the key the server runs with (during a rotation, once the server has started with the new one)`,
    );
  if (!(await stores.sealed.opens(SIGNING_KEYS_SECRET))) throw refuse("the server's sealed signing keys do not open with it");
  const tip = await stores.auditLog.tip();
  if (tip?.key_id && tip.key_id !== keys.auditKey.kid) throw refuse(`the audit log's last row was made with audit key ${tip.key_id}, this process's key is ${keys.auditKey.kid}`);
}

/** The configured database, migrated: which engine, and what migrating did. */
export interface OpenedDatabase {
  sql: Sql;
  /** migrations applied just now, and the schema version */
  applied: string[];
  current: number;
  /** where it is, for messages: the SQLite file, or "PostgreSQL (DATABASE_URL)" — never the URL, which may hold a password */
  where: string;
}

/**
 * The engine chosen by configuration (DESIGN §4, §8): PostgreSQL when DATABASE_URL is set (a pool
 * of DATABASE_POOL_MAX connections; migrated under an advisory lock, so replicas starting at once
 * migrate once), else SQLite at DATABASE_PATH. Closed again when migrating fails.
 */
export async function openConfiguredDatabase(config: Readonly<Config>, options: { log: Logger; mustExist?: boolean; serving?: boolean }): Promise<OpenedDatabase> {
  if (config.databaseUrl) {
    // Loaded only here: the pg driver is ~15 MB of a SQLite process's memory otherwise (issue 14).
    const [{ PgSql }, { migratePg }, { LOCK_TIMEOUT_MS }] = await Promise.all([import('../db/pg-sql.js'), import('../db/migrate-pg.js'), import('../db/pg-lock-timeout.js')]);
    const sql = new PgSql({
      url: config.databaseUrl,
      poolMax: config.databasePoolMax,
      onError: (err) => options.log[failureLevel(err)]({ err }, 'an idle PostgreSQL connection failed'),
      // The server's lock waits are bounded (src/db/pg-lock-timeout.ts); an operator's CLI command may wait.
      lockTimeoutMs: options.serving ? LOCK_TIMEOUT_MS : undefined,
      // Above the lock bound, so a held lock ends as PostgreSQL's own 55P03 first.
      hotReadTimeoutMs: options.serving ? LOCK_TIMEOUT_MS + 1_000 : undefined,
    });
    try {
      const migrated = await migratePg(sql, undefined, { mustExist: options.mustExist ?? false });
      if (options.serving) await (await import('../db/status-pg.js')).assertPrivileges(sql);
      return { sql, ...migrated, where: 'PostgreSQL (DATABASE_URL)' };
    } catch (err) {
      await sql.close();
      throw explainPgConnectionFailure(err);
    }
  }
  const sql = openSqliteSql(config.databasePath, { mustExist: options.mustExist ?? false, synchronous: config.databaseSynchronous });
  try {
    return { sql, ...migrate(sql.db), where: config.databasePath };
  } catch (err) {
    await sql.close();
    throw err;
  }
}

async function openMigrated(config: Readonly<Config>, options: StorageOptions): Promise<Sql> {
  const { sql, applied } = await openConfiguredDatabase(config, options);
  if (applied.length) options.log.info({ applied }, 'database migrated');
  return sql;
}

export interface CoreOptions {
  log: Logger;
  /** sees every audit record as it is made (metrics) */
  observeAudit?: (row: NewAuditRow) => void;
  /** the upstream to use when the configuration names none (demo mode's embedded IdP) */
  upstream?: UpstreamConfig;
  /** false: no checkpoint writer (`audit checkpoint-reset` writes the file itself) */
  checkpoint?: boolean;
}

export interface Core extends Storage {
  config: Readonly<Config>;
  log: Logger;
  audit: Audit;
  /** the upstream client (U); throws when none is configured */
  upstream(): UpstreamClient;
  revocation: Revocation;
  ops: AdminOps;
}

/** On open storage: the audit service, U, the revocation cascade and the operator actions. */
export function createCore(config: Readonly<Config>, storage: Storage, options: CoreOptions): Core {
  const { log } = options;
  const { keys, stores } = storage;
  const checkpoint = options.checkpoint === false ? undefined : checkpointPath(config);
  const audit = new Audit(stores.auditLog, log, {
    observe: options.observeAudit,
    // The file moves only forward along the chain it recorded (a cut log never overwrites it).
    checkpoint: checkpoint
      ? createCheckpointWriter(checkpoint, keys.auditKey, log, {
          keys: keys.auditKeys(),
          holds: (seq, mac) => after(stores.auditLog.hashAt(seq), (hash) => hash === mac),
          // SQLite keeps the file beside the database: a missing one is not started anew (src/audit/checkpoint.ts). A replica's file on PostgreSQL is its own, new with the replica.
          keyedRows: storage.sql.engine === 'sqlite' ? () => stores.auditLog.hasKeyedRows() : undefined,
        })
      : undefined,
  });
  const upstreamConfig = config.upstream ?? options.upstream;
  const upstreamClient = upstreamConfig
    ? createUpstreamClient(upstreamConfig, config.urls.upstreamCallback, { dangerouslyAllowInsecureHttp: config.dangerouslyAllowInsecureHttp, timeoutMs: config.upstreamTimeoutMs })
    : undefined;
  const upstream = () => {
    if (!upstreamClient) throw new UpstreamError('unreachable', 'no upstream is configured');
    return upstreamClient;
  };
  const revocation = createRevocation({
    transaction: stores.transaction,
    afterCommit: stores.afterCommit,
    consents: stores.consents,
    models: stores.models,
    upstreamRevocations: stores.upstreamRevocations,
    audit,
    log,
    upstream: () => upstreamClient,
    // A claim outlasts the request to U it covers (src/consent/upstream-revocations.ts).
    claimMs: Math.max(CLAIM_MS, 2 * config.upstreamTimeoutMs),
  });
  return { ...storage, config, log, audit, upstream, revocation, ops: createAdminOps({ stores, revocation, audit }) };
}
