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

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
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
    mcpResourceMetadata: `${origin}/.well-known/oauth-protected-resource${basePath}/mcp`,
    upstreamCallback: url('/upstream/callback'),
    secureContext: publicUrl.protocol === 'https:' || isLoopbackHost(publicUrl.hostname),
    path,
    url,
  };
}
