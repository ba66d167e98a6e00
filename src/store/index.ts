/**
 * Every store over one Sql driver (src/db/sql.ts: SQLite or PostgreSQL, the same SQL), created
 * once (the composition root, src/runtime/core.ts, calls this and nothing else), and the one way
 * to make several writes one transaction. Only src/store/ holds SQL.
 */
import type { Sql } from '../db/sql.js';
import type { KeyRing } from '../crypto/keys.js';
import type { AuditKey } from './audit-chain.js';
import { createAuditLogStore } from './audit-log.js';
import { createOidcModelStore } from './oidc-models.js';
import { createClientsMetaStore } from './clients-meta.js';
import { createConsentStore } from './consents.js';
import { createBrowserSessionStore } from './browser-sessions.js';
import { createUpstreamTransactionStore } from './upstream-transactions.js';
import { createUpstreamTokenStore } from './upstream-tokens.js';
import { createUpstreamRevocationStore } from './upstream-revocations.js';
import { createAdminSessionStore } from './admin-sessions.js';
import { createMcpSessionStore } from './mcp-sessions.js';
import { createSealedSecretStore } from './sealed-secrets.js';
import { createGenerationStore } from './gateway-generation.js';

export function createStores(sql: Sql, keys: KeyRing, options: { auditKey?: AuditKey } = {}) {
  return {
    auditLog: createAuditLogStore(sql, options.auditKey ? { key: options.auditKey } : undefined),
    models: createOidcModelStore(sql, keys),
    clientsMeta: createClientsMetaStore(sql),
    consents: createConsentStore(sql),
    browserSessions: createBrowserSessionStore(sql),
    transactions: createUpstreamTransactionStore(sql, keys),
    upstreamTokens: createUpstreamTokenStore(sql, keys),
    upstreamRevocations: createUpstreamRevocationStore(sql, keys),
    adminSessions: createAdminSessionStore(sql),
    mcpSessions: createMcpSessionStore(sql),
    sealed: createSealedSecretStore(sql, keys),
    generation: createGenerationStore(sql),
    /** Whether the database answers (/readyz). */
    async healthy(): Promise<boolean> {
      try {
        return (await sql.one<{ ok: number }>('SELECT 1 AS ok'))?.ok === 1;
      } catch {
        return false;
      }
    },
    /**
     * Run `work` as one transaction: every statement it issues through any store, across its
     * awaits, joins it (the driver's AsyncLocalStorage) — oidc-provider's adapter writes included.
     * Commits when it resolves, rolls back when it throws; a nested call joins the outer one.
     * Inside it, await only work started inside it (src/db/sql.ts).
     */
    transaction<T>(work: () => Promise<T>): Promise<T> {
      return sql.transaction(work);
    },
    /** `fn` once the caller's transaction has committed (never on rollback), or at once outside one; `ifUnknown` when its COMMIT's answer was lost (src/db/sql.ts). */
    afterCommit(fn: () => void, ifUnknown?: () => void): void {
      sql.afterCommit(fn, ifUnknown);
    },
  };
}

export type Stores = ReturnType<typeof createStores>;
