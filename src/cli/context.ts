/**
 * What the CLI's data commands open: the configured database (never created here), the stores,
 * the audit log and the revocation cascade — with the upstream client when one is configured,
 * so revoking from the CLI also revokes at the upstream, as everywhere else.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { loadConfig, type Config } from '../config/load.js';
import { openDatabase, type Db } from '../db/open.js';
import { migrate } from '../db/migrate.js';
import { KeyRing } from '../crypto/keys.js';
import { Audit } from '../audit/audit.js';
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

export function openCliContext(env: Record<string, string | undefined>, warn: (text: string) => void): CliContext {
  const config = loadConfig(env, { requireUpstream: false });
  const db = openDatabase(config.databasePath, { mustExist: true, synchronous: config.databaseSynchronous });
  migrate(db);
  let secret = config.secretKey;
  const file = join(config.dataDir, 'secret.key');
  if (!secret && existsSync(file)) secret = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (!secret) warn('SECRET_KEY is not set and no secret.key is in the data directory: stored upstream tokens cannot be opened, so they are deleted without being revoked at the upstream');
  const keys = new KeyRing(secret ?? randomBytes(32), config.secretKeyPrevious);
  const log = pino({ level: 'warn' }, pino.destination(2));
  const audit = new Audit(createAuditLogStore(db), log);
  const stores = {
    models: createOidcModelStore(db, keys),
    clientsMeta: createClientsMetaStore(db),
    consents: createConsentStore(db),
    upstreamTokens: createUpstreamTokenStore(db, keys),
  };
  const upstream = config.upstream && secret ? createUpstreamClient(config.upstream, config.urls.upstreamCallback, { dangerouslyAllowInsecureHttp: config.dangerouslyAllowInsecureHttp }) : undefined;
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
