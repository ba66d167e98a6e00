/**
 * Every store over one database, created once (the composition roots — src/runtime/core.ts for
 * the server, src/cli/context.ts for the CLI — call this and nothing else), and the two ways to
 * make several writes one transaction. Only src/store/ holds SQL.
 */
import type { Db } from '../db/open.js';
import type { KeyRing } from '../crypto/keys.js';
import type { AuditKey } from './audit-chain.js';
import { createAuditLogStore } from './audit-log.js';
import { createOidcModelStore } from './oidc-models.js';
import { createClientsMetaStore } from './clients-meta.js';
import { createConsentStore } from './consents.js';
import { createBrowserSessionStore } from './browser-sessions.js';
import { createUpstreamTransactionStore } from './upstream-transactions.js';
import { createUpstreamTokenStore } from './upstream-tokens.js';
import { createAdminSessionStore } from './admin-sessions.js';
import { createMcpSessionStore } from './mcp-sessions.js';
import { createSealedSecretStore } from './sealed-secrets.js';
import { createGenerationStore } from './gateway-generation.js';

export function createStores(db: Db, keys: KeyRing, options: { auditKey?: AuditKey } = {}) {
  const ping = db.prepare('SELECT 1 AS ok').pluck();
  return {
    auditLog: createAuditLogStore(db, options.auditKey ? { key: options.auditKey } : undefined),
    models: createOidcModelStore(db, keys),
    clientsMeta: createClientsMetaStore(db),
    consents: createConsentStore(db),
    browserSessions: createBrowserSessionStore(db),
    transactions: createUpstreamTransactionStore(db, keys),
    upstreamTokens: createUpstreamTokenStore(db, keys),
    adminSessions: createAdminSessionStore(db),
    mcpSessions: createMcpSessionStore(db),
    sealed: createSealedSecretStore(db, keys),
    generation: createGenerationStore(db),
    /** Whether the database answers (/readyz). */
    healthy(): boolean {
      try {
        return ping.get() === 1;
      } catch {
        return false;
      }
    },
    /** Run synchronous writes as one transaction (BEGIN IMMEDIATE … COMMIT, ROLLBACK on a throw). */
    transaction<T>(work: () => T): T {
      return db.transaction(work).immediate();
    },
    /**
     * One transaction around work that awaits. Only for work whose awaits resolve without I/O
     * (oidc-provider's models write through the synchronous SQLite adapter): no other request's
     * statement can run on the connection before COMMIT, so nothing interleaves.
     */
    async transactionAsync<T>(work: () => Promise<T>): Promise<T> {
      db.exec('BEGIN IMMEDIATE');
      try {
        const result = await work();
        db.exec('COMMIT');
        return result;
      } catch (err) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw err;
      }
    },
  };
}

export type Stores = ReturnType<typeof createStores>;
