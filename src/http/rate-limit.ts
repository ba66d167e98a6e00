/**
 * Per-client-IP budgets (SEC-01, REG-11) with express-rate-limit: 429 with Retry-After and
 * RFC-draft RateLimit headers, an OAuth-shaped JSON body. The client IP honours TRUST_PROXY.
 */
import { rateLimit } from 'express-rate-limit';
import type { RequestHandler } from 'express';
import type { RateBudget } from '../config/duration.js';

export function limiter(budget: RateBudget, onLimited?: (ip: string | undefined) => void): RequestHandler {
  return rateLimit({
    windowMs: budget.windowMs,
    limit: budget.limit,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    handler: (req, res, _next, options) => {
      onLimited?.(req.ip);
      const retryAfter = Math.ceil(options.windowMs / 1000);
      res.setHeader('Retry-After', String(retryAfter));
      res.setHeader('Cache-Control', 'no-store');
      res.status(429).json({ error: 'too_many_requests', error_description: 'Too many requests from this address; try again later.' });
    },
  });
}
