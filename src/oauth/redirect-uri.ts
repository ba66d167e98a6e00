/**
 * Redirect URIs a client may register (REG-04/05/06, AUTHZ-01) — the one module that decides it,
 * for Dynamic Client Registration and Client ID Metadata Documents alike:
 * - absolute https, or http on a loopback host (the names oidc-provider port-matches, RFC 8252
 *   §7.3: src/config/urls.ts `LOOPBACK_REDIRECT_HOSTS`), or a private-use scheme from the
 *   configured allowlist (REDIRECT_SCHEMES); javascript:, data:, file:… never
 *   (src/config/urls.ts `NEVER_REDIRECT_SCHEMES`);
 * - no fragment, no userinfo, no wildcard, no dot segments, no whitespace or control characters;
 * - AUTHZ-01: only in canonical form — the string must equal its WHATWG URL serialisation
 *   (lower-case scheme and host, no default port, `/` not `\`, `scheme://` spelled out, ASCII
 *   (punycode) host, canonical IPv4/IPv6, percent-encoded path and query); the only difference
 *   allowed is the `/` of an empty path (`http://127.0.0.1:8080`). /authorize compares the
 *   client's string with the registered one exactly, and P, the browser and the client must all
 *   read one URL with one host from it. Non-canonical forms are refused, not rewritten: a client
 *   keeps sending its own spelling, which would then never match.
 */
import { LOOPBACK_REDIRECT_HOSTS, NEVER_REDIRECT_SCHEMES } from '../config/urls.js';

/** Longest accepted URI; real callbacks are far shorter. */
export const MAX_URI_LENGTH = 2000;

// C0, DEL, C1, and the invisible/bidi formatting characters used for spoofing (Trojan Source).
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/;

export type UriCheck = { ok: true; kind: 'https' | 'loopback' | 'private' } | { ok: false; reason: string; description: string };

/** Classify one redirect URI or say why it is refused. */
export function checkRedirectUri(raw: string, policy: { redirectSchemes: readonly string[] }): UriCheck {
  const no = (reason: string, description: string): UriCheck => ({ ok: false, reason, description });
  if (raw.length > MAX_URI_LENGTH) return no('too_long', `redirect URI longer than ${MAX_URI_LENGTH} characters`);
  if (CONTROL_CHARS.test(raw) || /\s/.test(raw)) return no('control_characters', 'redirect URI contains whitespace or control characters');
  if (raw.includes('*')) return no('wildcard', 'redirect URI contains a wildcard; register exact URIs');
  if (raw.includes('#')) return no('fragment', 'redirect URI must not contain a fragment (RFC 6749 §3.1.2)');
  const schemeMatch = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(raw);
  if (!schemeMatch) return no('not_absolute', 'redirect URI must be an absolute URI');
  const scheme = (schemeMatch[1] as string).toLowerCase();
  if (NEVER_REDIRECT_SCHEMES.has(scheme)) return no('scheme_forbidden', `redirect URI scheme "${scheme}:" is never allowed`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return no('not_absolute', 'redirect URI must be an absolute URI');
  }
  if (url.username || url.password || /^[a-z][a-z0-9+.-]*:\/\/[^/?]*@/i.test(raw)) {
    return no('userinfo', 'redirect URI must not contain user information (user@host)');
  }
  if (/(^|\/)(\.|%2e){1,2}(\/|\?|$)/i.test(raw.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, ''))) {
    return no('dot_segments', 'redirect URI must not contain "." or ".." path segments');
  }
  // AUTHZ-01: one spelling per URL (see the header); `${raw}/` is the empty path, e.g. http://127.0.0.1:8080.
  if (raw !== url.href && `${raw}/` !== url.href) {
    return no('not_canonical', `redirect URI must be written in canonical form (register ${JSON.stringify(url.href.slice(0, 200))})`);
  }
  if (scheme === 'https') {
    if (!url.hostname) return no('not_absolute', 'https redirect URI needs a host');
    return { ok: true, kind: 'https' };
  }
  if (scheme === 'http') {
    if (!LOOPBACK_REDIRECT_HOSTS.has(url.hostname)) {
      return no('http_not_loopback', 'plain http redirect URIs are only allowed for localhost, 127.0.0.1 and [::1]; use https');
    }
    return { ok: true, kind: 'loopback' };
  }
  if (!policy.redirectSchemes.includes(scheme)) {
    return no('scheme_not_allowed', `private-use scheme "${scheme}:" is not on this server's allowlist (REDIRECT_SCHEMES)`);
  }
  return { ok: true, kind: 'private' };
}

/** An https URL (or loopback http) for the informational URI members (client_uri, logo_uri…). */
export function isWebUrl(value: unknown): boolean {
  if (typeof value !== 'string' || value.length > MAX_URI_LENGTH || CONTROL_CHARS.test(value)) return false;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_REDIRECT_HOSTS.has(url.hostname));
  } catch {
    return false;
  }
}

/** Host (or scheme, for private-use URIs) of each redirect URI, for provenance and the admin UI. */
export function redirectHosts(uris: readonly string[]): string[] {
  return [
    ...new Set(
      uris.map((u) => {
        try {
          const url = new URL(u);
          return url.host || `${url.protocol}`;
        } catch {
          return u;
        }
      }),
    ),
  ];
}
