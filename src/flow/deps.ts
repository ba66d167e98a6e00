/** What the browser-facing flow steps (3–6) need from the runtime. */
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import type { KeyRing } from '../crypto/keys.js';
import type { Db } from '../db/open.js';
import type { Audit } from '../audit/audit.js';
import type { CookieJar } from '../http/cookies.js';
import type { Views } from '../views/render.js';
import type { ConsentStore } from '../store/consents.js';
import type { BrowserSessionStore } from '../store/browser-sessions.js';
import type { OidcModelStore } from '../store/oidc-models.js';
import type { ClientsMetaStore } from '../store/clients-meta.js';
import type { UpstreamTransactionStore } from '../store/upstream-transactions.js';
import type { UpstreamTokenStore } from '../store/upstream-tokens.js';
import type { AdminSessionStore } from '../store/admin-sessions.js';
import type { AuditLogStore } from '../store/audit-log.js';
import type { UpstreamClient } from '../upstream/presets.js';
import type { Revocation } from '../consent/revocation.js';

export interface FlowDeps {
  config: Readonly<Config>;
  provider: Provider;
  keys: KeyRing;
  db: Db;
  cookies: CookieJar;
  audit: Audit;
  views: Views;
  log: Logger;
  stores: {
    consents: ConsentStore;
    browserSessions: BrowserSessionStore;
    models: OidcModelStore;
    clientsMeta: ClientsMetaStore;
    transactions: UpstreamTransactionStore;
    upstreamTokens: UpstreamTokenStore;
    adminSessions: AdminSessionStore;
    auditLog: AuditLogStore;
  };
  /** the upstream client (U) */
  upstream(): UpstreamClient;
  revocation: Revocation;
}
