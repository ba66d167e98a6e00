/**
 * Per-client-IP budgets (SEC-01, REG-11) with express-rate-limit: 429 with Retry-After and
 * RFC-draft RateLimit headers, an OAuth-shaped JSON body. The client IP honours TRUST_PROXY.
 * `onLimited` sees each request answered 429; src/app.ts tallies them into one audit row per
 * address and minute (DESIGN §9: a flood beyond a budget adds no row per request).
 */
import { rateLimit } from 'express-rate-limit';
import type { Request, RequestHandler } from 'express';
import type { RateBudget } from '../config/duration.js';

export function limiter(budget: RateBudget, onLimited?: (req: Request) => void): RequestHandler {
  return rateLimit({
    windowMs: budget.windowMs,
    limit: budget.limit,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    handler: (req, res, _next, options) => {
      onLimited?.(req);
      const retryAfter = Math.ceil(options.windowMs / 1000);
      res.setHeader('Retry-After', String(retryAfter));
      res.setHeader('Cache-Control', 'no-store');
      res.status(429).json({ error: 'too_many_requests', error_description: 'Too many requests from this address; try again later.' });
    },
  });
}
