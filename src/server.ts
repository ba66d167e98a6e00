/**
 * The runtime: configuration → logger → secret → database → migrations → stores → audit →
 * provider → app. `createRuntime` never listens; `startServer` does, and returns a graceful
 * `close()` (finish in-flight requests, flush the audit queue, close the database).
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Express, Router } from 'express';
import type { Config } from './config/load.js';
import { KeyRing } from './crypto/keys.js';
import { resolveSecretKey } from './crypto/secret-file.js';
import { openDatabase, type Db } from './db/open.js';
import { migrate } from './db/migrate.js';
import { createLogger } from './log/logger.js';
import { createAuditLogStore, type AuditLogStore } from './store/audit-log.js';
import { createOidcModelStore, type OidcModelStore } from './store/oidc-models.js';
import { createClientsMetaStore, type ClientsMetaStore } from './store/clients-meta.js';
import { createSealedSecretStore } from './store/sealed-secrets.js';
import { createConsentStore, type ConsentStore } from './store/consents.js';
import { createBrowserSessionStore, type BrowserSessionStore } from './store/browser-sessions.js';
import { createUpstreamTransactionStore, type UpstreamTransactionStore } from './store/upstream-transactions.js';
import { createUpstreamTokenStore, type UpstreamTokenStore } from './store/upstream-tokens.js';
import { createAdminSessionStore, type AdminSessionStore } from './store/admin-sessions.js';
import { createMcpSessionStore, type McpSessionStore } from './store/mcp-sessions.js';
import { createCookieJar, type CookieJar } from './http/cookies.js';
import { createUpstreamClient, UpstreamError, type UpstreamClient } from './upstream/presets.js';
import { createRevocation, type Revocation } from './flow/revocation.js';
import { createTokenCheck, type TokenCheck } from './gateway/token-check.js';
import { createUpstreamTokenSource, type UpstreamTokenSource } from './gateway/upstream-token.js';
import { createSessionBinding, type SessionBinding } from './gateway/sessions.js';
import { createForwarder, type Forwarder } from './gateway/forward.js';
import { createGeneration } from './gateway/cache.js';
import { Audit } from './audit/audit.js';
import { checkpointPath, createCheckpointWriter, scheduleCheckpointLog } from './audit/checkpoint.js';
import { generateJwks } from './provider/keys.js';
import { createProvider } from './provider/configuration.js';
import { bridgeProviderEvents } from './provider/events.js';
import { createViews, type Views } from './views/render.js';
import { providerErrorRenderer } from './errors/render.js';
import { buildApp, gatewayFront } from './app.js';
import { scheduleMaintenance } from './maintenance.js';
import { createDemoIdp, DEMO_SCOPES, type DemoIdp } from './demo/idp.js';
import { createDemoMcpApp } from './demo/mcp-server.js';
import { createMetrics, type Metrics } from './http/metrics.js';
import { createAdminOps, type AdminOps } from './admin/ops.js';
import { createRefusalTally } from './audit/refusal-tally.js';
import { createRefusalBudget, type RefusalBudget } from './http/refusal-budget.js';

export interface RuntimeOptions {
  /** a ready logger (tests capture lines); default: pino on stdout at LOG_LEVEL */
  log?: Logger;
  /** run housekeeping on a timer (off in tests that drive it themselves) */
  maintenance?: boolean;
  /** the clock of time-bucketed records (the refusal tally's minutes); tests pass a fake one */
  now?: () => number;
}

export interface Runtime {
  config: Readonly<Config>;
  log: Logger;
  db: Db;
  keys: KeyRing;
  stores: {
    auditLog: AuditLogStore;
    models: OidcModelStore;
    clientsMeta: ClientsMetaStore;
    consents: ConsentStore;
    browserSessions: BrowserSessionStore;
    transactions: UpstreamTransactionStore;
    upstreamTokens: UpstreamTokenStore;
    adminSessions: AdminSessionStore;
    mcpSessions: McpSessionStore;
  };
  audit: Audit;
  /** the budget for unauthenticated refusals (RATE_LIMIT_REJECTED) and their audit tally */
  refusals: RefusalBudget;
  metrics: Metrics;
  cookies: CookieJar;
  /** the upstream client (U); throws when none is configured */
  upstream(): UpstreamClient;
  revocation: Revocation;
  ops: AdminOps;
  gateway: {
    checkToken: TokenCheck;
    upstreamTokens: UpstreamTokenSource;
    sessions: SessionBinding;
    /** forwarder per resource (MCP first, then GATEWAY_ROUTES) */
    forwarders: Map<string, Forwarder>;
    generation: () => number;
    /** open server-sent streams, ended at shutdown */
    streams: Set<ServerResponse>;
  };
  provider: Provider;
  views: Views;
  /** demo mode: the embedded IdP's routes and the demo MCP server's internal URL */
  demo: { idpRouter: Router; mcpUrl: string | undefined } | undefined;
  app: Express;
  /** the HTTP request listener: the gateway in front of the express app */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** stop timers, flush the audit queue, close the database */
  dispose(): void;
}

export async function createRuntime(config: Readonly<Config>, options: RuntimeOptions = {}): Promise<Runtime> {
  const log = options.log ?? createLogger(config.logLevel);
  for (const warning of config.warnings) log.warn(warning);

  const secret = resolveSecretKey(config.secretKey, config.dataDir);
  if (secret.generatedFile) {
    log.warn(
      { file: secret.generatedFile },
      secret.created
        ? 'SECRET_KEY is not set: generated a new one into the data directory. Set SECRET_KEY (and back it up) for production.'
        : 'SECRET_KEY is not set: using the one generated earlier in the data directory. Set SECRET_KEY for production.',
    );
  }
  const keys = new KeyRing(secret.key, config.secretKeyPrevious);

  const db = openDatabase(config.databasePath, { synchronous: config.databaseSynchronous });
  try {
    const { applied } = migrate(db);
    if (applied.length) log.info({ applied }, 'database migrated');
  } catch (err) {
    db.close();
    throw err;
  }

  // The audit chain's MAC key (DESIGN §9): in memory only, never in the database.
  const auditKey = keys.auditKey;
  const auditCheckpoint = checkpointPath(config);
  const stores = {
    auditLog: createAuditLogStore(db, { key: auditKey }),
    models: createOidcModelStore(db, keys),
    clientsMeta: createClientsMetaStore(db),
    consents: createConsentStore(db),
    browserSessions: createBrowserSessionStore(db),
    transactions: createUpstreamTransactionStore(db, keys),
    upstreamTokens: createUpstreamTokenStore(db, keys),
    adminSessions: createAdminSessionStore(db),
    mcpSessions: createMcpSessionStore(db),
  };
  const metrics = createMetrics();
  const audit = new Audit(stores.auditLog, log, {
    observe: (row) => metrics.observeAudit(row),
    // The file moves only forward along the chain it recorded (a cut log never overwrites it).
    checkpoint: auditCheckpoint ? createCheckpointWriter(auditCheckpoint, auditKey, log, { keys: keys.auditKeys(), holds: (seq, mac) => stores.auditLog.hashAt(seq) === mac }) : undefined,
  });
  // The head in the logs too, for log shipping: a checkpoint a database writer cannot reach.
  const stopCheckpointLog = scheduleCheckpointLog(() => stores.auditLog.tip(), log);
  const refusals = createRefusalBudget({ budget: config.rateLimits.rejected, tally: createRefusalTally(audit, { now: options.now }), log });
  const sealed = createSealedSecretStore(db, keys);
  let jwksJson = sealed.get('jwks');
  if (!jwksJson) {
    jwksJson = JSON.stringify(await generateJwks());
    sealed.put('jwks', jwksJson);
  }

  const views = createViews({ base: config.urls.basePath, demo: config.demo });

  // Demo mode (decided in src/config/load.ts only: no upstream and no production signal, or
  // DEMO=true — DESIGN §4): the embedded demo IdP is the upstream, and — unless MCP_UPSTREAM_URL
  // names a real one (possible with DEMO=true only) — the demo MCP server, on an internal
  // loopback port, is R.
  let demoIdp: DemoIdp | undefined;
  let demoMcp: Server | undefined;
  let mcpUpstreamUrl = config.mcpUpstreamUrl;
  if (config.demo) {
    let demoJwks = sealed.get('demo-idp-jwks');
    if (!demoJwks) {
      demoJwks = JSON.stringify(await generateJwks());
      sealed.put('demo-idp-jwks', demoJwks);
    }
    demoIdp = createDemoIdp({ config, keys, models: stores.models, views, jwks: JSON.parse(demoJwks) });
    if (!mcpUpstreamUrl) {
      demoMcp = createServer(createDemoMcpApp({ path: '/mcp' }));
      const port = await new Promise<number>((resolve) => demoMcp?.listen(0, '127.0.0.1', () => resolve((demoMcp?.address() as AddressInfo).port)));
      mcpUpstreamUrl = new URL(`http://127.0.0.1:${port}/mcp`);
    }
  }
  const upstreamConfig = config.upstream ?? (demoIdp ? { preset: 'oidc' as const, issuer: new URL(demoIdp.issuer), clientId: demoIdp.clientId, clientSecret: demoIdp.clientSecret, scopes: DEMO_SCOPES, name: 'Demo IdP' } : undefined);
  const upstreamClient = upstreamConfig
    ? createUpstreamClient(upstreamConfig, config.urls.upstreamCallback, { dangerouslyAllowInsecureHttp: config.dangerouslyAllowInsecureHttp })
    : undefined;
  const upstream = () => {
    if (!upstreamClient) throw new UpstreamError('unreachable', 'no upstream is configured');
    return upstreamClient;
  };
  const revocation = createRevocation({ db, consents: stores.consents, models: stores.models, upstreamTokens: stores.upstreamTokens, audit, log, upstream: () => upstreamClient });
  const cookies = createCookieJar(keys, config.urls.secureContext);
  const provider = createProvider({
    config,
    keys,
    models: stores.models,
    isClientDisabled: (clientId) => stores.clientsMeta.isDisabled(clientId),
    jwks: JSON.parse(jwksJson),
    renderError: providerErrorRenderer(views),
  });
  bridgeProviderEvents(provider, {
    audit,
    clientsMeta: stores.clientsMeta,
    log,
    onGrantRevoked: (grantId) => revocation.revokeGrant(grantId, 'grant_revoked'),
  });

  const forwarders = new Map<string, Forwarder>();
  const forwardOptions = { timeoutMs: config.gateway.timeoutMs, maxBodyBytes: config.gateway.maxBodyBytes };
  if (mcpUpstreamUrl) forwarders.set(config.urls.mcpResource, createForwarder(mcpUpstreamUrl, forwardOptions));
  for (const route of config.gateway.routes) forwarders.set(route.resource, createForwarder(route.target, forwardOptions));
  const generation = createGeneration(db);
  const gateway = {
    checkToken: createTokenCheck(stores.models, stores.consents, generation),
    upstreamTokens: createUpstreamTokenSource({ store: stores.upstreamTokens, upstream, revocation, audit, generation }),
    sessions: createSessionBinding(stores.mcpSessions),
    forwarders,
    generation,
    streams: new Set<ServerResponse>(),
  };

  const ops = createAdminOps({ stores, revocation, audit });
  const partial = { config, log, db, keys, stores, audit, refusals, metrics, provider, views, cookies, upstream, revocation, ops, gateway, demo: demoIdp ? { idpRouter: demoIdp.router, mcpUrl: mcpUpstreamUrl?.href } : undefined };
  const app = buildApp(partial);
  const handler = gatewayFront(partial, app);

  const stopMaintenance =
    options.maintenance === false
      ? () => {}
      : scheduleMaintenance({
          models: stores.models,
          clientsMeta: stores.clientsMeta,
          audit,
          log,
          clientIdleSeconds: config.ttl.clientIdle,
          extraPurges: [() => stores.transactions.purgeExpired(), () => stores.browserSessions.purgeExpired(), () => stores.adminSessions.purgeExpired(config.ttl.adminIdle), () => gateway.sessions.purgeIdle()],
          onClientExpired: (clientId) => revocation.revokeClient(clientId, 'client_deleted'),
        });

  return {
    ...partial,
    app,
    handler,
    dispose() {
      stopMaintenance();
      for (const forwarder of forwarders.values()) void forwarder.close();
      demoMcp?.closeAllConnections();
      demoMcp?.close();
      refusals.close();
      audit.flush();
      stopCheckpointLog(db.open);
      if (db.open) db.close();
    },
  };
}

export interface RunningServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

const CLIENT_ERROR_TEXT: Record<number, string> = {
  400: 'The request is malformed.',
  408: 'The request took too long to arrive.',
  413: 'The request is too large.',
  431: 'The request headers are too large.',
};

/**
 * Node's HTTP parser refuses a request before any handler sees it (a malformed request line,
 * header or chunk, headers or URL over 16 KiB): answer with a JSON 4xx like every other refusal
 * (DESIGN §9), instead of Node's bare 400 without a content type. Attached to every server that
 * serves `runtime.handler`.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  // A response already under way on this connection (keep-alive) cannot be replaced.
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW' ? 413 : 400;
  const body = JSON.stringify({ error: 'invalid_request', error_description: CLIENT_ERROR_TEXT[status] });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Listen on HOST:PORT; resolves once listening. */
export function listen(runtime: Runtime, port = runtime.config.port, host = runtime.config.host): Promise<RunningServer> {
  const server = createServer(runtime.handler);
  server.on('clientError', answerClientError);
  server.keepAliveTimeout = 65_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      resolve({
        server,
        url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
        // Stop accepting, let in-flight requests finish, and close each keep-alive connection
        // as soon as it falls idle (Node closes only the ones idle at the moment of close()).
        close: () =>
          new Promise<void>((done) => {
            const sweep = setInterval(() => server.closeIdleConnections(), 50);
            server.close(() => {
              clearInterval(sweep);
              done();
            });
            server.closeIdleConnections();
          }),
      });
    });
  });
}
