/**
 * Step 0 — Discovery (DESIGN §2 step 1).
 * - RFC 9728 protected-resource metadata for the MCP resource, at the path-inserted well-known
 *   URL and the root form (DISC-01..04); `resource` byte-equal to the token audience (DISC-02).
 * - RFC 8414 path insertion for an issuer with a path (DISC-07, interop F2): the provider serves
 *   its metadata under the base path; the origin-root forms are aliases to the same document.
 * - The bearer challenge for an unauthenticated `/mcp` (DISC-05/06, RFC 6750 §3):
 *   `Bearer resource_metadata="…", scope="…"`, plus `error="invalid_token"` when a token was
 *   presented and refused (GW-05).
 */
import type { Request, Response } from 'express';
import type { Config } from '../config/load.js';

export function protectedResourceMetadata(config: Readonly<Config>) {
  const { urls } = config;
  // DISC-01: no null values or empty arrays; DISC-04: no offline_access, no omnibus scopes.
  return {
    resource: urls.mcpResource,
    authorization_servers: [urls.issuer],
    scopes_supported: [...config.mcpScopes],
    bearer_methods_supported: ['header'],
    resource_name: 'MCP server (via MCP Consent Proxy)',
  };
}

/** Paths (at the origin root) answering with the PRM document. */
export function protectedResourceMetadataPaths(config: Readonly<Config>): string[] {
  const base = config.urls.basePath;
  const paths = [`/.well-known/oauth-protected-resource${base}/mcp`, '/.well-known/oauth-protected-resource'];
  if (base) paths.push(`/.well-known/oauth-protected-resource${base}`, `${base}/.well-known/oauth-protected-resource`, `${base}/.well-known/oauth-protected-resource/mcp`);
  return paths;
}

export function servePrm(config: Readonly<Config>) {
  const body = JSON.stringify(protectedResourceMetadata(config));
  return (_req: Request, res: Response) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.type('application/json').send(body);
  };
}

export type ChallengeError = 'invalid_token' | 'insufficient_scope' | 'invalid_request';

/** RFC 6750 §3 challenge value. */
export function bearerChallenge(config: Readonly<Config>, error?: ChallengeError, description?: string, scope?: string): string {
  const parts = [`resource_metadata="${config.urls.mcpResourceMetadata}"`, `scope="${scope ?? config.mcpScopes.join(' ')}"`];
  if (error) parts.push(`error="${error}"`);
  if (description) parts.push(`error_description="${description.replace(/["\\]/g, '')}"`);
  return `Bearer ${parts.join(', ')}`;
}
