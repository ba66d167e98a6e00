/**
 * Content-Security-Policy, the one module that writes it (CONS-09, CONS-17, deps.md gotcha 6):
 * - every response gets BASE_CSP_DIRECTIVES through helmet (src/http/security-headers.ts): only
 *   this origin, no script at all, no plugins, `frame-ancestors 'none'`, no `<base>`;
 * - `form-action` is not in that global policy: Chromium checks the whole redirect chain after a
 *   form POST against it (consent → upstream → client), so each page with a form sets its own
 *   exact list with `pageCsp` — `'self'` plus the exact origins (or private-use `scheme:`) its
 *   form's redirects lead to, never a wildcard.
 */

export const BASE_CSP_DIRECTIVES: Readonly<Record<string, readonly string[]>> = {
  'default-src': ["'self'"],
  'base-uri': ["'none'"],
  'script-src': ["'none'"],
  'style-src': ["'self'"],
  'img-src': ["'self'", 'data:'],
  'font-src': ["'self'"],
  'connect-src': ["'self'"],
  'object-src': ["'none'"],
  'frame-ancestors': ["'none'"],
};

/** The policy of a page whose forms lead to `formTargets` (besides this origin). */
export function pageCsp(formTargets: readonly string[] = []): string {
  const directives = { ...BASE_CSP_DIRECTIVES, 'form-action': ["'self'", ...new Set(formTargets)] };
  return Object.entries(directives)
    .map(([k, v]) => `${k} ${v.join(' ')}`)
    .join(';');
}

/** CSP source for a redirect URI: its origin, or `scheme:` for private-use schemes. */
export function cspSourceOf(uri: string): string {
  const url = new URL(uri);
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : url.protocol;
}
