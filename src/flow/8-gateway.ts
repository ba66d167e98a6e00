/**
 * Step 8 — the gateway (DESIGN §2 step 8): `/mcp` in front of MCP_UPSTREAM_URL (Streamable
 * HTTP: POST, GET for the server-sent stream, DELETE to end a session) and each GATEWAY_ROUTES
 * prefix in front of its API. In order:
 *   1. GW-10, AT-21: a browser `Origin` not in ALLOWED_ORIGINS ⇒ 403 (DNS rebinding);
 *   2. the token check (src/gateway/token-check.ts): 401 with `WWW-Authenticate` pointing at the
 *      resource's RFC 9728 metadata, or 403 `insufficient_scope` naming the scope;
 *   3. GW-09: an MCP session id that is unknown, or was issued to another user or client ⇒ 404,
 *      without contacting R (src/gateway/sessions.ts);
 *   4. U's token for the grant, refreshed when due (src/gateway/upstream-token.ts);
 *   5. the request is streamed to R with U's token (src/gateway/forward.ts), the response
 *      streamed back with U's access and refresh tokens redacted (GW-13, src/gateway/redact.ts).
 * A refusal of a request without a valid token (steps 1–2: no, malformed or invalid token; a
 * foreign Origin without a valid token) is counted against the client address's
 * RATE_LIMIT_REJECTED budget — 429 beyond it — and tallied into one gateway.rejected_aggregate row
 * per address, reason and minute (DESIGN §9; src/audit/refusal-budget.ts). Every other refusal is
 * audited as gateway.rejected with its reason, every forwarded request as gateway.forwarded
 * (both group-committed, src/audit/audit.ts); a response in which R echoed U's token as
 * gateway.leak_blocked (committed at once: rare, and an admin wants it durable), with where it
 * was found and never the value. Requests with a valid token never touch the budget.
 *
 * This is the hot path, so it runs on Node's raw request and response, in front of express
 * (src/runtime/app.ts): no router, no per-request middleware stack, no async context; the few headers a
 * JSON or SSE answer needs are set here.
 */
import { newRequestId } from '../http/request-id.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import type { Audit } from '../audit/audit.js';
import type { ConsentStore } from '../store/consents.js';
import type { ClientsMetaStore } from '../store/clients-meta.js';
import { bearerChallenge } from './1-discover.js';
import type { TokenCheck } from '../gateway/token-check.js';
import type { UpstreamTokenResult, UpstreamTokenSource } from '../gateway/upstream-token.js';
import type { SessionBinding } from '../gateway/sessions.js';
import type { RefusalBudget } from '../audit/refusal-budget.js';
import { createTouchThrottle } from '../gateway/throttle.js';
import { jsonRpcError, type ForwardOutcome, type Forwarder } from '../gateway/forward.js';

/** consents.last_used_at is written at most once a minute per grant. */
const TOUCH_INTERVAL_MS = 60_000;
const CORS_ALLOW_HEADERS = 'authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id';

export interface GatewayDeps {
  config: Readonly<Config>;
  audit: Audit;
  stores: { consents: ConsentStore; clientsMeta: ClientsMetaStore };
  checkToken: TokenCheck;
  upstreamTokens: UpstreamTokenSource;
  sessions: SessionBinding;
  /** the database generation (src/gateway/cache.ts), read once per request */
  generation: () => number;
  /** open server-sent streams (GET), ended at shutdown so it does not wait on them */
  streams: Set<ServerResponse>;
  /** the budget and audit tally for refusals of requests without a valid token */
  refusals: RefusalBudget;
  /** the client address, as TRUST_PROXY says */
  clientIp: (req: IncomingMessage) => string | undefined;
  log: Logger;
  /** observe each forwarded request (metrics) */
  onForwarded?: (resource: string, status: number, seconds: number) => void;
}

export interface GatewayRoute {
  resource: string;
  forwarder: Forwarder;
  methods: readonly string[];
  mcp: boolean;
}

export type GatewayHandler = (req: IncomingMessage, res: ServerResponse, suffix: string) => void;

/** Whose request it is, once the token check has passed (audit rows, refresh, session binding). */
type Who = { subject: string; clientId: string };

/** A request in flight: what every later step needs to know about it. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  suffix: string;
  requestId: string;
  ip: string | undefined;
  started: bigint;
}

export function gateway(deps: GatewayDeps, route: GatewayRoute): GatewayHandler {
  const { config, audit } = deps;
  const requiredScope = config.mcpScopes[0] as string;
  const touched = createTouchThrottle(TOUCH_INTERVAL_MS); // bounded (src/gateway/throttle.ts)
  const allowMethods = route.methods.join(', ');
  const messages = {
    body_too_large: `Request body exceeds ${config.gateway.maxBodyBytes} bytes`,
    upstream_unreachable: 'The MCP server is not reachable',
    upstream_timeout: 'The MCP server did not answer in time',
    upstream_encoding: 'The MCP server answered in an encoding the gateway cannot check',
  } as const;

  const reject = (x: Exchange, reason: string, who: { subject?: string; clientId?: string } = {}) =>
    audit.defer({ event: 'gateway.rejected', reason, ...who, requestId: x.requestId, ip: x.ip, details: { method: x.req.method, resource: route.resource, origin: x.req.headers.origin } });

  /**
   * A refusal of a request without a valid token (DESIGN §9): counted against the address's
   * RATE_LIMIT_REJECTED budget and tallied into one audit row per address, reason and minute
   * (src/audit/refusal-budget.ts); beyond the budget the answer is 429 instead of `answer`.
   */
  const refuseAnonymous = (x: Exchange, reason: string, answer: () => void) => {
    deps.refusals
      .refuse('gateway.rejected_aggregate', x.ip, reason, { method: x.req.method, resource: route.resource, origin: x.req.headers.origin })
      .then((verdict) => {
        if (!verdict.limited) return answer();
        x.res.setHeader('Retry-After', String(verdict.retryAfterSeconds));
        jsonRpcError(x.res, 429, 'Too many refused requests from this address; try again later');
      })
      .catch((err: unknown) => fail(x, err));
  };

  const fail = (x: Exchange, err: unknown) => {
    deps.log.error({ err, requestId: x.requestId, resource: route.resource }, 'gateway error');
    jsonRpcError(x.res, 500, `An unexpected error occurred (request ${x.requestId}).`);
  };

  /**
   * Steps 1–4, synchronous: no promise is made on the way to R unless U's token must be
   * refreshed first (this is the hot path; every await costs a turn of the microtask queue).
   */
  function handle(x: Exchange): void {
    const { req, res } = x;
    const origin = req.headers.origin;
    const foreignOrigin = origin !== undefined && !config.gateway.allowedOrigins.includes(origin);
    if (origin !== undefined && !foreignOrigin) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
      res.setHeader('Access-Control-Expose-Headers', 'mcp-session-id, www-authenticate');
    }
    if (!foreignOrigin && req.method === 'OPTIONS') {
      res.writeHead(204, { 'Access-Control-Allow-Methods': allowMethods, 'Access-Control-Allow-Headers': CORS_ALLOW_HEADERS, 'Access-Control-Max-Age': '600' });
      res.end();
      return;
    }
    if (!foreignOrigin && !route.methods.includes(req.method as string)) {
      res.setHeader('Allow', allowMethods);
      return jsonRpcError(res, 405, 'Method not allowed');
    }

    const generation = deps.generation();
    const decision = deps.checkToken({
      generation,
      authorization: req.headers.authorization,
      queryToken: /[?&]access_token=/.test(x.suffix),
      resource: route.resource,
      requiredScope,
    });
    // A token that is valid but lacks the scope still names its user: not an anonymous request.
    const authenticated = decision.ok || decision.reason === 'insufficient_scope';
    if (foreignOrigin) {
      // GW-10, AT-21: a browser Origin not in ALLOWED_ORIGINS is refused whatever the token
      // (DNS rebinding); without a valid token it is an unauthenticated refusal (DESIGN §9).
      const forbidden = () => jsonRpcError(res, 403, 'Forbidden: origin not allowed');
      if (!authenticated) return refuseAnonymous(x, 'origin_not_allowed', forbidden);
      reject(x, 'origin_not_allowed', decision.ok ? { subject: decision.subject, clientId: decision.clientId } : {});
      return forbidden();
    }
    if (!decision.ok) {
      const challenge = () => {
        res.setHeader('WWW-Authenticate', bearerChallenge(config, decision.error, decision.description, decision.status === 403 ? requiredScope : undefined, route.resource));
        jsonRpcError(res, decision.status, decision.status === 403 ? 'Forbidden: insufficient scope' : 'Unauthorized', decision.status === 403 ? -32003 : -32001);
      };
      if (!authenticated) return refuseAnonymous(x, decision.reason, challenge);
      reject(x, decision.reason);
      return challenge();
    }

    const who: Who = { subject: decision.subject, clientId: decision.clientId };
    const sessionId = req.headers['mcp-session-id'];
    if (route.mcp && typeof sessionId === 'string') {
      // GW-09, AT-15: only the user and client the session was issued to; an unknown id fails
      // closed (src/gateway/sessions.ts). R is not contacted either way.
      const verdict = deps.sessions.check(sessionId, who);
      if (verdict !== 'ok') {
        reject(x, verdict === 'unknown' ? 'unknown_session' : 'foreign_session', who);
        return jsonRpcError(res, 404, 'Session not found', -32001);
      }
    }

    const upstream = deps.upstreamTokens.get(decision.grantId, who, false, generation);
    if (upstream instanceof Promise) {
      upstream.then((u) => withUpstreamToken(x, decision.grantId, who, u)).catch((err: unknown) => fail(x, err));
    } else {
      withUpstreamToken(x, decision.grantId, who, upstream);
    }
  }

  /** Step 5: forward with U's token; audit and observe the outcome. */
  function withUpstreamToken(x: Exchange, grantId: string, who: Who, upstream: UpstreamTokenResult): void {
    const { req, res } = x;
    if (!upstream.ok) {
      reject(x, `upstream_token_${upstream.failure}`, who);
      if (upstream.failure === 'revoked') {
        res.setHeader('WWW-Authenticate', bearerChallenge(config, 'invalid_token', 'the upstream authorization ended; authorize again', undefined, route.resource));
        return jsonRpcError(res, 401, 'Unauthorized', -32001);
      }
      return jsonRpcError(res, upstream.failure === 'unreachable' ? 504 : 502, 'The upstream identity provider is not available');
    }

    const now = Date.now();
    if (touched.due(grantId, now)) {
      deps.stores.consents.touch(grantId, now);
      deps.stores.clientsMeta.touch(who.clientId, now);
    }

    if (req.method === 'GET') {
      deps.streams.add(res);
      res.on('close', () => deps.streams.delete(res));
    }
    route.forwarder.forward(
      req,
      res,
      upstream,
      x.suffix,
      (outcome) => {
        try {
          forwarded(x, grantId, who, outcome);
        } catch (err) {
          fail(x, err);
        }
      },
      (found) => leakBlocked(x, who, found),
    );
  }

  /** GW-13: R's response carried U's token; it was redacted before the client got it. */
  function leakBlocked(x: Exchange, who: Who, found: string[]): void {
    try {
      deps.log.warn({ requestId: x.requestId, resource: route.resource, found }, 'the upstream server echoed the upstream token; redacted');
      audit.record({
        event: 'gateway.leak_blocked',
        reason: 'upstream_token_in_response',
        ...who,
        requestId: x.requestId,
        ip: x.ip,
        details: { method: x.req.method, resource: route.resource, status: x.res.statusCode, found },
      });
    } catch (err) {
      // The response is already over (or going): nothing to answer, but never crash the server.
      deps.log.error({ err, requestId: x.requestId, resource: route.resource }, 'could not audit a blocked token leak');
    }
  }

  function forwarded(x: Exchange, grantId: string, who: Who, outcome: ForwardOutcome): void {
    const { req, res } = x;
    const seconds = Number(process.hrtime.bigint() - x.started) / 1e9;
    if (outcome.kind === 'error') {
      if (outcome.reason === 'client_closed') return;
      audit.defer({ event: 'gateway.upstream_failed', reason: outcome.reason, ...who, requestId: x.requestId, ip: x.ip, details: { method: req.method, resource: route.resource } });
      deps.onForwarded?.(route.resource, outcome.status, seconds);
      return jsonRpcError(res, outcome.status, messages[outcome.reason]);
    }
    if (outcome.kind === 'upstream_unauthorized') {
      // GW-14: R refused U's token. Refresh it (or end the grant when U refuses too); the
      // client retries after refreshing its own token.
      reject(x, 'upstream_rejected_token', who);
      Promise.resolve(deps.upstreamTokens.get(grantId, who, true))
        .then((refreshed) => {
          res.setHeader(
            'WWW-Authenticate',
            bearerChallenge(config, 'invalid_token', refreshed.ok ? 'the upstream credential was renewed; retry' : 'the upstream authorization ended; authorize again', undefined, route.resource),
          );
          jsonRpcError(res, 401, 'Unauthorized', -32001);
        })
        .catch((err: unknown) => fail(x, err));
      return;
    }
    if (route.mcp) {
      const asked = req.headers['mcp-session-id'];
      const sent = typeof asked === 'string' ? asked : undefined;
      // The session ended: R accepted its DELETE, or R no longer knows it (404, MCP Streamable HTTP).
      if (sent !== undefined && ((req.method === 'DELETE' && outcome.status < 300) || outcome.status === 404)) deps.sessions.forget(sent);
      else if (outcome.sessionId !== undefined && outcome.sessionId !== sent && !deps.sessions.bind(outcome.sessionId, who)) {
        deps.log.warn({ requestId: x.requestId }, 'R issued a session id that is bound to another user or client; it stays theirs');
      }
    }
    deps.onForwarded?.(route.resource, outcome.status, seconds);
    audit.defer({
      event: 'gateway.forwarded',
      ...who,
      requestId: x.requestId,
      ip: x.ip,
      details: { method: req.method, resource: route.resource, status: outcome.status, ms: Math.round(seconds * 10_000) / 10 },
    });
  }

  return (req, res, suffix) => {
    const x: Exchange = { req, res, suffix, requestId: newRequestId(), ip: deps.clientIp(req), started: process.hrtime.bigint() };
    res.setHeader('X-Request-Id', x.requestId);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    try {
      handle(x);
    } catch (err) {
      fail(x, err);
    }
  };
}
