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
import { resourceMetadataUrl as metadataUrlOf } from '../config/urls.js';

export function protectedResourceMetadata(config: Readonly<Config>, resource = config.urls.mcpResource) {
  const { urls } = config;
  // DISC-01: no null values or empty arrays; DISC-04: no offline_access, no omnibus scopes.
  return {
    resource,
    authorization_servers: [urls.issuer],
    scopes_supported: [...config.mcpScopes],
    bearer_methods_supported: ['header'],
    resource_name: resource === urls.mcpResource ? 'MCP server (via MCP Consent Proxy)' : `API ${new URL(resource).pathname} (via MCP Consent Proxy)`,
  };
}

/** RFC 9728 §3.1: the well-known URL of a resource's metadata (path-inserted). */
export function resourceMetadataUrl(config: Readonly<Config>, resource: string): string {
  return metadataUrlOf(config.urls.origin, resource);
}

/** Paths (at the origin root) answering with a PRM document, and the resource each describes. */
export function protectedResourceMetadataPaths(config: Readonly<Config>): { path: string; resource: string }[] {
  const { basePath: base, mcpResource } = config.urls;
  const out = config.resources.map((resource) => ({ path: new URL(resourceMetadataUrl(config, resource)).pathname, resource }));
  out.push({ path: '/.well-known/oauth-protected-resource', resource: mcpResource });
  if (base) {
    out.push(
      { path: `/.well-known/oauth-protected-resource${base}`, resource: mcpResource },
      { path: `${base}/.well-known/oauth-protected-resource`, resource: mcpResource },
      { path: `${base}/.well-known/oauth-protected-resource/mcp`, resource: mcpResource },
    );
  }
  return out;
}

export function servePrm(config: Readonly<Config>, resource: string) {
  const body = JSON.stringify(protectedResourceMetadata(config, resource));
  return (_req: Request, res: Response) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.type('application/json').send(body);
  };
}

export type ChallengeError = 'invalid_token' | 'insufficient_scope' | 'invalid_request';

/** RFC 6750 §3 challenge value, pointing at the resource's RFC 9728 metadata. */
export function bearerChallenge(config: Readonly<Config>, error?: ChallengeError, description?: string, scope?: string, resource = config.urls.mcpResource): string {
  const parts = [`resource_metadata="${resourceMetadataUrl(config, resource)}"`, `scope="${scope ?? config.mcpScopes.join(' ')}"`];
  if (error) parts.push(`error="${error}"`);
  if (description) parts.push(`error_description="${description.replace(/["\\]/g, '')}"`);
  return `Bearer ${parts.join(', ')}`;
}
