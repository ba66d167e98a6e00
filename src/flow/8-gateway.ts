/**
 * Step 8 — the gateway (DESIGN §2 step 8): `/mcp` in front of MCP_UPSTREAM_URL (Streamable
 * HTTP: POST, GET for the server-sent stream, DELETE to end a session) and each GATEWAY_ROUTES
 * prefix in front of its API. In order:
 *   1. GW-10, AT-21: a browser `Origin` not in ALLOWED_ORIGINS ⇒ 403 (DNS rebinding);
 *   2. the token check (src/gateway/token-check.ts): 401 with `WWW-Authenticate` pointing at the
 *      resource's RFC 9728 metadata, or 403 `insufficient_scope` naming the scope;
 *   2b. the body, read whole (GATEWAY_MAX_BODY, 413; GATEWAY_BODY_MEMORY for all at once, 503), judged for per-tool scopes and the header–body rule (GW-15/16): 403, 400;
 *   3. GW-09: a session id in the query (HTTP+SSE) ⇒ 400; an unknown one, or one issued to another
 *      user or client ⇒ 404; R not contacted (src/gateway/sessions.ts);
 *   4. U's token for the grant, refreshed when due (src/gateway/upstream-token.ts);
 *   5. on a token check fresh enough (GW-01, CHECK_FRESH_MS), sent to R with U's token (src/gateway/forward.ts), the answer streamed
 *      back with U's tokens redacted (GW-13, src/gateway/redact.ts), ended if its token stops passing (src/gateway/open-responses.ts).
 * A refusal of a request without a valid token (steps 1–2: no, malformed or invalid token; a
 * foreign Origin without a valid token) is counted against the client address's
 * RATE_LIMIT_REJECTED budget — 429 beyond it — and tallied into one gateway.rejected_aggregate row
 * per address, reason and minute (DESIGN §9; src/audit/refusal-budget.ts). Every other refusal is
 * audited as gateway.rejected with its reason, every forwarded request as gateway.forwarded
 * (both group-committed, src/audit/audit.ts); a response in which R echoed U's token as
 * gateway.leak_blocked (committed at once: rare, and an admin wants it durable), with where it
 * was found and never the value. Requests with a valid token never touch the budget.
 *
 * This is the hot path, so it runs on Node's raw request and response, in front of express (src/runtime/app.ts): no router,
 * no per-request middleware stack, no async context; the few headers a JSON or SSE answer needs are set here. */
import { newRequestId } from '../http/request-id.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerChallenge } from './1-discover.js';
import { challengeScopes, type TokenDecision } from '../gateway/token-check.js';
import type { UpstreamTokenResult } from '../gateway/upstream-token.js';
import type { GatewayDeps, GatewayHandler, GatewayRoute } from '../gateway/deps.js';
import { createTouchThrottle } from '../gateway/throttle.js';
import { answerPreflight } from '../gateway/cors.js';
import { jsonRpcError, type ForwardOutcome } from '../gateway/forward.js';
import { after, type Maybe } from '../db/sql.js';
import { failureLevel, isDatabaseBusy } from '../errors/database-unavailable.js';
import { createToolPolicy, type ToolPolicy } from '../gateway/tool-policy.js';
import { AFTER_UPSTREAM_REFUSAL, CHECK_FRESH_MS, MESSAGES, type Exchange, type Who } from '../gateway/exchange.js';
import { hasRequestBody } from '../gateway/read-body.js';
export type { GatewayDeps, GatewayHandler, GatewayRoute } from '../gateway/deps.js';

/** consents.last_used_at is written at most once a minute per grant. */
const TOUCH_INTERVAL_MS = 60_000;

/** One route of the gateway: the steps of the module comment, one method each. */
class RouteGateway {
  private readonly requiredScope: string;
  private readonly tools: ToolPolicy;
  private readonly touched = createTouchThrottle(TOUCH_INTERVAL_MS); // bounded (src/gateway/throttle.ts)
  private readonly messages: Record<Extract<ForwardOutcome, { kind: 'error' }>['reason'], string>;

  constructor(
    private readonly deps: GatewayDeps,
    private readonly route: GatewayRoute,
  ) {
    this.requiredScope = deps.config.mcpScopes[0] as string;
    this.tools = createToolPolicy(route.mcp ? deps.config.toolScopes : [], this.requiredScope, deps.config.mcpScopes);
    this.messages = { ...MESSAGES, client_closed: '' };
  }

  /** The request listener (src/gateway/dispatch.ts calls it with the path below the route). */
  serve(req: IncomingMessage, res: ServerResponse, suffix: string): void {
    const x: Exchange = { req, res, suffix, requestId: newRequestId(), ip: this.deps.clientIp(req), started: process.hrtime.bigint() };
    res.setHeader('X-Request-Id', x.requestId);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    try {
      this.handle(x);
    } catch (err) {
      this.fail(x, err);
    }
  }

  private reject(x: Exchange, reason: string, who: { subject?: string; clientId?: string } = {}): void {
    this.deps.audit.defer({
      event: 'gateway.rejected',
      reason,
      ...who,
      requestId: x.requestId,
      ip: x.ip,
      details: { method: x.req.method, resource: this.route.resource, origin: x.req.headers.origin },
    });
  }

  /**
   * A refusal of a request without a valid token (DESIGN §9): counted against the address's
   * RATE_LIMIT_REJECTED budget and tallied into one audit row per address, reason and minute
   * (src/audit/refusal-budget.ts); beyond the budget the answer is 429 instead of `answer`.
   */
  private refuseAnonymous(x: Exchange, reason: string, answer: () => void): void {
    this.deps.refusals
      .refuse('gateway.rejected_aggregate', x.ip, reason, { method: x.req.method, resource: this.route.resource, origin: x.req.headers.origin })
      .then((verdict) => {
        if (!verdict.limited) return answer();
        x.res.setHeader('Retry-After', String(verdict.retryAfterSeconds));
        jsonRpcError(x.res, 429, 'Too many refused requests from this address; try again later');
      })
      .catch((err: unknown) => this.fail(x, err));
  }

  private fail(x: Exchange, err: unknown): void {
    if (isDatabaseBusy(err)) {
      // The database stayed locked for its busy timeout: busy, not broken (src/errors/database-unavailable.ts).
      this.deps.log.warn({ requestId: x.requestId, resource: this.route.resource }, 'database busy: request answered 503');
      if (!x.res.headersSent) x.res.setHeader('Retry-After', '1');
      return jsonRpcError(x.res, 503, 'The service is busy; try again in a moment.');
    }
    this.deps.log.error({ err, requestId: x.requestId, resource: this.route.resource }, 'gateway error');
    jsonRpcError(x.res, 500, `An unexpected error occurred (request ${x.requestId}).`);
  }

  /**
   * Steps 1–4. On SQLite every read answers synchronously and no promise is made on the way to R
   * unless U's token must be refreshed first (this is the hot path; every await costs a turn of
   * the microtask queue). On PostgreSQL the generation read (src/gateway/generation.ts) and any
   * cache miss are round trips: `next` then continues when they answer.
   */
  private handle(x: Exchange): void {
    const origin = x.req.headers.origin;
    const foreignOrigin = origin !== undefined && !this.deps.config.gateway.allowedOrigins.includes(origin);
    if (!foreignOrigin && answerPreflight(x.req, x.res, this.route.methods)) return;
    this.check(x, (d, generation) => this.authorized(x, d, generation, foreignOrigin));
  }

  /** Step 2 from a fresh generation read (GW-01); when and after which revocation it was made is kept for the last step. */
  private check(x: Exchange, then: (decision: TokenDecision, generation: number) => void): void {
    x.epoch = this.deps.openResponses.epoch;
    x.checkedAt = Date.now();
    x.checkedTick = performance.now();
    this.next(x, this.deps.generation(), (generation) => {
      const { authorization } = x.req.headers;
      const decision = this.deps.checkToken({ generation, authorization, queryToken: /[?&]access_token=/.test(x.suffix), resource: this.route.resource, requiredScope: this.requiredScope });
      this.next(x, decision, (d) => then(d, (x.generation = generation)));
    });
  }

  /** `then(value)` now when it is there, else when it arrives (a failure fails the request). */
  private next<T>(x: Exchange, value: Maybe<T>, then: (value: T) => void): void {
    if (value instanceof Promise) value.then(then).catch((err: unknown) => this.fail(x, err));
    else then(value);
  }

  /** Steps 3–4 for a request whose token check is in. */
  private authorized(x: Exchange, decision: TokenDecision, generation: number, foreignOrigin: boolean): void {
    if (foreignOrigin || !decision.ok) return this.refuse(x, decision, foreignOrigin);
    const who: Who = { subject: decision.subject, clientId: decision.clientId };
    x.until = decision.until;
    this.next(x, this.bodyAllowed(x, decision.scopes, who), (ok) => ok && this.onward(x, who, decision.grantId, generation));
  }

  /** Steps 3–5 once the token and the tool policy allow the request. */
  private onward(x: Exchange, who: Who, grantId: string, generation: number): void {
    this.next(x, this.sessionAllowed(x, who), (ok) => ok && this.next(x, this.deps.upstreamTokens.get(grantId, who, false, generation), (u) => this.withUpstreamToken(x, grantId, who, u)));
  }

  /** Step 2b: the body is read (bounded) before R is asked, and judged by the tool policy when it must be (GW-15/16, src/gateway/tool-policy.ts). */
  private bodyAllowed(x: Exchange, scopes: ReadonlySet<string>, who: Who): Maybe<boolean> {
    if (x.body !== undefined || !hasRequestBody(x.req)) return true;
    return this.tools.check(x.req, scopes, this.deps.config.gateway.maxBodyBytes, (x.hold = this.deps.bodies.hold(x.res, who.subject))).then((verdict) => {
      if (verdict.ok) return Boolean((x.body = verdict.body) && (verdict.tools ? (x.tools = verdict.tools) : true));
      if (verdict.status === 0) return false; // the client left: nothing to answer
      const details = { method: x.req.method, resource: this.route.resource, ...verdict.details };
      this.deps.audit.defer({ event: verdict.status === 403 ? 'gateway.tool_refused' : 'gateway.rejected', reason: verdict.reason, ...who, requestId: x.requestId, ip: x.ip, details });
      if (verdict.status === 403) x.res.setHeader('WWW-Authenticate', bearerChallenge(this.deps.config, 'insufficient_scope', verdict.message, verdict.needed.join(' '), this.route.resource));
      if (verdict.status === 503) x.res.setHeader('Retry-After', '1');
      jsonRpcError(x.res, verdict.status, verdict.message, verdict.code);
      return false;
    });
  }

  /** Steps 1–2 said no: a foreign Origin (GW-10, AT-21: whatever the token — DNS rebinding) or the token check. */
  private refuse(x: Exchange, decision: TokenDecision, foreignOrigin: boolean): void {
    const { res } = x;
    // A token that is valid but lacks the scope still names its user: not an anonymous request.
    const authenticated = decision.ok || decision.reason === 'insufficient_scope';
    if (foreignOrigin) {
      const forbidden = () => jsonRpcError(res, 403, 'Forbidden: origin not allowed');
      if (!authenticated) return this.refuseAnonymous(x, 'origin_not_allowed', forbidden);
      this.reject(x, 'origin_not_allowed', decision.ok ? { subject: decision.subject, clientId: decision.clientId } : {});
      return forbidden();
    }
    if (decision.ok) return;
    const challenge = () => {
      const scope = decision.status === 403 ? challengeScopes([this.requiredScope], this.deps.config.mcpScopes, decision.granted ?? new Set()).join(' ') : undefined;
      res.setHeader('WWW-Authenticate', bearerChallenge(this.deps.config, decision.error, decision.description, scope, this.route.resource));
      jsonRpcError(res, decision.status, decision.status === 403 ? 'Forbidden: insufficient scope' : 'Unauthorized', decision.status === 403 ? -32003 : -32001);
    };
    if (!authenticated) return this.refuseAnonymous(x, decision.reason, challenge);
    this.reject(x, decision.reason);
    challenge();
  }

  /** Step 3, GW-09, AT-15: only the user and client a session was issued to; an unknown id, or one in the query (HTTP+SSE), fails closed, R not contacted. */
  private sessionAllowed(x: Exchange, who: Who): Maybe<boolean> {
    if (!this.route.mcp) return true;
    return after(this.deps.sessions.judge(x.suffix, x.req.headers['mcp-session-id'], who), (refusal) => {
      if (!refusal) return true;
      this.reject(x, refusal.reason, who);
      jsonRpcError(x.res, refusal.status, refusal.message, refusal.code);
      return false;
    });
  }

  /** Step 5: forward with U's token; audit and observe the outcome. */
  private withUpstreamToken(x: Exchange, grantId: string, who: Who, upstream: UpstreamTokenResult): void {
    const { req, res } = x;
    if (!upstream.ok) {
      this.reject(x, `upstream_token_${upstream.failure}`, who);
      if (upstream.failure !== 'revoked') return jsonRpcError(res, upstream.failure === 'unreachable' ? 504 : 502, 'The upstream identity provider is not available');
      res.setHeader('WWW-Authenticate', bearerChallenge(this.deps.config, 'invalid_token', AFTER_UPSTREAM_REFUSAL.revoked, undefined, this.route.resource));
      return jsonRpcError(res, 401, 'Unauthorized', -32001);
    }
    const now = Date.now();
    // GW-01 (reviews, 2026-12-06): a check gone stale (a slow body or refresh; once: a slow database must still let it through) or
    // older than a revocation made here is done again from a fresh generation read; U's token in hand is kept (not refreshed twice).
    const stale = now - (x.checkedAt as number) > CHECK_FRESH_MS && !x.rechecked;
    if (stale || x.epoch !== this.deps.openResponses.epoch) {
      x.rechecked = true;
      return this.check(x, (d) => (d.ok ? ((x.until = d.until), this.withUpstreamToken(x, grantId, who, upstream)) : this.refuse(x, d, false)));
    }
    if (this.touched.due(grantId, now)) {
      const logged = (err: unknown) => this.deps.log[failureLevel(err)]({ err, requestId: x.requestId }, 'could not note the last use of a consent or client');
      this.deps.stores.consents.touch(grantId, now).catch(logged);
      this.deps.stores.clientsMeta.touch(who.clientId, now).catch(logged);
    }
    this.watch(x, who);
    const done = (outcome: ForwardOutcome) => {
      try {
        return this.forwarded(x, grantId, who, outcome);
      } catch (err) {
        this.fail(x, err);
      }
    };
    this.route.forwarder.forward(req, res, upstream, x.suffix, done, (found) => this.leakBlocked(x, who, found), x.body, x.hold?.lend());
  }

  /** GW-01: until its response closes, the request is ended if its token stops passing (src/gateway/open-responses.ts); audited. */
  private watch(x: Exchange, who: Who): void {
    const { resource } = this.route;
    const cut = (reason: string) => this.deps.audit.defer({ event: 'gateway.response_cut', reason, ...who, requestId: x.requestId, ip: x.ip, details: { method: x.req.method, resource } });
    this.deps.openResponses.watch(x, resource, this.requiredScope, cut);
  }

  /** GW-13: R's response carried U's token; it was redacted. Its row is committed at once, in its own transaction (no group commit), as the response ends; a failure is logged (the response is already going). */
  private leakBlocked(x: Exchange, who: Who, found: string[]): void {
    this.deps.log.warn({ requestId: x.requestId, resource: this.route.resource, found }, 'the upstream server echoed the upstream token; redacted');
    const details = { method: x.req.method, resource: this.route.resource, status: x.res.statusCode, found };
    const unaudited = (err: unknown) => this.deps.log.error({ err, requestId: x.requestId, resource: this.route.resource }, 'could not audit a blocked token leak');
    this.deps.audit.record({ event: 'gateway.leak_blocked', reason: 'upstream_token_in_response', ...who, requestId: x.requestId, ip: x.ip, details }).catch(unaudited);
  }

  /** GW-14: R refused U's token. Refresh it (or end the grant when U refuses too); the client retries after refreshing its own token. */
  private upstreamRefused(x: Exchange, grantId: string, who: Who): void {
    this.deps.openResponses.release(x.res);
    this.reject(x, 'upstream_rejected_token', who);
    Promise.resolve(this.deps.upstreamTokens.get(grantId, who, true))
      .then((refreshed) => {
        const description = AFTER_UPSTREAM_REFUSAL[refreshed.ok ? 'renewed' : refreshed.failure];
        x.res.setHeader('WWW-Authenticate', bearerChallenge(this.deps.config, 'invalid_token', description, undefined, this.route.resource));
        jsonRpcError(x.res, 401, 'Unauthorized', -32001);
      })
      .catch((err: unknown) => this.fail(x, err));
  }

  /**
   * R answered (or could not be reached). For an answer, the MCP session bookkeeping (GW-09) comes
   * first: its promise, when it returns one, holds R's answer back until a new session id is bound
   * (src/gateway/forward.ts), so the client can use the id at once, on any replica.
   */
  private forwarded(x: Exchange, grantId: string, who: Who, outcome: ForwardOutcome): Promise<unknown> | undefined {
    const { req, res } = x;
    const { resource } = this.route;
    const seconds = Number(process.hrtime.bigint() - x.started) / 1e9;
    if (outcome.kind === 'error') {
      if (outcome.reason === 'client_closed') return;
      this.deps.audit.defer({ event: 'gateway.upstream_failed', reason: outcome.reason, ...who, requestId: x.requestId, ip: x.ip, details: { method: req.method, resource } });
      this.deps.onForwarded?.(resource, outcome.status, seconds);
      jsonRpcError(res, outcome.status, this.messages[outcome.reason]);
      return;
    }
    if (outcome.kind === 'upstream_unauthorized') {
      this.upstreamRefused(x, grantId, who);
      return;
    }
    this.deps.onForwarded?.(resource, outcome.status, seconds);
    const details: Record<string, unknown> = { method: req.method, resource, status: outcome.status, ms: Math.round(seconds * 10_000) / 10 };
    if (x.tools) details.tools = x.tools;
    this.deps.audit.defer({ event: 'gateway.forwarded', ...who, requestId: x.requestId, ip: x.ip, details });
    const sent = req.headers['mcp-session-id'];
    const bookkeeping = this.route.mcp ? this.deps.sessions.afterResponse(req.method, typeof sent === 'string' ? sent : undefined, outcome.status, outcome.sessionId, who) : undefined;
    return bookkeeping?.then(
      // GW-09: a session R issued is bound to this user and client; one that ended is forgotten.
      (own) => own || this.deps.log.warn({ requestId: x.requestId }, 'R issued a session id that is bound to another user or client; it stays theirs'),
      (err: unknown) => this.deps.log[failureLevel(err)]({ err, requestId: x.requestId }, 'MCP session bookkeeping failed'),
    );
  }
}

export function gateway(deps: GatewayDeps, route: GatewayRoute): GatewayHandler {
  const handler = new RouteGateway(deps, route);
  return (req, res, suffix) => handler.serve(req, res, suffix);
}
