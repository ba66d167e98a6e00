/**
 * Per-client-IP budgets (SEC-01, REG-11) with express-rate-limit: 429 with Retry-After and
 * RFC-draft RateLimit headers; the answer itself is written by the one error writer
 * (src/errors/render.ts: JSON for API clients, P's page for browsers). The client IP honours
 * TRUST_PROXY. `onLimited` sees each request answered 429; src/runtime/app.ts tallies them into one
 * audit row per address and minute (DESIGN §9: a flood beyond a budget adds no row per request).
 * The counts live in `store` when one is given — on PostgreSQL, the rate_limits table every replica
 * shares (src/store/rate-limits.ts: one budget per client IP across replicas, DESIGN §8) — else in
 * this process's memory (SQLite: one process).
 */
import { rateLimit, type Store } from 'express-rate-limit';
import type { Request, RequestHandler } from 'express';
import type { RateBudget } from '../config/duration.js';
import { ERRORS } from '../errors/oauth-error.js';

export type RateLimitStore = Store;

export function limiter(budget: RateBudget, onLimited?: (req: Request) => void, store?: RateLimitStore): RequestHandler {
  return rateLimit({
    ...(store ? { store } : {}),
    windowMs: budget.windowMs,
    limit: budget.limit,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    handler: (req, _res, next, options) => {
      onLimited?.(req);
      next(ERRORS.tooManyRequests(Math.ceil(options.windowMs / 1000)));
    },
  });
}
