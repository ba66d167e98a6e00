/**
 * The scopes P offers (DISC-04, RT-06, AT-23) — the one place that says which they are and what
 * they mean to a person:
 * - BASE_SCOPES, always offered by the authorization server: `openid` (an ID token) and
 *   `offline_access` (refresh tokens; counted only with prompt=consent, RT-06);
 * - MCP_SCOPES from the configuration, for the MCP resource (and each GATEWAY_ROUTES resource).
 * A request for anything else is `invalid_scope` (AUTHZ-07, src/provider/policy.ts); a
 * registration's `scope` is narrowed to these (REG-09, src/oauth/admission.ts); the grant gets
 * exactly the consented ones (AT-23, src/consent/record.ts).
 */
import type { Config } from '../config/load.js';

/** Scopes always offered besides MCP_SCOPES: `openid` (ID token) and `offline_access` (RT-06). */
export const BASE_SCOPES: readonly string[] = ['openid', 'offline_access'];

/** Every scope P offers: BASE_SCOPES, then MCP_SCOPES. */
export function offeredScopes(config: Pick<Readonly<Config>, 'mcpScopes'>): string[] {
  return [...BASE_SCOPES, ...config.mcpScopes];
}

/** Plain words for the consent page (CONS-06); an unknown scope is named as it is. */
export const SCOPE_DESCRIPTIONS: Readonly<Record<string, string>> = {
  openid: 'Learn your account identifier at this service',
  offline_access: 'Stay connected when you are not using the application (refresh tokens)',
  'mcp:tools': 'Use the tools of the MCP server on your behalf',
};

export function describeScope(scope: string): string {
  return SCOPE_DESCRIPTIONS[scope] ?? `Access granted under the scope “${scope}”`;
}
