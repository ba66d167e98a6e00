/**
 * CIMD — which client_id URLs P will fetch at all (issue 12, DESIGN §10). Pure; runs before any
 * DNS lookup or connection (src/cimd/fetch.ts calls it first).
 *
 * Enforces:
 * - CIMD-01 (draft-ietf-oauth-client-id-metadata-document §3 "Client Identifier URL"): the
 *   `https` scheme; no userinfo; a path component; no `.` or `..` path segments (also spelled
 *   `%2e`, which WHATWG URL parsing would silently remove); no fragment (not even an empty `#`).
 *   A port is allowed. A query is allowed: the draft's "SHOULD NOT contain a query" binds the
 *   client, and a query adds no reach. A path of `/` is allowed (the draft calls it NOT
 *   RECOMMENDED, not forbidden).
 * - Canonical spelling only (as AUTHZ-01 for redirect URIs): the string must equal its WHATWG URL
 *   serialisation. The draft compares client_ids with simple string comparison (RFC 3986
 *   §6.2.1) and the document's `client_id` must equal the URL fetched, so P fetches exactly the
 *   string it was given; a spelling that URL parsing would rewrite — upper-case host, default
 *   port `:443`, `https://2130706433/`, `https://0177.0.0.1/`, `https://0x7f.1/`,
 *   `https://[::ffff:127.0.0.1]/` — names a different host string than the one P shows and
 *   checks, and is refused, never rewritten. (P stays correct on the rewritten form: its host is
 *   checked by src/cimd/address-policy.ts like any other.)
 * - At most MAX_CLIENT_ID_LENGTH characters; no whitespace or control characters.
 * - Trust policy (issue 12 `CIMD_ALLOWED_HOSTS` / `CIMD_DENIED_HOSTS`, CIMD §6.8 "Client ID
 *   Domain Trust"): entries are `host`, `host:port` or `*.domain` (any subdomain, not the domain
 *   itself; names only — a wildcard never matches an IP address). A denied entry always wins; a non-empty allowed list admits only what it names; an
 *   empty one admits every host (whose addresses must still be public). Hosts are compared in
 *   WHATWG form (lower case, punycode, canonical IP), without one trailing dot, so
 *   `evil.example.` cannot slip past a denial of `evil.example`.
 * - Insecure http (issue 12, for local tests only): `http:` is accepted only when the caller sets
 *   `dangerouslyAllowInsecureHttp` AND the allowed list names this exact host WITH this exact
 *   port. The fetcher then accepts loopback addresses — and only loopback addresses — for it.
 */

import { matchesHostPattern, parseHostPattern } from '../config/host-patterns.js';

export { parseHostPattern } from '../config/host-patterns.js';

/** Longest client_id URL P fetches; the consent page has to show it. */
export const MAX_CLIENT_ID_LENGTH = 2000;

export type ClientIdRefusal = 'not_url' | 'too_long' | 'scheme' | 'userinfo' | 'fragment' | 'no_path' | 'dot_segments' | 'not_canonical' | 'host_denied' | 'host_not_allowed';

export interface HostTrustPolicy {
  /** `host`, `host:port` or `*.domain`; empty or absent ⇒ every (public) host */
  allowedHosts?: readonly string[];
  /** `host`, `host:port` or `*.domain`; always wins over allowedHosts */
  deniedHosts?: readonly string[];
  /** test-only: accept `http:` for a host:port listed exactly in allowedHosts */
  dangerouslyAllowInsecureHttp?: boolean;
}

export type ClientIdCheck =
  | {
      ok: true;
      url: URL;
      /** the host to resolve or the IP literal to check: no brackets, no trailing-dot trimming */
      hostname: string;
      /** the effective port (443/80 when the URL has none) */
      port: number;
      /** true only under the test-only insecure-http allowance */
      insecureHttp: boolean;
    }
  | { ok: false; reason: ClientIdRefusal; detail: string };

/** Whether a client_id is a URL, the shape of a Client ID Metadata Document client's id (DCR ids never are): the one test of it. */
export function looksLikeClientIdUrl(clientId: unknown): clientId is string {
  return typeof clientId === 'string' && /^https?:\/\//i.test(clientId);
}

/** The trust policy the configuration sets (CIMD_ALLOWED_HOSTS, CIMD_DENIED_HOSTS; the test-only http allowance). */
export function trustPolicyOf(config: { cimd: { allowedHosts: readonly string[]; deniedHosts: readonly string[] }; dangerouslyAllowInsecureHttp: boolean }): HostTrustPolicy {
  return { allowedHosts: config.cimd.allowedHosts, deniedHosts: config.cimd.deniedHosts, dangerouslyAllowInsecureHttp: config.dangerouslyAllowInsecureHttp };
}

// eslint-disable-next-line no-control-regex -- the characters refused are control characters
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f-\u009f]/;

/**
 * Decide whether `raw` is a client_id URL P may fetch, under the trust policy. Pure. Throws only
 * for a malformed policy entry.
 */
export function checkClientIdUrl(raw: string, policy: HostTrustPolicy = {}): ClientIdCheck {
  const no = (reason: ClientIdRefusal, detail: string): ClientIdCheck => ({ ok: false, reason, detail });
  if (typeof raw !== 'string') return no('not_url', 'client_id is not a string');
  if (raw.length > MAX_CLIENT_ID_LENGTH) return no('too_long', `client_id URL longer than ${MAX_CLIENT_ID_LENGTH} characters`);
  if (CONTROL_OR_SPACE.test(raw)) return no('not_url', 'client_id URL contains whitespace or control characters');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return no('not_url', 'client_id is not an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return no('scheme', 'client_id URL must use https (CIMD §3)');
  const start = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(raw);
  if (!start) return no('not_url', 'client_id URL must be written scheme://host/path');
  if ((start[1] as string).includes('@') || url.username || url.password) return no('userinfo', 'client_id URL must not contain user information (CIMD §3)');
  if (raw.includes('#')) return no('fragment', 'client_id URL must not contain a fragment (CIMD §3)');
  const rawPath = raw.slice(start[0].length).split('?')[0] as string;
  if (!rawPath.startsWith('/')) return no('no_path', 'client_id URL must contain a path (CIMD §3)');
  if (rawPath.split('/').some((segment) => /^(\.|%2e){1,2}$/i.test(segment))) {
    return no('dot_segments', 'client_id URL must not contain "." or ".." path segments (CIMD §3)');
  }
  if (raw !== url.href) return no('not_canonical', `client_id URL must be written in canonical form (${JSON.stringify(url.href.slice(0, 200))})`);
  // One trailing dot is the same host (stripped below); an empty label anywhere else is no host
  // name, and `evil.example..` would pass a deny list for `evil.example` (found by review).
  if (url.hostname.replace(/\.$/, '').split('.').includes('')) return no('not_url', 'client_id URL host has an empty label');

  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const host = url.hostname.replace(/\.$/, '');
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  const denied = (policy.deniedHosts ?? []).map(parseHostPattern);
  const allowed = (policy.allowedHosts ?? []).map(parseHostPattern);
  if (denied.some((p) => matchesHostPattern(p, host, port))) return no('host_denied', `host ${url.host} is on the denied list`);
  if (allowed.length > 0 && !allowed.some((p) => matchesHostPattern(p, host, port))) return no('host_not_allowed', `host ${url.host} is not on the allowed list`);

  let insecureHttp = false;
  if (url.protocol === 'http:') {
    const exactlyListed = allowed.some((p) => !p.wildcard && p.port === port && p.host === host);
    if (policy.dangerouslyAllowInsecureHttp !== true || !exactlyListed) {
      return no('scheme', 'client_id URL must use https (CIMD §3)');
    }
    insecureHttp = true;
  }
  return { ok: true, url, hostname, port, insecureHttp };
}
