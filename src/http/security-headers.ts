/**
 * Security headers on every response (helmet), per CONS-09/17 and deps.md gotcha 6:
 * - CSP: only this origin; no inline script; `frame-ancestors 'none'`. `form-action` is not in
 *   the global policy: a form's redirect chain (consent → upstream → client) is checked against
 *   it by Chromium, so pages with forms set their own exact list (src/http/csp.ts).
 * - X-Frame-Options: DENY; Referrer-Policy: no-referrer; HSTS only when PUBLIC_URL is https.
 */
import helmet from 'helmet';
import type { RequestHandler } from 'express';
import { BASE_CSP_DIRECTIVES } from './csp.js';

export function securityHeaders(https: boolean): RequestHandler {
  return helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { ...BASE_CSP_DIRECTIVES } },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    strictTransportSecurity: https ? { maxAge: 31_536_000, includeSubDomains: false } : false,
    crossOriginResourcePolicy: { policy: 'same-origin' },
    crossOriginOpenerPolicy: { policy: 'same-origin' },
  });
}

/** Cache-Control: no-store on OAuth responses (RFC 6749 §5.1, TOK-01, REG-01). */
export const noStore: RequestHandler = (_req, res, next) => {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Pragma', 'no-cache');
  next();
};
