/**
 * Step 7 — Token endpoint preflight (DESIGN §2 step 7). oidc-provider issues P's tokens; this
 * step only refuses, before the provider touches the code or refresh token, a `resource` the
 * code or refresh token was not granted for (RFC 8707 §2, TOK-07, RT-04):
 * - a resource P does not protect at all;
 * - more than one resource (P grants exactly one resource per authorization);
 * - another of P's resources (the MCP resource vs a GATEWAY_ROUTES prefix): the requested value
 *   is compared with the resource stored with that code or refresh token, looked up by the hash
 *   of its value in the provider's own store (src/store/oidc-models.ts `grantSource`).
 * Without this the provider would consume the code or rotate the refresh token first and fail
 * afterwards, so the client's corrected retry would look like reuse and revoke the whole grant
 * (TOK-02, RT-02). A code or refresh token that was already used is left to the provider, whose
 * reuse detection must still fire; an unknown or expired one is left to it too (invalid_grant).
 * The body is parsed here (form-encoded, small); the provider reads the parsed body.
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Audit } from '../audit/audit.js';
import { withoutUserinfo } from '../audit/limits.js';
import { ERRORS } from '../errors/oauth-error.js';
import type { OidcModelStore } from '../store/oidc-models.js';

/** Token requests are a few hundred bytes. */
export const MAX_TOKEN_BODY = 16 * 1024;

type GrantSources = Pick<OidcModelStore, 'grantSource'>;

/** The code or refresh token this request would make the provider consume, if P knows it. */
function grantSourceOf(body: Record<string, unknown>, models: GrantSources) {
  if (body.grant_type === 'authorization_code' && typeof body.code === 'string') return models.grantSource('AuthorizationCode', body.code);
  if (body.grant_type === 'refresh_token' && typeof body.refresh_token === 'string') return models.grantSource('RefreshToken', body.refresh_token);
  return undefined;
}

export function tokenPreflight(allowedResources: readonly string[], audit: Audit, models: GrantSources): RequestHandler[] {
  return [
    express.urlencoded({ extended: false, limit: MAX_TOKEN_BODY, parameterLimit: 50 }),
    async (req: Request, _res: Response, next: NextFunction) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const resource = body.resource;
      if (resource === undefined) return next(); // the provider uses the granted resource (AUTHZ-06)
      const values = Array.isArray(resource) ? resource : [resource];
      const refuse = async (reason: string, description: string) => {
        await audit.record({
          event: 'token.rejected',
          reason: 'invalid_target',
          // Userinfo masked before the cut (src/audit/limits.ts): cut first, a password could lose its `@`.
          clientId: typeof body.client_id === 'string' ? withoutUserinfo(body.client_id).slice(0, 200) : undefined,
          details: { grant_type: body.grant_type, check: reason, resource: withoutUserinfo(values.map(String).join(' ')).slice(0, 500) },
        });
        next(ERRORS.invalidTarget(description));
      };
      if (values.some((v) => typeof v !== 'string' || !allowedResources.includes(v))) {
        return refuse('unknown_resource', 'resource must be a resource this server protects');
      }
      if (values.length > 1) return refuse('several_resources', 'request one resource per token request');
      const source = await grantSourceOf(body, models);
      if (source && !source.consumed && !source.resources.includes(values[0] as string)) {
        return refuse('not_granted', 'resource must be the one this authorization was granted for');
      }
      next();
    },
  ];
}
