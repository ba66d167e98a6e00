/**
 * Every public URL derives from one configured PUBLIC_URL, built here once (DESIGN §1; interop F2,
 * F4, F12: strict clients compare issuer, PRM `resource` and audience byte for byte).
 */

export interface PublicUrls {
  /** scheme://host[:port], lower-case, no trailing slash */
  origin: string;
  /** '' or '/base' (no trailing slash) */
  basePath: string;
  /** RFC 8414 issuer identifier: origin + basePath */
  issuer: string;
  /** the MCP resource (RFC 8707 / RFC 9728 `resource`) and access-token audience */
  mcpResource: string;
  /** RFC 9728 §3.1 path-inserted protected-resource metadata URL for the MCP resource */
  mcpResourceMetadata: string;
  /** where U sends the browser back (registered exactly at U, UP-01) */
  upstreamCallback: string;
  /** true for https, or http on a loopback host */
  secureContext: boolean;
  /** path (under the app root) of a route: base path + route */
  path(route: string): string;
  /** absolute URL of a route */
  url(route: string): string;
}

/**
 * Loopback, the one place it is decided (two questions, side by side):
 * - `isLoopbackHost`: is this host this machine? `localhost`, `127.0.0.0/8`, `[::1]` — where plain
 *   http is allowed for PUBLIC_URL, UPSTREAM_ISSUER, MCP_UPSTREAM_URL and gateway targets
 *   (DESIGN §4, DISC-14), and where the consent page says "a program on this computer" (CONS-07).
 * - `LOOPBACK_REDIRECT_HOSTS`: the loopback redirect-URI hosts of RFC 8252 §7.3/§8.3 exactly as
 *   oidc-provider port-matches them (Client#redirectUriAllowed): only these get http redirect URIs
 *   and a port that may vary (REG-05, REG-12).
 */
export const LOOPBACK_REDIRECT_HOSTS: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * URI schemes never allowed in a redirect URI, whatever REDIRECT_SCHEMES says (REG-04/06): they run
 * code, read local files or are not a navigation target at all.
 */
export const NEVER_REDIRECT_SCHEMES: ReadonlySet<string> = new Set(['javascript', 'data', 'file', 'vbscript', 'blob', 'about', 'ftp', 'ws', 'wss', 'filesystem']);

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * RFC 9728 §3.1: the well-known URL of a protected resource's metadata — the well-known suffix
 * inserted between the origin and the resource's path. The one definition (DISC-01/02, DISC-05).
 */
export function resourceMetadataUrl(origin: string, resource: string): string {
  return `${origin}/.well-known/oauth-protected-resource${new URL(resource).pathname}`;
}

export function derivePublicUrls(publicUrl: URL): PublicUrls {
  const origin = publicUrl.origin.toLowerCase();
  const basePath = publicUrl.pathname.replace(/\/+$/, '');
  const issuer = origin + basePath;
  const path = (route: string) => basePath + route;
  const url = (route: string) => origin + path(route);
  return {
    origin,
    basePath,
    issuer,
    mcpResource: url('/mcp'),
    mcpResourceMetadata: resourceMetadataUrl(origin, url('/mcp')),
    upstreamCallback: url('/upstream/callback'),
    secureContext: publicUrl.protocol === 'https:' || isLoopbackHost(publicUrl.hostname),
    path,
    url,
  };
}
