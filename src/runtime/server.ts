/**
 * The server's composition root: configuration → logger → storage (secret, database,
 * migrations, stores) → demo mode when on → the core (audit, U, revocation, operator actions) →
 * provider → gateway services → app. `createRuntime` never listens; `listen` does, and returns a
 * graceful `close()` (finish in-flight requests); `dispose()` stops timers, flushes the audit
 * queue and closes the database (SQLite's connection, or PostgreSQL's pool).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Express } from 'express';
import type { Config } from '../config/load.js';
import type { Sql } from '../db/sql.js';
import { createLogger } from '../log/logger.js';
import { createCookieJar } from '../http/cookies.js';
import { createCsrf } from '../http/csrf.js';
import { createMetrics, type Metrics } from '../http/metrics.js';
import { OpenResponses } from '../gateway/open-responses.js';
import { createTokenCheck } from '../gateway/token-check.js';
import { createUpstreamTokenSource } from '../gateway/upstream-token.js';
import { createSessionBinding } from '../gateway/sessions.js';
import { coalescedReads } from '../gateway/generation.js';
import { createForwarder, type Forwarder } from '../gateway/forward.js';
import { scheduleCheckpointLog } from '../audit/checkpoint-log.js';
import { createRefusalTally } from '../audit/refusal-tally.js';
import { createRefusalBudget } from '../audit/refusal-budget.js';
import { createProvider } from '../provider/configuration.js';
import { bridgeProviderEvents } from '../provider/events.js';
import { createViews, type Views } from '../views/render.js';
import type Provider from 'oidc-provider';
import { providerErrorRenderer } from '../errors/render.js';
import { createCimdClients, type CimdClientsDeps } from '../cimd/clients.js';
import { buildApp, gatewayFront, type AppDeps, type GatewayServices } from './app.js';
import { endExpiredConsents, scheduleMaintenance, type MaintenanceDeps } from './maintenance.js';
import { createCore, openStorage, SIGNING_KEYS_SECRET, type Core } from './core.js';
import { purgeEndedRateLimits, SqlRateLimitStore } from '../store/rate-limits.js';
import { loadOrCreateJwks } from './jwks.js';
import { trustPolicyOf } from '../cimd/client-id.js';
import { answerClientError, requestDeadlines } from '../http/server-limits.js';
import { expressServerClasses, type ServerClasses } from '../http/express-classes.js';

export interface RuntimeOptions {
  /** a ready logger (tests capture lines); default: pino on stdout at LOG_LEVEL */
  log?: Logger;
  /** run housekeeping on a timer (off in tests that drive it themselves) */
  maintenance?: boolean;
  /** the clock of time-bucketed records (the refusal tally's minutes) and of the MCP session cache; tests pass a fake one */
  now?: () => number;
  /** TEST SEAM for the CIMD fetcher (a resolver, a test route, trust anchors); production: none */
  cimdFetch?: CimdClientsDeps['fetch'];
}

export interface Runtime extends AppDeps {
  /** the database behind every store (tests and the benchmark read it directly, in portable SQL) */
  sql: Sql;
  metrics: Metrics;
  app: Express;
  /** the HTTP request listener: the gateway in front of the express app */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** the request and response classes the server must be created with (`createServer(serverClasses, handler)`; src/http/express-classes.ts) */
  serverClasses: ServerClasses;
  /**
   * Start draining (SIGTERM; `listen`'s close() calls it): /healthz and /readyz answer 503, and
   * every response from now on carries `Connection: close`, so keep-alive connections end after
   * their current response and the balancer opens new ones to another replica.
   */
  drain(): void;
  /** stop timers, flush the audit queue, close the database; resolves when done */
  dispose(): Promise<void>;
}

/** Gateway services: the token check, U's tokens, MCP session bindings and a forwarder per resource. */
function createGatewayServices(core: Core, mcpUrl: URL | undefined, provider: Provider, now: (() => number) | undefined): GatewayServices {
  const { config, stores, audit } = core;
  const forwarders = new Map<string, Forwarder>();
  if (mcpUrl) forwarders.set(config.urls.mcpResource, createForwarder(mcpUrl, { timeoutMs: config.gateway.timeoutMs }));
  for (const route of config.gateway.routes) forwarders.set(route.resource, createForwarder(route.target, { timeoutMs: config.gateway.timeoutMs }));
  // DESIGN §8: every request uses a generation read issued after it arrived (src/gateway/generation.ts).
  const generation = coalescedReads(() => stores.generation.current());
  const upstreamTokens = createUpstreamTokenSource({
    store: stores.upstreamTokens,
    upstream: core.upstream,
    revocation: core.revocation,
    audit,
    generation,
    exclusive: (name, waitMs, fn) => core.sql.exclusive(name, waitMs, fn),
    log: core.log,
  });
  const checkToken = createTokenCheck(stores.models, stores.consents, generation, { enabled: config.cimd.enabled, trust: trustPolicyOf(config) });
  const tokenRevoked = (fn: () => void) => provider.on('access_token.destroyed', () => stores.afterCommit(fn)); // at /revoke, in its transaction
  const openResponses = new OpenResponses({ generation, checkToken, log: core.log, revocation: core.revocation, tokenRevoked }); // GW-01
  return {
    checkToken,
    upstreamTokens,
    sessions: createSessionBinding(stores.mcpSessions, { now }),
    forwarders,
    generation,
    openResponses,
    close: async () => {
      openResponses.close();
      for (const forwarder of forwarders.values()) void forwarder.close();
      await upstreamTokens.close(); // refreshed upstream tokens not saved yet (src/gateway/upstream-token.ts)
    },
  };
}

/** The longest window of the budgets kept in rate_limits: a row older than it has ended in any budget. */
function longestWindowMs(config: Readonly<Config>): number {
  const { register, token, authorize } = config.rateLimits;
  return Math.max(register.windowMs, token.windowMs, authorize.windowMs);
}

/** Housekeeping on a timer (src/runtime/maintenance.ts); returns the function that stops it. */
function startMaintenance(core: Core, gateway: GatewayServices): () => Promise<void> {
  const stop = scheduleMaintenance(maintenanceDeps(core, gateway));
  return () => {
    core.revocation.atUpstream.stop(); // a run under way asks U for no further pending revocation (they stay pending)
    return stop();
  };
}

/** What housekeeping works on, one replica at a time (tests run it through this too). */
/** Housekeeping leaves a disabling this long to finish its own cascade before it revokes what is left. */
export const FINISH_DISABLED_AFTER_MS = 60_000;

export function maintenanceDeps(core: Pick<Core, 'stores' | 'config' | 'audit' | 'log' | 'revocation' | 'sql'>, gateway: Pick<GatewayServices, 'sessions'>): MaintenanceDeps {
  const { stores, config, audit, log, revocation } = core;
  return {
    models: stores.models,
    clientsMeta: stores.clientsMeta,
    audit,
    log,
    clientIdleSeconds: config.ttl.clientIdle,
    extraPurges: [
      () => stores.transactions.purgeExpired(),
      () => stores.browserSessions.purgeExpired(),
      () => stores.adminSessions.purgeExpired(config.ttl.adminIdle),
      () => gateway.sessions.purgeIdle(),
      ...(core.sql.engine === 'postgres' ? [() => purgeEndedRateLimits(core.sql, Date.now() - longestWindowMs(config))] : []),
    ],
    // A disabling's own cascade gets FINISH_DISABLED_AFTER_MS to end first; each consent is revoked
    // only while still due (its client disabled, the consent older than that: not one granted
    // after an admin re-enabled the client meanwhile).
    finishDisabled: async () => {
      let revoked = 0;
      for (const clientId of await stores.consents.disabledClientsWithUnrevoked(Date.now() - FINISH_DISABLED_AFTER_MS)) {
        revoked += await revocation.revokeClient(clientId, 'client_disabled', (grantId) => stores.consents.dueToDisabling(grantId));
      }
      return revoked;
    },
    endExpired: () => endExpiredConsents(stores.consents, revocation, Date.now, () => revocation.atUpstream.stopped),
    sendUpstreamRevocations: () => revocation.atUpstream.sendDue(),
    onClientExpired: (clientId) => revocation.revokeClient(clientId, 'client_deleted'),
    unrevokedConsents: async (clientId) => (await stores.consents.unrevokedForClient(clientId)).length,
    transaction: (work) => stores.transaction(work),
    exclusive: (name, fn) => core.sql.tryExclusive(name, fn),
  };
}

/** The authorization-server engine, its signing keys and its events bridged to the audit log. */
async function startProvider(core: Core, views: Views): Promise<Provider> {
  const { config, keys, stores, audit, log, revocation } = core;
  const provider = createProvider({
    config,
    keys,
    models: stores.models,
    jwks: await loadOrCreateJwks(core.sql, stores.sealed, SIGNING_KEYS_SECRET),
    transaction: stores.transaction,
    renderError: providerErrorRenderer(views),
    ...(core.sql.engine === 'postgres' ? { beforeRevokeByGrantId: (grantId: string) => revocation.lockForCascade(grantId) } : {}), // SQLite: one writer, no row locks
  });
  bridgeProviderEvents(provider, { audit, clientsMeta: stores.clientsMeta, log, onGrantRevoked: (grantId) => revocation.revokeGrant(grantId, 'grant_revoked') });
  return provider;
}

/** The demo IdP and MCP server, loaded only in demo mode: the MCP SDK they use is ~25 MB of memory (issue 14). */
async function startDemo(...args: Parameters<typeof import('./demo.js').startDemo>): ReturnType<typeof import('./demo.js').startDemo> {
  return (await import('./demo.js')).startDemo(...args);
}

export async function createRuntime(config: Readonly<Config>, options: RuntimeOptions = {}): Promise<Runtime> {
  const log = options.log ?? createLogger(config.logLevel);
  for (const warning of config.warnings) log.warn(warning);
  const storage = await openStorage(config, { log, serving: true });
  const { stores, keys, sql } = storage;
  const views = createViews({ base: config.urls.basePath, demo: config.demo });
  const demo = config.demo ? await startDemo(config, storage, views) : undefined;
  const metrics = createMetrics({ pendingUpstreamRevocations: () => stores.upstreamRevocations.count() });
  const core = createCore(config, storage, { log, upstream: demo?.upstream, observeAudit: (row) => metrics.observeAudit(row) });
  const stopCheckpointLog = scheduleCheckpointLog(() => stores.auditLog.tip(), log); // the head in the logs too: a checkpoint a database writer cannot reach
  const refusals = createRefusalBudget({ budget: config.rateLimits.rejected, tally: createRefusalTally(core.audit, { now: options.now }), log });
  const cookies = createCookieJar(keys, config.urls.secureContext);
  const provider = await startProvider(core, views);
  const gateway = createGatewayServices(core, demo ? demo.mcpUrl : config.mcpUpstreamUrl, provider, options.now);
  let draining = false;
  const deps: AppDeps = {
    ...core,
    draining: () => draining,
    refusals,
    metrics,
    cookies,
    csrf: createCsrf(keys, cookies),
    provider,
    views,
    gateway,
    // DESIGN §8: on PostgreSQL one budget per client IP for all replicas (src/store/rate-limits.ts).
    rateLimitStore: sql.engine === 'postgres' ? (name) => new SqlRateLimitStore(sql, name) : undefined,
    cimd: createCimdClients({ config, stores, audit: core.audit, ...(options.cimdFetch ? { fetch: options.cimdFetch } : {}) }),
    demo: demo ? { idpRouter: demo.idpRouter, mcpUrl: demo.mcpUrl?.href } : undefined,
  };
  const app = buildApp(deps);
  const front = gatewayFront(deps, app);
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (draining) res.setHeader('Connection', 'close');
    front(req, res);
  };
  const stopMaintenance = options.maintenance === false ? async () => {} : startMaintenance(core, gateway);
  let disposed: Promise<void> | undefined;
  return {
    ...deps,
    sql,
    app,
    handler,
    serverClasses: expressServerClasses(app),
    drain: () => {
      draining = true;
    },
    dispose: () =>
      (disposed ??= (async () => {
        await stopMaintenance();
        await gateway.close();
        demo?.close();
        refusals.close();
        await core.revocation.settled(); // UP-08 revocations the last requests started; the process exits after this (src/cli/bin.ts)
        await flushAuditAtExit(core.audit, log);
        await stopCheckpointLog();
        await sql.close();
      })()),
  };
}

/** The last commit of the audit queue; what the database refused then is lost, and said so. */
async function flushAuditAtExit(audit: Runtime['audit'], log: Logger): Promise<void> {
  await audit.flush();
  if (audit.queued > 0) log.error({ rows: audit.queued }, 'audit records could not be committed before exit (the database refused): they are lost');
}

export interface RunningServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** The runtime's HTTP server, not yet listening: its request and response classes, REQUEST_TIMEOUT's deadlines, malformed requests answered. */
export function createRuntimeServer(runtime: Runtime): Server {
  const server = createServer({ ...requestDeadlines(runtime.config.requestTimeoutMs), ...runtime.serverClasses }, runtime.handler);
  server.on('clientError', answerClientError);
  return server;
}

/** Listen on HOST:PORT; resolves once listening. */
export function listen(runtime: Runtime, port = runtime.config.port, host = runtime.config.host): Promise<RunningServer> {
  const server = createRuntimeServer(runtime);
  server.keepAliveTimeout = 65_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      resolve({
        server,
        url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
        // Drain: stop accepting (new connections are refused: the balancer picks another
        // replica), let in-flight requests finish, and close each keep-alive connection after
        // its current response (Connection: close) or as soon as it falls idle (Node closes only
        // the ones idle at the moment of close()).
        close: () =>
          new Promise<void>((done) => {
            runtime.drain();
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
