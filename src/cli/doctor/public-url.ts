/**
 * Doctor: does PUBLIC_URL reach this proxy from this host, and does TRUST_PROXY match the way it
 * does? Every URL derives from PUBLIC_URL and strict clients compare the issuer byte for byte
 * (DESIGN §1, interop F12), so the check fetches P's RFC 8414 metadata at PUBLIC_URL and
 * compares its `issuer`. TRUST_PROXY decides the client address used for rate limits and the
 * audit log (README "Behind a reverse proxy"): behind a proxy it must be set, or every client
 * shares the proxy's budget; with clients connecting directly it must not be, or any client
 * picks its own address with X-Forwarded-For.
 */
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import type { Config } from '../../config/load.js';
import { isLoopbackHost } from '../../config/urls.js';
import { describeResponse, fail, jsonBody, pass, probe, skipped, type CheckResult, type DoctorOptions } from './check.js';

const PUBLIC_URL_TITLE = 'PUBLIC_URL answers as this proxy';
const PROXY_TITLE = 'TRUST_PROXY matches how PUBLIC_URL reaches the server';

/** What the public-URL probe saw, for the proxy check. */
export interface PublicUrlSeen {
  answered: boolean;
  /** the response's Via header, when a proxy added one */
  via: string | null;
}

/** RFC 8414 §3.1: the metadata URL, the well-known suffix inserted before PUBLIC_URL's path. */
export function metadataUrl(config: Readonly<Config>): string {
  return `${config.urls.origin}/.well-known/oauth-authorization-server${config.urls.basePath}`;
}

export async function checkPublicUrl(config: Readonly<Config>, options: DoctorOptions): Promise<{ result: CheckResult; seen: PublicUrlSeen }> {
  const url = metadataUrl(config);
  const notAnswered = { answered: false, via: null };
  const got = await probe(url, { headers: { accept: 'application/json' } }, options);
  if (!got.ok) {
    const fix = `Start the server here (mcp-consent-proxy serve), then make PUBLIC_URL reach it from this host: DNS for ${new URL(config.urls.origin).host}, the firewall, and your reverse proxy forwarding ${config.urls.origin} to this server's HOST:PORT (${config.host}:${config.port}).`;
    return { result: fail('public-url', PUBLIC_URL_TITLE, `${url}: ${got.problem}`, fix), seen: notAnswered };
  }
  const seen = { answered: true, via: got.res.headers.get('via') };
  const body = got.res.status === 200 ? await jsonBody(got.res) : undefined;
  if (typeof body?.issuer !== 'string') {
    const fix = `Point ${new URL(config.urls.origin).host} at this server and have the reverse proxy forward every path under PUBLIC_URL to it, /.well-known/ at the origin included (README "Behind a reverse proxy").`;
    return { result: fail('public-url', PUBLIC_URL_TITLE, `${url} answers ${describeResponse(got.res)}, not this proxy's metadata`, fix), seen: { ...seen, answered: false } };
  }
  if (body.issuer !== config.urls.issuer) {
    const fix = `The proxy answering there runs with PUBLIC_URL=${body.issuer}. Give doctor the server's own configuration, or set one PUBLIC_URL for both: clients compare it byte for byte (scheme, host, port, path).`;
    return { result: fail('public-url', PUBLIC_URL_TITLE, `${url} answers as issuer ${body.issuer}, not ${config.urls.issuer}`, fix), seen: { ...seen, answered: false } };
  }
  return { result: pass('public-url', PUBLIC_URL_TITLE, `${url} answers with issuer ${config.urls.issuer}`), seen };
}

/** Addresses of this host: loopback, its interfaces, and HOST when it names one. */
function localAddresses(config: Readonly<Config>): Set<string> {
  const addresses = new Set<string>([config.host]);
  for (const list of Object.values(networkInterfaces())) for (const info of list ?? []) addresses.add(info.address);
  return addresses;
}

/**
 * How PUBLIC_URL reaches the server: directly (plain http to this host's PORT, no Via header)
 * or through something in front (TLS terminated before it — the server speaks plain http only —,
 * another port, another host, a Via header). undefined: direct; else the evidence of a proxy.
 */
export async function proxyEvidence(config: Readonly<Config>, seen: PublicUrlSeen): Promise<string | undefined> {
  const url = new URL(config.urls.origin);
  if (seen.via) return `the answer carries "Via: ${seen.via}"`;
  if (url.protocol === 'https:') return 'PUBLIC_URL is https, and this server speaks plain http: TLS ends in front of it';
  const port = Number(url.port || 80);
  if (port !== config.port) return `PUBLIC_URL's port ${port} is not the server's PORT ${config.port}`;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isLoopbackHost(host)) return undefined;
  const resolved = await lookup(host, { all: true }).catch(() => []);
  const local = localAddresses(config);
  return resolved.some((r) => local.has(r.address)) ? undefined : `${host} is another host than this one`;
}

export async function checkTrustProxy(config: Readonly<Config>, seen: PublicUrlSeen): Promise<CheckResult> {
  if (!seen.answered) return skipped('proxy', PROXY_TITLE, 'needs PUBLIC_URL to answer as this proxy (above)');
  const trust = config.trustProxy;
  const shown = Array.isArray(trust) ? trust.join(',') : String(trust);
  // Express `trust proxy` true takes the left-most X-Forwarded-For address, which the client writes.
  if (trust === true) {
    return fail(
      'proxy',
      PROXY_TITLE,
      'TRUST_PROXY=true trusts every address in X-Forwarded-For, the client-supplied first one included: any client picks its own rate-limit key and audit address',
      'Set TRUST_PROXY to the number of proxies in front (TRUST_PROXY=1 for one) or to their addresses.',
    );
  }
  const evidence = await proxyEvidence(config, seen);
  if (evidence && trust === false) {
    return fail(
      'proxy',
      PROXY_TITLE,
      `PUBLIC_URL reaches the server through a proxy (${evidence}), but TRUST_PROXY=false: every client shares the proxy's address — one budget per RATE_LIMIT_*, and the proxy's address in the audit log`,
      'Set TRUST_PROXY to the number of proxies in front (TRUST_PROXY=1 for one) or to their addresses.',
    );
  }
  if (!evidence && typeof trust === 'number') {
    return fail(
      'proxy',
      PROXY_TITLE,
      `clients reach the server directly (PUBLIC_URL is this host's PORT ${config.port}), yet TRUST_PROXY=${shown} believes X-Forwarded-For: any client picks its own rate-limit key and audit address`,
      'Set TRUST_PROXY=false, or put the proxy in front and PUBLIC_URL on it.',
    );
  }
  return pass('proxy', PROXY_TITLE, evidence ? `behind a proxy (${evidence}), TRUST_PROXY=${shown}` : `clients connect directly, TRUST_PROXY=${shown}`);
}
