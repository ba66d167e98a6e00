/**
 * The ordered mount table (style C2): reading `buildApp` top to bottom is reading the flow of
 * DESIGN §2. Never listens (src/runtime/server.ts does). Body parsers sit only on our own POST
 * routes, never in front of the provider's (deps.md gotcha 7). `AppDeps` is what the app needs,
 * declared here (the composition root provides it).
 */
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response, type Router } from 'express';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import proxyaddr from 'proxy-addr';
import type { Logger } from 'pino';
import type { KeyRing } from '../crypto/keys.js';
import type { Stores } from '../store/index.js';
import { refusalAddress, type RefusalBudget } from '../audit/refusal-budget.js';
import type { TallyEvent } from '../audit/refusal-tally.js';
import type { Revocation } from '../consent/revocation.js';
import type { Metrics } from '../http/metrics.js';
import type { CookieJar } from '../http/cookies.js';
import { requestContextMiddleware } from '../http/request-context.js';
import { noStore, securityHeaders } from '../http/security-headers.js';
import { limiter, type RateLimitStore } from '../http/rate-limit.js';
import { pinToPublicUrl, providerAlias, providerMount } from '../http/provider-mount.js';
import { metricsAuthorized } from '../http/metrics.js';
import { protectedResourceMetadataPaths, servePrm } from '../flow/1-discover.js';
import { registrationGate } from '../flow/2-register.js';
import { authorizationPreflight, resumePreflight } from '../flow/3-authorize.js';
import { cimdAuthorizePreflight, cimdTokenPreflight } from '../flow/3-cimd.js';
import type { CimdClients } from '../cimd/clients.js';
import { decideOnConsent, showConsent, type ConsentStepDeps } from '../flow/4-consent.js';
import { upstreamCallback, type CallbackDeps } from '../flow/6-upstream-callback.js';
import { tokenPreflight } from '../flow/7-token.js';
import { gateway, type GatewayDeps } from '../flow/8-gateway.js';
import { jsonRpcError, type Forwarder } from '../gateway/forward.js';
import { createDispatcher, type DispatchRoute } from '../gateway/dispatch.js';
import { BodyBudget } from '../gateway/read-body.js';
import { closeWithConnection } from '../http/queued-response.js';
import { PROVIDER_ROUTES } from '../provider/configuration.js';
import { baselineScopes, offeredScopes, stepUpScopes } from '../oauth/scopes.js';
import { errorHandler, notFound } from '../errors/render.js';
import { ERRORS } from '../errors/oauth-error.js';
import { adminRouter, type AdminDeps } from '../admin/router.js';
import { accountRouter, type AccountDeps } from '../account/pages.js';

/** The gateway's services (src/runtime/server.ts makes them). */
export type GatewayServices = Pick<GatewayDeps, 'checkToken' | 'upstreamTokens' | 'sessions' | 'generation' | 'openResponses'> & {
  /** forwarder per resource (MCP first, then GATEWAY_ROUTES) */
  forwarders: Map<string, Forwarder>;
  /** at shutdown: close the forwarders' connections, and save U's refreshed tokens still held */
  close(): Promise<void>;
};

/** What the pages need; the sign-in budget is the app's own (the /authorize budget). */
type PageDeps = Omit<ConsentStepDeps & CallbackDeps & AdminDeps & AccountDeps, 'signInBudget'>;

/** What the app needs. */
export interface AppDeps extends PageDeps {
  log: Logger;
  keys: KeyRing;
  stores: Stores;
  metrics: Metrics;
  cookies: CookieJar;
  refusals: RefusalBudget;
  revocation: Revocation;
  gateway: GatewayServices;
  /** whether the server is draining (SIGTERM): /healthz and /readyz answer 503 */
  draining: () => boolean;
  /** where budget `name` counts (PostgreSQL: shared by the replicas); undefined: in memory */
  rateLimitStore?: (name: string) => RateLimitStore | undefined;
  /** Client ID Metadata Document clients (src/cimd/clients.ts) */
  cimd: CimdClients;
  /** demo mode: the embedded IdP's routes and the demo MCP server's internal URL */
  demo: { idpRouter: Router; mcpUrl: string | undefined } | undefined;
}

const ASSETS_DIR = fileURLToPath(new URL('../../views/assets/', import.meta.url));
/** /readyz waits this long for the upstream's metadata before answering not ready. */
const READY_UPSTREAM_TIMEOUT_MS = 2000;

/** A bounded route label for metrics: the matched route pattern, never the raw path. */
function routeLabel(req: Request): string {
  const pattern = (req.route as { path?: string } | undefined)?.path;
  return pattern ? `${req.baseUrl}${pattern}` : req.res?.statusCode === 404 ? 'unmatched' : 'other';
}

type ProviderHandler = (req: Request, res: Response) => void;

/**
 * A per-IP budget (SEC-01): requests beyond it are answered 429 and tallied into one audit row per
 * address and minute (DESIGN §9, src/audit/refusal-tally.ts) — a flood adds no row per request.
 */
function budget(deps: AppDeps, name: string, rate: AppDeps['config']['rateLimits']['register'], event: TallyEvent) {
  const onLimited = (req: Request) => deps.refusals.tally.note(event, refusalAddress(req.ip), 'rate_limited', true, { method: req.method, path: req.path });
  return limiter(rate, onLimited, deps.rateLimitStore?.(name));
}

/** Step 1: discovery at the origin root (RFC 9728; RFC 8414 path insertion). */
function mountDiscovery(app: Express, deps: AppDeps, oidc: ReturnType<AppDeps['provider']['callback']>): void {
  const { config } = deps;
  const { urls } = config;
  for (const { path, resource } of protectedResourceMetadataPaths(config)) app.get(path, servePrm(config, resource));
  if (urls.basePath) {
    for (const doc of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
      app.get(`${doc}${urls.basePath}`, providerAlias(oidc, urls, doc));
    }
  }
}

/**
 * /healthz and /readyz (database and U's metadata). Under PUBLIC_URL's base path, and with a base
 * path at the root too: the container's HEALTHCHECK and a balancer's probe ask P's own port for
 * /healthz whatever the public path (review 2026-12-08: with a base path they got 404, the
 * container was unhealthy and Caddy took every replica out). While the server drains (SIGTERM,
 * src/runtime/server.ts) both answer 503, so a balancer still probing this replica sends new
 * requests elsewhere (DESIGN §8).
 */
function probes(deps: AppDeps): Router {
  const r = express.Router();
  r.get(['/healthz', '/readyz'], (_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    if (deps.draining()) res.status(503).json({ status: 'draining' });
    else next();
  });
  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  r.get('/readyz', async (_req, res) => {
    const database = await deps.stores.healthy();
    // The upstream's metadata must load (discovery); a failure is retried on the next probe.
    const upstream = await Promise.race([
      deps
        .upstream()
        .ready()
        .then(
          () => true,
          () => false,
        ),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), READY_UPSTREAM_TIMEOUT_MS).unref()),
    ]).catch(() => false);
    const ready = database && upstream;
    res.status(ready ? 200 : 503).json({ ready, checks: { database, upstream } });
  });
  return r;
}

/** The probes, /metrics (METRICS_TOKEN), /assets. */
function mountOperations(r: Router, deps: AppDeps): void {
  const { config } = deps;
  r.use(probes(deps));
  r.get('/metrics', async (req, res, next) => {
    if (!metricsAuthorized(req.headers.authorization, config.metricsToken)) {
      return next(ERRORS.invalidToken('metrics need the METRICS_TOKEN bearer token'));
    }
    res.setHeader('Cache-Control', 'no-store');
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  // Static assets: GET/HEAD only (serve-static answers other methods with a bare 405); its
  // errors (undecodable or `..` paths, missing files) go to the error handler as 4xx (DESIGN §9).
  r.use(
    '/assets',
    (req, _res, next) => (req.method === 'GET' || req.method === 'HEAD' ? next() : next(ERRORS.methodNotAllowed('GET, HEAD'))),
    express.static(ASSETS_DIR, { maxAge: '1h', index: false, fallthrough: false }),
  );
}

/** Step 2: Dynamic Client Registration (admission policy, then the provider). */
function mountRegistration(r: Router, deps: AppDeps, toProvider: ProviderHandler, registerBudget: RequestHandler): void {
  const { config, audit } = deps;
  const registrationCors = (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    next();
  };
  r.options(PROVIDER_ROUTES.registration, registrationCors, (_req, res) => {
    res.setHeader('Access-Control-Allow-Methods', 'POST');
    res.setHeader('Access-Control-Allow-Headers', 'content-type');
    res.setHeader('Access-Control-Max-Age', '600');
    res.status(204).end();
  });
  r.post(
    PROVIDER_ROUTES.registration,
    registrationCors,
    registerBudget,
    noStore,
    ...registrationGate({ redirectSchemes: config.redirectSchemes, supportedScopes: offeredScopes(config), stepUpScopes: stepUpScopes(config) }, audit),
    toProvider,
  );
}

/** Steps 3–6: the authorization request, consent, upstream redirect and callback. */
function mountAuthorization(r: Router, deps: AppDeps, toProvider: ProviderHandler, authorizeBudget: RequestHandler, registerBudget: RequestHandler): void {
  const { config, audit } = deps;
  r.all(PROVIDER_ROUTES.authorization, authorizeBudget, authorizationPreflight(baselineScopes(config).join(' '), audit), cimdAuthorizePreflight(deps.cimd, registerBudget), toProvider);
  r.get(`${PROVIDER_ROUTES.authorization}/:uid`, authorizeBudget, resumePreflight(), toProvider); // resume after the interaction
  r.get('/interaction/:uid', authorizeBudget, showConsent(deps));
  r.post('/interaction/:uid/decision', authorizeBudget, ...decideOnConsent(deps));
  r.get('/upstream/callback', authorizeBudget, upstreamCallback(deps));
  r.all('/upstream/callback', (_req, _res, next) => next(ERRORS.methodNotAllowed('GET'))); // STATE-08
}

/** Step 7: token and revocation. */
function mountToken(r: Router, deps: AppDeps, toProvider: ProviderHandler): void {
  const { config, audit } = deps;
  const tokenBudget = budget(deps, 'token', config.rateLimits.token, 'token.rejected_aggregate');
  r.post(PROVIDER_ROUTES.token, tokenBudget, ...tokenPreflight(config.resources, audit, deps.stores.models), ...cimdTokenPreflight(deps.cimd), toProvider);
  r.options(PROVIDER_ROUTES.token, toProvider);
  r.post(PROVIDER_ROUTES.revocation, tokenBudget, ...cimdTokenPreflight(deps.cimd), toProvider);
}

export function buildApp(deps: AppDeps): Express {
  const { config, log, provider, views } = deps;
  const { urls } = config;
  const oidc = provider.callback();
  const toProvider: ProviderHandler = (req, res) => {
    pinToPublicUrl(req, urls);
    void oidc(req, res); // koa answers its own errors
  };

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('etag', false);
  // Every request: a request id and its context, metrics, security headers.
  app.use(requestContextMiddleware(log, (req, res) => deps.metrics.observeRequest(routeLabel(req), req.method, res.statusCode)));
  app.use(securityHeaders(urls.origin.startsWith('https:')));
  mountDiscovery(app, deps, oidc);
  if (urls.basePath) app.use(probes(deps));

  // Everything else lives under PUBLIC_URL's base path.
  const r = express.Router();
  app.use(urls.basePath || '/', r);
  mountOperations(r, deps);
  if (deps.demo) r.use('/demo-idp', deps.demo.idpRouter); // demo mode: the embedded upstream IdP
  // DESIGN §10: /register exists only when DCR_ENABLED (otherwise it is our 404).
  // One budget for new clients, whichever way they come: /register, or a CIMD client_id first seen at /authorize.
  const registerBudget = budget(deps, 'register', config.rateLimits.register, 'registration.rejected_aggregate');
  if (config.dcrEnabled) mountRegistration(r, deps, toProvider, registerBudget);
  const authorizeBudget = budget(deps, 'authorize', config.rateLimits.authorize, 'authorization.rejected_aggregate');
  mountAuthorization(r, deps, toProvider, authorizeBudget, registerBudget);
  // Admin console and connected apps (their own guards: src/admin/guard.ts, src/account/pages.ts).
  // Their sign-in buttons start an upstream login like Approve does: the same budget, counted only
  // for a POST that carries the page's token (a forged one is a refusal: src/session/sign-in.ts).
  r.use('/admin', adminRouter({ ...deps, signInBudget: authorizeBudget }));
  r.use('/account', accountRouter({ ...deps, signInBudget: authorizeBudget }));
  mountToken(r, deps, toProvider);
  // Step 8, the gateway (/mcp, API routes), is served in front of this app: see gatewayFront.
  // The provider's remaining endpoints: metadata, JWKS.
  r.use(providerMount(oidc, urls, ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server', PROVIDER_ROUTES.jwks]));

  app.use(notFound);
  app.use(errorHandler(views, log));
  return app;
}

/**
 * The server's request listener: step 8, the gateway — the hot path — answers `/mcp` and the
 * GATEWAY_ROUTES prefixes on Node's raw request and response (src/flow/8-gateway.ts); every other
 * request goes to the express app above.
 */
export function gatewayFront(deps: AppDeps, app: Express): (req: IncomingMessage, res: ServerResponse) => void {
  const { config, audit, log } = deps;
  const trust = app.get('trust proxy fn') as (addr: string, i: number) => boolean;
  const gatewayDeps: GatewayDeps = {
    config,
    audit,
    log,
    stores: deps.stores,
    refusals: deps.refusals,
    bodies: new BodyBudget(config.gateway.bodyMemoryBytes, config.gateway.maxBodyBytes),
    ...deps.gateway,
    clientIp: (req: IncomingMessage) => proxyaddr(req, trust),
    onForwarded: (resource: string, status: number, seconds: number) => deps.metrics.observeGateway(resource, status, seconds),
  };
  const routes: DispatchRoute[] = [];
  const mcpForwarder = deps.gateway.forwarders.get(config.urls.mcpResource);
  const mcp = mcpForwarder
    ? gateway(gatewayDeps, { resource: config.urls.mcpResource, forwarder: mcpForwarder, methods: ['GET', 'POST', 'DELETE', 'OPTIONS'], mcp: true })
    : (_req: IncomingMessage, res: ServerResponse) => jsonRpcError(res, 503, 'No MCP server is configured (MCP_UPSTREAM_URL)');
  routes.push({ path: config.urls.path('/mcp'), exact: true, handle: mcp });
  for (const route of config.gateway.routes) {
    const forwarder = deps.gateway.forwarders.get(route.resource) as Forwarder;
    routes.push({
      path: config.urls.path(route.prefix),
      exact: false,
      handle: gateway(gatewayDeps, { resource: route.resource, forwarder, methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], mcp: false }),
    });
  }
  const dispatch = createDispatcher(routes, app);
  return (req, res) => {
    closeWithConnection(req, res); // a pipelined response still queued when its connection closes (src/http/queued-response.ts)
    dispatch(req, res);
  };
}
