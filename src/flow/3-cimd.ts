/**
 * Step 3 (CIMD) — an https client_id is resolved before oidc-provider looks the client up
 * (issue 12, DESIGN §10). The decisions are src/cimd/ (which URLs, which addresses, which
 * documents, how long; src/cimd/clients.ts turns an accepted document into a stored client); this
 * step applies them on the three endpoints that name a client:
 * - /authorize: after the repeated-parameter check (src/flow/3-authorize.ts), a CIMD client_id is
 *   resolved (fetched, or from the cache). A refusal is P's error page — 400, no Location header,
 *   no redirect to any redirect_uri (the document, or its absence, is exactly what is not
 *   trusted: AUTHZ-02) — and a `cimd.refused` audit row written by src/cimd/clients.ts.
 * - /token and /revoke: the client_id in the form body; nothing is fetched: a stored client whose
 *   client_id still passes the trust policy is left to the provider, as is one never stored (the
 *   provider does not know it); a refusal is invalid_client JSON (src/cimd/clients.ts,
 *   "Decision"). The body is parsed here (form-encoded, small); the provider reads the
 *   parsed body (src/flow/7-token.ts parses /token's the same way).
 * With CIMD_ENABLED=false nothing here runs: such a client_id reaches the provider, which does
 * not know it — nor a CIMD client stored while CIMD was on (src/provider/configuration.ts).
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { CimdClients, Requester } from '../cimd/clients.js';
import { ERRORS } from '../errors/oauth-error.js';
import { MAX_TOKEN_BODY } from './7-token.js';

const requester = (req: Request): Requester => ({ ip: req.ip, userAgent: req.get('user-agent'), requestId: req.id });

/**
 * /authorize: resolve a CIMD client_id (the query has no repeated parameter by now). A client_id P
 * has not stored yet is a new client: it spends one unit of `newClientBudget` — the registration
 * budget (RATE_LIMIT_REGISTER), so one address creates no more clients through CIMD than through
 * /register (review 2026-12-06) — before anything is fetched; beyond it, 429.
 */
export function cimdAuthorizePreflight(cimd: CimdClients, newClientBudget: RequestHandler): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const q = req.url.indexOf('?');
    const clientId = new URLSearchParams(q === -1 ? '' : req.url.slice(q + 1)).get('client_id');
    if (!cimd.isCimdClientId(clientId)) return next();
    if (!(await cimd.isStored(clientId))) {
      const refused = await new Promise<unknown>((resolve) => newClientBudget(req, res, resolve));
      if (refused) return next(refused);
    }
    const result = await cimd.ensure(clientId, requester(req));
    next(result.ok ? undefined : result.reason === 'busy' ? ERRORS.cimdBusy() : ERRORS.cimdRefusedPage(result.reason));
  };
}

/** /token and /revoke: parse the form body; a stored CIMD client must still pass the trust policy. */
export function cimdTokenPreflight(cimd: CimdClients): RequestHandler[] {
  return [
    express.urlencoded({ extended: false, limit: MAX_TOKEN_BODY, parameterLimit: 50 }),
    async (req: Request, _res: Response, next: NextFunction) => {
      const clientId = (req.body as Record<string, unknown> | undefined)?.client_id;
      if (!cimd.isCimdClientId(clientId)) return next();
      const result = await cimd.ensureStored(clientId, requester(req));
      next(result.ok ? undefined : ERRORS.cimdRefused(result.reason));
    },
  ];
}
