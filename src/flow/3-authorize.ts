/**
 * Step 2 — Authorization request, before oidc-provider (DESIGN §2 step 3). oidc-provider itself
 * validates the client, the exact redirect URI, PKCE S256, resource and duplicates; its errors
 * before the client and redirect URI are validated render P's error page and never redirect
 * (AUTHZ-02, AT-07, AT-09). This step adds:
 * - interop F6: a request without `scope` gets P's default scopes (all MCP_SCOPES), instead of
 *   ending in a bare `access_denied`.
 * - GET only (OAuth 2.1 §4.1.1 requires GET, allows POST): one request shape to validate.
 * - AUTHZ-10, RFC 6749 §3.1 ("Request and response parameters MUST NOT be included more than
 *   once"): any parameter that appears twice is refused here, before the provider, the consent
 *   page or U see the request — on P's error page, never a redirect (the redirect URI itself may be
 *   the repeated one), with no interaction created. That includes `resource`: RFC 8707 §2 lets a
 *   client name several, but P grants exactly one resource per authorization (one consent, one
 *   audience), and oidc-provider would otherwise accept the list, show the consent page and fail
 *   only after the upstream login. Parameters P does not know are still ignored when they appear
 *   once; repeated, they are refused too — no client needs to repeat anything.
 *
 * Error redirects (documented policy for AUTHZ-12 / AT-09): errors found after the client and
 * its exact registered redirect URI are validated go back to that URI with `error`, `state` and
 * `iss`, as RFC 6749 §4.1.2.1 prescribes and clients rely on, plus a description in P's own fixed
 * wording. They carry nothing else — no code, no user data, no text from the request
 * (src/provider/error-redirect.ts) — and a registered redirect URI is the only place they can go.
 */
import type { NextFunction, Request, Response } from 'express';
import type { Audit } from '../audit/audit.js';
import { ERRORS } from '../errors/oauth-error.js';

/** Names that occur more than once in the query, in order of first repetition. */
export function repeatedParameters(params: URLSearchParams): string[] {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const name of params.keys()) {
    if (seen.has(name)) repeated.add(name);
    else seen.add(name);
  }
  return [...repeated];
}

export function authorizationPreflight(defaultScope: string, audit: Audit) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next(ERRORS.methodNotAllowed('GET'));
    const q = req.url.indexOf('?');
    const params = new URLSearchParams(q === -1 ? '' : req.url.slice(q + 1));
    const repeated = repeatedParameters(params);
    if (repeated.length) {
      const clientIds = params.getAll('client_id');
      await audit.record({
        event: 'authorization.rejected',
        reason: 'invalid_request',
        clientId: clientIds.length === 1 && (clientIds[0] as string).length <= 200 ? clientIds[0] : undefined,
        details: { repeated: repeated.slice(0, 10).map((name) => name.slice(0, 64)) },
      });
      // Fixed wording: the names come from the request and this page is shown to the user.
      return next(
        ERRORS.invalidRequest(
          repeated.length === 1 && repeated[0] === 'resource'
            ? 'The request names more than one resource; this server grants exactly one resource per authorization.'
            : 'A parameter appears more than once in the request; each may appear only once (RFC 6749 §3.1).',
          'repeated_parameter',
        ),
      );
    }
    if (!params.has('scope') || params.get('scope') === '') {
      params.set('scope', defaultScope);
      req.url = `${q === -1 ? req.url : req.url.slice(0, q)}?${params.toString()}`;
    }
    next();
  };
}
