/**
 * What the CLI's data commands open: the configured database (never created here) and the
 * server's secret (never generated here), through the same composition root as the server
 * (src/runtime/core.ts) — stores, the audit log with its checkpoint, the revocation cascade with
 * the upstream client when one is configured, so revoking from the CLI also revokes at the
 * upstream, as everywhere else. It logs (warnings and errors, to stderr) through the server's
 * logger (src/log/logger.ts `createLogger`): the same redaction and error serializer, as it runs
 * the same requests to U.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { createLogger } from '../log/logger.js';
import { loadConfig, type Config } from '../config/load.js';
import type { Sql } from '../db/sql.js';
import type { Stores } from '../store/index.js';
import type { AdminOps } from '../consent/operations.js';
import type { Audit } from '../audit/audit.js';
import type { AuditKey } from '../store/audit-chain.js';
import { createCore, openStorage } from '../runtime/core.js';

export { MissingSecretError } from '../runtime/core.js';

export interface CliContext {
  config: Readonly<Config>;
  sql: Sql;
  ops: AdminOps;
  stores: Pick<Stores, 'clientsMeta' | 'consents' | 'auditLog'>;
  audit: Audit;
  /** the audit keys, current first (SECRET_KEY, SECRET_KEY_PREVIOUS) */
  auditKeys: AuditKey[];
  log: Logger;
  /** flush the audit log, wait for upstream revocations, close the database */
  close(): Promise<void>;
}

/** The CLI's logger: warnings and errors, to stderr unless told otherwise. */
export function cliLogger(destination: DestinationStream = pino.destination(2)): Logger {
  return createLogger('warn', destination);
}

export async function openCliContext(env: Record<string, string | undefined>, options: { checkpoint?: boolean; logDestination?: DestinationStream } = {}): Promise<CliContext> {
  const config = loadConfig(env, { requireUpstream: false });
  const log = cliLogger(options.logDestination);
  const storage = await openStorage(config, { log, mustExist: true });
  const core = createCore(config, storage, { log, checkpoint: options.checkpoint });
  return {
    config,
    sql: core.sql,
    ops: core.ops,
    stores: core.stores,
    audit: core.audit,
    auditKeys: storage.keys.auditKeys(),
    log,
    async close() {
      await core.revocation.settled();
      await core.audit.flush();
      await core.sql.close();
    },
  };
}
