/**
 * Step 2 — Authorization request, before oidc-provider (DESIGN §2 step 3). oidc-provider itself
 * validates the client, the exact redirect URI, PKCE S256, resource and duplicates; its errors
 * before the client and redirect URI are validated render P's error page and never redirect
 * (AUTHZ-02, AT-07, AT-09). This step adds:
 * - interop F6: a request without `scope` gets P's default scopes (all MCP_SCOPES), instead of
 *   ending in a bare `access_denied`.
 * - GET only (OAuth 2.1 §4.1.1 requires GET, allows POST): one request shape to validate.
 *
 * Error redirects (documented policy for AUTHZ-12 / AT-09): errors found after the client and
 * its exact registered redirect URI are validated go back to that URI with `error`, `state` and
 * `iss`, as RFC 6749 §4.1.2.1 prescribes and clients rely on, plus a description in P's own fixed
 * wording. They carry nothing else — no code, no user data, no text from the request
 * (src/provider/error-redirect.ts) — and a registered redirect URI is the only place they can go.
 */
import type { NextFunction, Request, Response } from 'express';
import { ERRORS } from '../errors/oauth-error.js';

export function authorizationPreflight(defaultScope: string) {
  return (req: Request, _res: Response, next: NextFunction) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next(ERRORS.methodNotAllowed('GET'));
    const q = req.url.indexOf('?');
    const params = new URLSearchParams(q === -1 ? '' : req.url.slice(q + 1));
    if (!params.has('scope') || params.get('scope') === '') {
      params.set('scope', defaultScope);
      req.url = `${q === -1 ? req.url : req.url.slice(0, q)}?${params.toString()}`;
    }
    next();
  };
}
