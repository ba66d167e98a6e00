/**
 * The host patterns of CIMD_ALLOWED_HOSTS / CIMD_DENIED_HOSTS (`host`, `host:port`, `*.domain`):
 * parsed and matched here only — by the configuration schema, which refuses at start an entry this
 * cannot parse, and by the CIMD trust policy (src/cimd/client-id.ts) at every check (CIMD-01).
 */
import { isIP } from 'node:net';

export interface HostPattern {
  host: string;
  wildcard: boolean;
  port: number | undefined;
}

/** `example.com` → `example.com`; `Example.COM.` → `example.com`; `[::FFFF:7f00:1]` → `[::ffff:7f00:1]`. */
function canonicalHost(host: string): string | null {
  try {
    return new URL(`https://${host}/`).hostname.replace(/\.$/, '');
  } catch {
    return null;
  }
}

/**
 * Parse one allow/deny entry; throws on a malformed entry (a configuration error, not remote input).
 * A name holds none of `@ ? # \ %` or spaces: the URL parser would otherwise read `user@b.example`,
 * `b.example?x`, `b.example\x` as `b.example` and `%`-decode a name, so an entry would mean a host
 * other than the one written.
 */
export function parseHostPattern(entry: string): HostPattern {
  const match = /^(\*\.)?(\[[^\]]+\]|[^:/\\[\]*@?#%\s]+)(?::(\d{1,5}))?$/.exec(entry.trim());
  const host = match ? canonicalHost(match[2] as string) : null;
  const port = match?.[3] === undefined ? undefined : Number(match[3]);
  const wildcard = match?.[1] !== undefined;
  if (!match || !host || (port !== undefined && (port < 1 || port > 65535)) || (wildcard && isIpHost(host))) {
    throw new TypeError(`not a host, host:port or *.domain: ${JSON.stringify(entry)}`);
  }
  return { host, wildcard, port };
}

/** An IP literal in WHATWG form (`[…]` for IPv6). */
function isIpHost(host: string): boolean {
  return host.startsWith('[') || isIP(host) !== 0;
}

/** Does `host:port` (canonical) fall under the pattern? A wildcard covers names below its domain, never an IP address. */
export function matchesHostPattern(pattern: HostPattern, host: string, port: number): boolean {
  if (pattern.port !== undefined && pattern.port !== port) return false;
  return pattern.wildcard ? !isIpHost(host) && host.endsWith(`.${pattern.host}`) : host === pattern.host;
}
