/**
 * What the CLI's data commands open: the configured database (never created here), the stores,
 * the audit log and the revocation cascade — with the upstream client when one is configured,
 * so revoking from the CLI also revokes at the upstream, as everywhere else.
 * The CLI appends to the same keyed audit chain as the server and rewrites the same checkpoint
 * file (DESIGN §9), so it needs the server's SECRET_KEY (or the generated secret.key): without
 * it every row it wrote would fail verification, so it refuses to start.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig, type Config } from '../config/load.js';
import { openDatabase, type Db } from '../db/open.js';
import { migrate } from '../db/migrate.js';
import { KeyRing } from '../crypto/keys.js';
import { Audit } from '../audit/audit.js';
import { checkpointPath, createCheckpointWriter } from '../audit/checkpoint.js';
import { createAuditLogStore } from '../store/audit-log.js';
import { createOidcModelStore } from '../store/oidc-models.js';
import { createClientsMetaStore } from '../store/clients-meta.js';
import { createConsentStore } from '../store/consents.js';
import { createUpstreamTokenStore } from '../store/upstream-tokens.js';
import { createRevocation } from '../flow/revocation.js';
import { createUpstreamClient } from '../upstream/presets.js';
import { createAdminOps, type AdminOps } from '../admin/ops.js';

export interface CliContext {
  config: Readonly<Config>;
  db: Db;
  ops: AdminOps;
  stores: { clientsMeta: ReturnType<typeof createClientsMetaStore>; consents: ReturnType<typeof createConsentStore> };
  /** flush the audit log, wait for upstream revocations, close the database */
  close(): Promise<void>;
}

/** SECRET_KEY, or the one the server generated into the data directory; never generated here. */
export function cliSecret(config: Readonly<Config>): Buffer | undefined {
  const file = join(config.dataDir, 'secret.key');
  if (config.secretKey) return config.secretKey;
  return existsSync(file) ? Buffer.from(readFileSync(file, 'utf8').trim(), 'base64') : undefined;
}

export class MissingSecretError extends Error {}

export function openCliContext(env: Record<string, string | undefined>): CliContext {
  const config = loadConfig(env, { requireUpstream: false });
  const secret = cliSecret(config);
  if (!secret) {
    throw new MissingSecretError(
      `SECRET_KEY is not set and no secret.key is in ${config.dataDir}: run this command with the server's SECRET_KEY — it writes audit rows, which are MAC'd with a key derived from it`,
    );
  }
  const db = openDatabase(config.databasePath, { mustExist: true, synchronous: config.databaseSynchronous });
  migrate(db);
  const keys = new KeyRing(secret, config.secretKeyPrevious);
  const log = pino({ level: 'warn' }, pino.destination(2));
  const checkpoint = checkpointPath(config);
  const auditLog = createAuditLogStore(db, { key: keys.auditKey });
  // As in the server: the file moves only forward along the chain it recorded.
  const audit = new Audit(auditLog, log, { checkpoint: checkpoint ? createCheckpointWriter(checkpoint, keys.auditKey, log, { keys: keys.auditKeys(), holds: (seq, mac) => auditLog.hashAt(seq) === mac }) : undefined });
  const stores = {
    models: createOidcModelStore(db, keys),
    clientsMeta: createClientsMetaStore(db),
    consents: createConsentStore(db),
    upstreamTokens: createUpstreamTokenStore(db, keys),
  };
  const upstream = config.upstream ? createUpstreamClient(config.upstream, config.urls.upstreamCallback, { dangerouslyAllowInsecureHttp: config.dangerouslyAllowInsecureHttp }) : undefined;
  const revocation = createRevocation({ db, consents: stores.consents, models: stores.models, upstreamTokens: stores.upstreamTokens, audit, log, upstream: () => upstream });
  return {
    config,
    db,
    ops: createAdminOps({ stores, revocation, audit }),
    stores,
    async close() {
      await revocation.settled();
      audit.flush();
      db.close();
    },
  };
}
