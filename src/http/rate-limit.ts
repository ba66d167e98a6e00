/**
 * Per-client-IP budgets (SEC-01, REG-11) with express-rate-limit: 429 with Retry-After and
 * RFC-draft RateLimit headers; the answer itself is written by the one error writer
 * (src/errors/render.ts: JSON for API clients, P's page for browsers). The client IP honours
 * TRUST_PROXY. `onLimited` sees each request answered 429; src/runtime/app.ts tallies them into one
 * audit row per address and minute (DESIGN §9: a flood beyond a budget adds no row per request).
 */
import { rateLimit } from 'express-rate-limit';
import type { Request, RequestHandler } from 'express';
import type { RateBudget } from '../config/duration.js';
import { ERRORS } from '../errors/oauth-error.js';

export function limiter(budget: RateBudget, onLimited?: (req: Request) => void): RequestHandler {
  return rateLimit({
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
