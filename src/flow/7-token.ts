/**
 * Step 7 — Token endpoint preflight (DESIGN §2 step 7). oidc-provider issues P's tokens; this
 * step only refuses, before the provider touches the code or refresh token, a `resource` other
 * than the MCP resource (RFC 8707 §2, TOK-07, RT-04). Without it the provider would consume the
 * code or rotate the refresh token first and fail afterwards, so a client that once sent a wrong
 * resource would see its next refresh treated as reuse and its grant revoked.
 * The body is parsed here (form-encoded, small); the provider reads the parsed body.
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Audit } from '../audit/audit.js';

/** Token requests are a few hundred bytes. */
export const MAX_TOKEN_BODY = 16 * 1024;

export function tokenPreflight(allowedResources: readonly string[], audit: Audit): RequestHandler[] {
  return [
    express.urlencoded({ extended: false, limit: MAX_TOKEN_BODY, parameterLimit: 50 }),
    (req: Request, res: Response, next: NextFunction) => {
      const resource = (req.body as Record<string, unknown> | undefined)?.resource;
      const values = resource === undefined ? [] : Array.isArray(resource) ? resource : [resource];
      const foreign = values.filter((v) => typeof v !== 'string' || !allowedResources.includes(v));
      if (foreign.length) {
        audit.record({
          event: 'token.rejected',
          reason: 'invalid_target',
          clientId: typeof req.body?.client_id === 'string' ? req.body.client_id.slice(0, 200) : undefined,
          details: { grant_type: req.body?.grant_type, resource: foreign.map(String).join(' ').slice(0, 500) },
        });
        res.status(400).setHeader('Cache-Control', 'no-store');
        res.json({ error: 'invalid_target', error_description: 'resource must be the MCP resource this server protects' });
        return;
      }
      next();
    },
  ];
}
