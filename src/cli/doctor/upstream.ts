/**
 * Doctor: the upstream U as the server will use it (src/upstream/presets.ts). Discovery (UP-06:
 * the document's issuer must be UPSTREAM_ISSUER exactly; authorization and token endpoints;
 * PKCE S256, which P always sends, UP-02), then two probes that show whether U knows P's
 * client — nothing is granted by either:
 * - the authorization request P would send (P's fixed callback, UP-01; its scopes, UP-03; PKCE),
 *   not followed: U refusing it names an unknown client id or an unregistered callback URL;
 * - a code exchange with a made-up code, authenticated as P (client_secret_basic, as the server
 *   does; UP-10: the secret goes nowhere else): `invalid_grant` means U accepted the client
 *   and refused only the code, `invalid_client` means the credentials are wrong.
 * And the clock against U's `Date` header (ID tokens' iat/exp are checked with openid-client's
 * 30 s tolerance).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Config, UpstreamConfig } from '../../config/load.js';
import { describeResponse, fail, jsonBody, pass, probe, skipped, unchecked, type CheckResult, type DoctorOptions, type Fetched } from './check.js';

/** U's endpoints as the server will use them, and the response they came in (for its Date). */
export interface UpstreamSeen {
  authorizationEndpoint: string;
  tokenEndpoint: string;
  /** code_challenge_methods_supported, when U publishes it */
  pkceMethods: string[] | undefined;
  /** when U's answer was received, and its Date header */
  receivedAt: number;
  date: string | null;
}

const DISCOVERY = 'upstream discovery';
const base = (upstream: UpstreamConfig) => upstream.issuer.href.replace(/\/$/, '');

/** GitHub publishes no metadata: its fixed endpoints (src/upstream/presets.ts), reached once for the Date header. */
async function githubEndpoints(upstream: UpstreamConfig, options: DoctorOptions): Promise<{ result: CheckResult; seen?: UpstreamSeen }> {
  const authorizationEndpoint = `${base(upstream)}/login/oauth/authorize`;
  const got = await probe(authorizationEndpoint, {}, options);
  if (!got.ok) return { result: fail('upstream-discovery', DISCOVERY, `${authorizationEndpoint}: ${got.problem}`, unreachableFix(upstream)) };
  const seen = { authorizationEndpoint, tokenEndpoint: `${base(upstream)}/login/oauth/access_token`, pkceMethods: undefined, receivedAt: got.receivedAt, date: got.res.headers.get('date') };
  return { result: pass('upstream-discovery', DISCOVERY, `GitHub publishes no metadata: fixed endpoints ${seen.authorizationEndpoint} and ${seen.tokenEndpoint}, reachable`), seen };
}

const unreachableFix = (upstream: UpstreamConfig) =>
  upstream.preset === 'github'
    ? `Check DNS and that this host may reach ${upstream.issuer.href} (a container needs outbound HTTPS).`
    : `Check UPSTREAM_ISSUER (${upstream.issuer.href}: the issuer itself, without /.well-known/…), DNS, and that this host may reach it (a container needs outbound HTTPS).`;

/** OpenID Connect discovery as openid-client does it: `<issuer>/.well-known/openid-configuration`. */
export async function checkDiscovery(upstream: UpstreamConfig, options: DoctorOptions): Promise<{ result: CheckResult; seen?: UpstreamSeen }> {
  if (upstream.preset === 'github') return githubEndpoints(upstream, options);
  const url = `${base(upstream)}/.well-known/openid-configuration`;
  const got = await probe(url, { headers: { accept: 'application/json' } }, options);
  if (!got.ok) return { result: fail('upstream-discovery', DISCOVERY, `${url}: ${got.problem}`, unreachableFix(upstream)) };
  const doc = got.res.status === 200 ? await jsonBody(got.res) : undefined;
  if (!doc) return { result: fail('upstream-discovery', DISCOVERY, `${url} answers ${describeResponse(got.res)}, not a discovery document`, unreachableFix(upstream)) };
  // UP-06: the issuer in the document must be the configured one, exactly (as oauth4webapi compares it).
  const issuer = typeof doc.issuer === 'string' ? doc.issuer : '';
  if (!URL.canParse(issuer) || new URL(issuer).href !== upstream.issuer.href) {
    const fix = `Set UPSTREAM_ISSUER=${issuer || '<the issuer U names>'} — exactly the issuer U names (scheme, host, port, path, trailing slash); the server refuses a provider whose document names another.`;
    return { result: fail('upstream-discovery', DISCOVERY, `${url} names issuer ${JSON.stringify(issuer)}, not UPSTREAM_ISSUER ${upstream.issuer.href}`, fix) };
  }
  const missing = ['authorization_endpoint', 'token_endpoint'].filter((k) => typeof doc[k] !== 'string');
  if (missing.length) {
    const fix = 'This provider cannot serve as an OAuth authorization server for the proxy as discovered; check that UPSTREAM_ISSUER is the provider (realm, tenant) that signs users in.';
    return { result: fail('upstream-discovery', DISCOVERY, `${url} has no ${missing.join(' and ')}`, fix) };
  }
  const methods = doc.code_challenge_methods_supported;
  const seen: UpstreamSeen = {
    authorizationEndpoint: doc.authorization_endpoint as string,
    tokenEndpoint: doc.token_endpoint as string,
    pkceMethods: Array.isArray(methods) ? methods.map(String) : undefined,
    receivedAt: got.receivedAt,
    date: got.res.headers.get('date'),
  };
  return { result: pass('upstream-discovery', DISCOVERY, `issuer ${issuer}; authorization ${seen.authorizationEndpoint}; token ${seen.tokenEndpoint}`), seen };
}

/** UP-02: P sends PKCE S256 on every authorization; U must accept it. */
export function checkPkce(seen: UpstreamSeen | undefined): CheckResult {
  const title = 'upstream supports PKCE S256';
  if (!seen) return skipped('upstream-pkce', title, 'needs upstream discovery (above)');
  if (!seen.pkceMethods)
    return unchecked('upstream-pkce', title, 'the upstream does not publish code_challenge_methods_supported; the proxy sends S256 anyway, and a provider without PKCE ignores it');
  if (!seen.pkceMethods.includes('S256')) {
    return fail(
      'upstream-pkce',
      title,
      `code_challenge_methods_supported is [${seen.pkceMethods.join(', ')}], without S256`,
      'Enable PKCE with S256 for this client at the upstream (the proxy always sends S256 and never plain).',
    );
  }
  return pass('upstream-pkce', title, 'S256 is in code_challenge_methods_supported');
}

const pkcePair = () => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};

/** The authorization request P sends (src/upstream/presets.ts authorizationUrl), with throwaway state and PKCE. */
function authorizationRequest(config: Readonly<Config>, upstream: UpstreamConfig, seen: UpstreamSeen): string {
  const url = new URL(seen.authorizationEndpoint);
  const params: Record<string, string> = {
    response_type: 'code',
    client_id: upstream.clientId,
    redirect_uri: config.urls.upstreamCallback,
    scope: upstream.scopes.join(' '),
    state: randomBytes(16).toString('base64url'),
    code_challenge: pkcePair().challenge,
    code_challenge_method: 'S256',
  };
  if (upstream.preset === 'github') params.allow_signup = 'false';
  else params.nonce = randomBytes(16).toString('base64url');
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.href;
}

const ERROR_CODE = /\b(invalid_client|unauthorized_client|invalid_redirect_uri|redirect_uri_mismatch|invalid_scope|invalid_request|access_denied)\b/;

function clientRefusedFix(config: Readonly<Config>, upstream: UpstreamConfig, code: string | undefined): string {
  const callback = `Register exactly ${config.urls.upstreamCallback} as the callback (redirect) URL of client ${upstream.clientId} at the upstream`;
  if (code === 'invalid_redirect_uri' || code === 'redirect_uri_mismatch') return `${callback}.`;
  if (code === 'invalid_client' || code === 'unauthorized_client')
    return `Check UPSTREAM_CLIENT_ID: the upstream does not know client ${upstream.clientId} (or does not allow it the authorization code flow).`;
  if (code === 'invalid_scope') return `Check UPSTREAM_SCOPES (${upstream.scopes.join(' ')}): the upstream refuses one of them for this client.`;
  return `Check UPSTREAM_CLIENT_ID (${upstream.clientId}), UPSTREAM_SCOPES, and: ${callback}.`;
}

/** The authorization-URL probe: does U take P's client id, callback URL and scopes (without signing anyone in)? */
export async function checkAuthorizationRequest(config: Readonly<Config>, upstream: UpstreamConfig, seen: UpstreamSeen | undefined, options: DoctorOptions): Promise<CheckResult> {
  const title = 'upstream accepts the client id and callback URL';
  if (!seen) return skipped('upstream-client', title, 'needs upstream discovery (above)');
  const got = await probe(authorizationRequest(config, upstream, seen), {}, options);
  if (!got.ok) return fail('upstream-client', title, `${seen.authorizationEndpoint}: ${got.problem}`, unreachableFix(upstream));
  const location = got.res.headers.get('location');
  const back = location && URL.canParse(location, seen.authorizationEndpoint) ? new URL(location, seen.authorizationEndpoint) : undefined;
  if (back && `${back.origin}${back.pathname}` === config.urls.upstreamCallback && back.searchParams.has('error')) {
    const code = back.searchParams.get('error') ?? undefined;
    return fail('upstream-client', title, `the upstream sent the request back to the callback with error=${code}`, clientRefusedFix(config, upstream, code));
  }
  if (got.res.status >= 400) {
    const code = ERROR_CODE.exec(await got.res.text().catch(() => ''))?.[1];
    return fail('upstream-client', title, `the upstream refused the authorization request: ${describeResponse(got.res)}${code ? ` (${code})` : ''}`, clientRefusedFix(config, upstream, code));
  }
  const next = back ? `it went on to ${back.origin}${back.pathname}` : `it answered ${describeResponse(got.res)}`;
  return pass('upstream-client', title, `the upstream took the authorization request for client ${upstream.clientId} and callback ${config.urls.upstreamCallback} (${next}; a sign-in would follow)`);
}

/** What U's token endpoint said to a made-up code, as an OAuth error code (GitHub answers 200 with one). */
async function tokenError(got: Extract<Fetched, { ok: true }>): Promise<string | undefined> {
  const body = await jsonBody(got.res);
  if (typeof body?.error === 'string') return body.error;
  const form = new URLSearchParams(got.res.headers.get('content-type')?.includes('form') ? await got.res.text().catch(() => '') : '');
  return form.get('error') ?? (got.res.status === 401 ? 'invalid_client' : undefined);
}

/** The credentials probe: a code exchange with a made-up code, authenticated as the server authenticates. */
export async function checkClientCredentials(config: Readonly<Config>, upstream: UpstreamConfig, seen: UpstreamSeen | undefined, options: DoctorOptions): Promise<CheckResult> {
  const title = upstream.clientSecret ? 'upstream accepts the client id and secret' : 'upstream accepts the public client id';
  if (!seen) return skipped('upstream-secret', title, 'needs upstream discovery (above)');
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    code: `doctor-${randomBytes(12).toString('hex')}`,
    redirect_uri: config.urls.upstreamCallback,
    code_verifier: pkcePair().verifier,
  });
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  // RFC 6749 §2.3.1: client_secret_basic, the id and secret form-encoded first (as openid-client sends them)
  if (upstream.clientSecret) headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(upstream.clientId)}:${encodeURIComponent(upstream.clientSecret)}`).toString('base64')}`;
  else body.set('client_id', upstream.clientId);
  const got = await probe(seen.tokenEndpoint, { method: 'POST', headers, body }, options);
  if (!got.ok) return fail('upstream-secret', title, `${seen.tokenEndpoint}: ${got.problem}`, unreachableFix(upstream));
  const code = await tokenError(got);
  if (code === 'unauthorized_client') {
    return fail(
      'upstream-secret',
      title,
      `the token endpoint accepted the client but does not allow it the authorization code grant (${code})`,
      'Allow the authorization code grant (and refresh tokens) for this client at the upstream.',
    );
  }
  if (code === 'invalid_client' || code === 'incorrect_client_credentials') {
    const fix = upstream.clientSecret
      ? `Set UPSTREAM_CLIENT_ID and UPSTREAM_CLIENT_SECRET to the client's id and a current secret from the upstream's console (secrets expire or get rotated; the secret is sent with client_secret_basic).`
      : 'This client needs a secret at the upstream: set UPSTREAM_CLIENT_SECRET (or make the client public there).';
    return fail('upstream-secret', title, `the token endpoint refused the client: ${code}`, fix);
  }
  if (code === 'invalid_grant' || code === 'bad_verification_code')
    return pass('upstream-secret', title, `the token endpoint accepted client ${upstream.clientId} and refused only a made-up code (${code})`);
  return unchecked(
    'upstream-secret',
    title,
    `the token endpoint answered ${describeResponse(got.res)}${code ? ` with ${code}` : ''} to a made-up code, which does not say whether it accepted the client`,
  );
}

/** openid-client's (oauth4webapi's) default clock tolerance for ID token iat/exp, seconds. */
export const CLOCK_TOLERANCE_S = 30;

export function checkClock(seen: UpstreamSeen | undefined): CheckResult {
  const title = "clock agrees with the upstream's";
  if (!seen) return skipped('clock', title, 'needs an answer from the upstream (above)');
  const date = seen.date ? Date.parse(seen.date) : NaN;
  if (Number.isNaN(date)) return unchecked('clock', title, 'the upstream sent no Date header');
  // Date has whole seconds: this host is ahead by `skew`, ±1 s.
  const skew = Math.round((seen.receivedAt - date) / 1000);
  const said =
    Math.abs(skew) <= 1
      ? "this host's clock agrees with the upstream's Date (within its 1 s resolution)"
      : `this host's clock is ${Math.abs(skew)} s ${skew > 0 ? 'ahead of' : 'behind'} the upstream's Date`;
  if (Math.abs(skew) > CLOCK_TOLERANCE_S + 1)
    return fail('clock', title, said, `Run NTP (e.g. systemd-timesyncd or chrony) on this host: ID tokens are refused beyond ${CLOCK_TOLERANCE_S} s of skew.`);
  return pass('clock', title, said);
}
