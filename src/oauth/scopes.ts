/**
 * The scopes P offers (DISC-04, RT-06, AT-23) — the one place that says which they are and what
 * they mean to a person:
 * - BASE_SCOPES, always offered by the authorization server: `openid` (an ID token) and
 *   `offline_access` (refresh tokens; counted only with prompt=consent, RT-06);
 * - MCP_SCOPES from the configuration, for the MCP resource (and each GATEWAY_ROUTES resource).
 * A request for anything else is `invalid_scope` (AUTHZ-07, src/provider/policy.ts); a
 * registration's `scope` is narrowed to these (REG-09, src/oauth/admission.ts); the grant gets
 * exactly the consented ones (AT-23, src/consent/record.ts).
 * - The minimal set (DISC-04, DISC-06; MCP 2026-07-28 Authz §Scope Selection Strategy:
 *   "`scopes_supported` is intended to represent the minimal set of scopes necessary for basic
 *   functionality, with additional scopes requested incrementally through the step-up
 *   authorization flow"): `baselineScopes` — MCP_SCOPES less those only MCP_TOOL_SCOPES asks for
 *   (`stepUpScopes`, which a client gets by step-up, GW-15). PRM `scopes_supported`, the 401
 *   challenge and the default for an `/authorize` without `scope` name the minimal set; the
 *   authorization server still offers every scope.
 */
import type { Config } from '../config/load.js';

/** Scopes always offered besides MCP_SCOPES: `openid` (ID token) and `offline_access` (RT-06). */
export const BASE_SCOPES: readonly string[] = ['openid', 'offline_access'];

/** Every scope P offers: BASE_SCOPES, then MCP_SCOPES. */
export function offeredScopes(config: Pick<Readonly<Config>, 'mcpScopes'>): string[] {
  return [...BASE_SCOPES, ...config.mcpScopes];
}

/** Scopes only a tool policy asks for (MCP_TOOL_SCOPES), reached by step-up; never the route scope (the first of MCP_SCOPES). */
export function stepUpScopes(config: Pick<Readonly<Config>, 'mcpScopes' | 'toolScopes'>): string[] {
  return [...new Set(config.toolScopes.map((p) => p.scope))].filter((s) => s !== config.mcpScopes[0]);
}

/** The minimal set: MCP_SCOPES less the step-up-only scopes (see the module comment). */
export function baselineScopes(config: Pick<Readonly<Config>, 'mcpScopes' | 'toolScopes'>): string[] {
  const stepUp = new Set(stepUpScopes(config));
  return config.mcpScopes.filter((s) => !stepUp.has(s));
}

/** Plain words for the consent page (CONS-06); an unknown scope is named as it is. */
export const SCOPE_DESCRIPTIONS: Readonly<Record<string, string>> = {
  openid: 'Learn your account identifier at this service',
  offline_access: 'Stay connected when you are not using the application (refresh tokens)',
  'mcp:tools': 'Use the tools of the MCP server on your behalf',
};

/** At most this many tool names in one scope's description; the rest are counted. */
const DESCRIBED_TOOLS = 10;

/**
 * A scope in plain words; a scope MCP_TOOL_SCOPES lists (`toolScopes`) also names the tools it is
 * needed for, so a step-up says what it unlocks ("…: delete_repo"), not only the scope's name
 * (CONS-06; review 2026-12-07).
 */
export function describeScope(scope: string, toolScopes: readonly { tool: string; scope: string }[] = []): string {
  const words = SCOPE_DESCRIPTIONS[scope] ?? `Access granted under the scope “${scope}”`;
  const tools = [...new Set(toolScopes.filter((p) => p.scope === scope).map((p) => p.tool))];
  if (!tools.length) return words;
  const named = tools.slice(0, DESCRIBED_TOOLS).join(', ');
  const more = tools.length > DESCRIBED_TOOLS ? ` and ${tools.length - DESCRIBED_TOOLS} more` : '';
  return `${words}. Needed to call these tools on your behalf: ${named}${more}`;
}
