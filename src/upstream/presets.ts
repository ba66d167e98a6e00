/**
 * P as an OAuth client of the upstream U (openid-client), one module for all presets:
 * - `oidc`: any OpenID Connect provider, by discovery of UPSTREAM_ISSUER (UP-06: issuer must
 *   match; ID token iss/aud/exp/nonce validated by openid-client).
 * - `google`: the same, with Google's issuer.
 * - `github`: OAuth 2 endpoints without discovery (`/login/oauth/authorize`,
 *   `/login/oauth/access_token`), identity from the user API, the numeric id as subject. The
 *   base URL may be GitHub Enterprise (UPSTREAM_ISSUER), whose API lives under `/api/v3`.
 * Every authorization uses P's fixed callback (UP-01), P's own PKCE S256 verifier (UP-02) and
 * exactly the configured upstream scopes (UP-03); nothing from the MCP client is sent (UP-04).
 * U's `iss` on the authorization response is checked when U sends it or advertises it (RFC
 * 9207, UP-05). The client secret never leaves this module (UP-10).
 */
import * as client from 'openid-client';
import type { UpstreamConfig } from '../config/load.js';
import { isLoopbackHost } from '../config/urls.js';

/** Upstream HTTP calls give up after this long. */
export const UPSTREAM_TIMEOUT_MS = 10_000;

export interface UpstreamIdentity {
  subject: string;
  displayName?: string | undefined;
}

export interface UpstreamTokens {
  accessToken: string;
  refreshToken?: string | undefined;
  /** ms since epoch */
  expiresAt?: number | undefined;
  scope?: string | undefined;
}

/** What a successful code exchange at U yields. */
export interface UpstreamExchange {
  identity: UpstreamIdentity;
  tokens: UpstreamTokens;
}

export interface AuthorizationChecks {
  state: string;
  nonce: string;
  codeVerifier: string;
}

/** Why a callback or refresh failed, as audit reason codes. */
export type UpstreamFailure = 'upstream_error' | 'iss_mismatch' | 'exchange_failed' | 'identity_failed' | 'invalid_grant' | 'unreachable';

export class UpstreamError extends Error {
  constructor(
    readonly reason: UpstreamFailure,
    message: string,
    /** U's own error code, when it sent one (sanitised) */
    readonly upstreamCode?: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

export interface UpstreamClient {
  readonly name: string;
  readonly scopes: readonly string[];
  /** U's metadata is loaded (discovery done); throws UpstreamError('unreachable') otherwise. */
  ready(): Promise<void>;
  /** Origin of U's authorization endpoint (for the consent page's CSP form-action). */
  authorizationOrigin(): Promise<string>;
  authorizationUrl(checks: AuthorizationChecks): Promise<URL>;
  /** Redeem the code on the callback URL; returns who logged in and their tokens. */
  exchange(callbackUrl: URL, checks: AuthorizationChecks): Promise<UpstreamExchange>;
  refresh(refreshToken: string): Promise<UpstreamTokens>;
  /** RFC 7009 revocation where U has an endpoint; false when it has none. */
  revoke(token: string, hint: 'access_token' | 'refresh_token'): Promise<boolean>;
}

const safeCode = (value: unknown) => (typeof value === 'string' ? value.replace(/[^\w.-]/g, '').slice(0, 64) : undefined);

function timedFetch(url: string, init?: RequestInit): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS) });
}

function tokensOf(response: client.TokenEndpointResponse): UpstreamTokens {
  return {
    accessToken: response.access_token,
    refreshToken: response.refresh_token,
    expiresAt: typeof response.expires_in === 'number' ? Date.now() + response.expires_in * 1000 : undefined,
    scope: response.scope,
  };
}

/** oauth4webapi's code for a refused response, which openid-client passes on (ClientError.code). */
const INVALID_RESPONSE = 'OAUTH_INVALID_RESPONSE';

/**
 * RFC 9207 / UP-05: is the authorization response's `iss` wrong — present and not U's issuer, or
 * absent while U says it sends one? oauth4webapi checks this before anything else in the
 * response, so when it refused the response and this holds, the refusal was about `iss`.
 */
function issuerProblem(callbackUrl: URL | undefined, metadata: client.ServerMetadata | undefined): boolean {
  if (!callbackUrl || !metadata) return false;
  const iss = callbackUrl.searchParams.get('iss');
  return iss === null ? metadata.authorization_response_iss_parameter_supported === true : iss !== metadata.issuer;
}

/** A network failure: undici's fetch error carries the system or undici error code in `cause`. */
function isNetworkFailure(e: { name?: string; code?: unknown; cause?: { code?: unknown } }): boolean {
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return true;
  const code = typeof e.code === 'string' ? e.code : typeof e.cause?.code === 'string' ? e.cause.code : '';
  return /^(E[A-Z]+|UND_ERR_\w+)$/.test(code);
}

/**
 * Map openid-client errors to our reasons by their type and code — never by their message text —
 * without echoing U's free text (UP-09).
 */
function classify(err: unknown, during: 'exchange' | 'refresh', response?: { callbackUrl: URL; metadata: client.ServerMetadata }): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof client.AuthorizationResponseError) {
    return new UpstreamError('upstream_error', 'the upstream refused the authorization', safeCode(err.error));
  }
  if (err instanceof client.ResponseBodyError) {
    const code = safeCode(err.error);
    return new UpstreamError(code === 'invalid_grant' ? 'invalid_grant' : during === 'exchange' ? 'exchange_failed' : 'upstream_error', `the upstream token endpoint answered ${code}`, code);
  }
  const e = err as { code?: unknown; name?: string; message?: string; cause?: { code?: unknown; message?: string } };
  if (e.code === INVALID_RESPONSE && issuerProblem(response?.callbackUrl, response?.metadata)) {
    return new UpstreamError('iss_mismatch', 'the authorization response came from another issuer (RFC 9207)');
  }
  if (isNetworkFailure(e)) return new UpstreamError('unreachable', 'the upstream did not answer');
  // openid-client wraps oauth4webapi's precise message in `cause`: logged, never shown.
  const detail = `${e.message ?? ''} ${e.cause?.message ?? ''}`.trim();
  return new UpstreamError(during === 'exchange' ? 'exchange_failed' : 'upstream_error', detail || 'upstream request failed', typeof e.code === 'string' ? e.code : undefined);
}

function insecureAllowed(url: URL, dangerously: boolean): boolean {
  return url.protocol === 'http:' && (isLoopbackHost(url.hostname) || dangerously);
}

/** Lazily discovered/constructed openid-client Configuration with retry on the next call. */
function lazyConfiguration(load: () => Promise<client.Configuration>) {
  let pending: Promise<client.Configuration> | undefined;
  return () => {
    pending ??= load().catch((err) => {
      pending = undefined;
      throw err instanceof UpstreamError ? err : new UpstreamError('unreachable', `upstream discovery failed: ${(err as Error).message}`);
    });
    return pending;
  };
}

/** What every call to U shares: its settings, P's callback, and the configuration loaded once. */
interface UpstreamContext {
  upstream: UpstreamConfig;
  callbackUrl: string;
  isGithub: boolean;
  /** GitHub's REST API (github.com or GitHub Enterprise's `/api/v3`) */
  githubApi: string;
  configuration: () => Promise<client.Configuration>;
}

function upstreamContext(upstream: UpstreamConfig, callbackUrl: string, options: { dangerouslyAllowInsecureHttp: boolean }): UpstreamContext {
  const insecure = insecureAllowed(upstream.issuer, options.dangerouslyAllowInsecureHttp);
  const auth = upstream.clientSecret ? client.ClientSecretBasic(upstream.clientSecret) : client.None();
  const isGithub = upstream.preset === 'github';
  const base = upstream.issuer.href.replace(/\/$/, '');
  const githubApi = upstream.issuer.hostname === 'github.com' ? 'https://api.github.com' : `${base}/api/v3`;

  const configuration = lazyConfiguration(async () => {
    let config: client.Configuration;
    if (isGithub) {
      config = new client.Configuration(
        { issuer: base, authorization_endpoint: `${base}/login/oauth/authorize`, token_endpoint: `${base}/login/oauth/access_token` },
        upstream.clientId,
        undefined,
        auth,
      );
    } else {
      config = await client.discovery(upstream.issuer, upstream.clientId, undefined, auth, {
        execute: insecure ? [client.allowInsecureRequests] : [],
        timeout: UPSTREAM_TIMEOUT_MS / 1000,
      });
    }
    if (insecure) client.allowInsecureRequests(config);
    config[client.customFetch] = timedFetch;
    config.timeout = UPSTREAM_TIMEOUT_MS / 1000;
    return config;
  });
  return { upstream, callbackUrl, isGithub, githubApi, configuration };
}

/** GitHub: the user API names who logged in; the numeric id is the subject. */
async function githubIdentity(githubApi: string, accessToken: string): Promise<UpstreamIdentity> {
  let res: Response;
  try {
    res = await timedFetch(`${githubApi}/user`, {
      headers: { authorization: `Bearer ${accessToken}`, accept: 'application/vnd.github+json', 'user-agent': 'mcp-consent-proxy' },
    });
  } catch {
    throw new UpstreamError('unreachable', 'the GitHub user API did not answer');
  }
  const body = (await res.json().catch(() => undefined)) as { id?: unknown; login?: unknown } | undefined;
  if (!res.ok || (typeof body?.id !== 'number' && typeof body?.id !== 'string')) {
    throw new UpstreamError('identity_failed', `the GitHub user API answered ${res.status}`);
  }
  return { subject: String(body.id), displayName: typeof body.login === 'string' ? body.login : undefined };
}

/** OpenID Connect: the subject from the ID token, else from the userinfo endpoint. */
async function oidcIdentity(config: client.Configuration, response: Awaited<ReturnType<typeof client.authorizationCodeGrant>>, accessToken: string): Promise<UpstreamIdentity> {
  const claims = response.claims();
  if (claims?.sub) {
    const name = [claims.preferred_username, claims.email, claims.name].find((v) => typeof v === 'string') as string | undefined;
    return { subject: claims.sub, displayName: name };
  }
  try {
    const info = await client.fetchUserInfo(config, accessToken, client.skipSubjectCheck);
    return { subject: info.sub, displayName: (info.preferred_username ?? info.email) as string | undefined };
  } catch (err) {
    throw new UpstreamError('identity_failed', `could not learn the upstream subject: ${(err as Error).message}`);
  }
}

async function authorizationUrl(ctx: UpstreamContext, checks: AuthorizationChecks): Promise<URL> {
  const config = await ctx.configuration();
  const params: Record<string, string> = {
    redirect_uri: ctx.callbackUrl,
    scope: ctx.upstream.scopes.join(' '),
    state: checks.state,
    code_challenge: await client.calculatePKCECodeChallenge(checks.codeVerifier),
    code_challenge_method: 'S256',
  };
  if (!ctx.isGithub) params.nonce = checks.nonce;
  if (ctx.isGithub) params.allow_signup = 'false';
  return client.buildAuthorizationUrl(config, params);
}

async function exchange(ctx: UpstreamContext, currentUrl: URL, checks: AuthorizationChecks): Promise<UpstreamExchange> {
  const config = await ctx.configuration();
  let response;
  try {
    response = await client.authorizationCodeGrant(config, currentUrl, {
      pkceCodeVerifier: checks.codeVerifier,
      expectedState: checks.state,
      ...(ctx.isGithub ? {} : { expectedNonce: checks.nonce }),
      idTokenExpected: !ctx.isGithub && ctx.upstream.scopes.includes('openid'),
    });
  } catch (err) {
    throw classify(err, 'exchange', { callbackUrl: currentUrl, metadata: config.serverMetadata() });
  }
  const tokens = tokensOf(response);
  const identity = ctx.isGithub ? await githubIdentity(ctx.githubApi, tokens.accessToken) : await oidcIdentity(config, response, tokens.accessToken);
  return { identity, tokens };
}

async function refresh(ctx: UpstreamContext, refreshToken: string): Promise<UpstreamTokens> {
  const config = await ctx.configuration();
  try {
    return tokensOf(await client.refreshTokenGrant(config, refreshToken));
  } catch (err) {
    throw classify(err, 'refresh');
  }
}

async function revoke(ctx: UpstreamContext, token: string, hint: 'access_token' | 'refresh_token'): Promise<boolean> {
  const config = await ctx.configuration();
  if (!config.serverMetadata().revocation_endpoint) return false;
  await client.tokenRevocation(config, token, { token_type_hint: hint });
  return true;
}

export function createUpstreamClient(upstream: UpstreamConfig, callbackUrl: string, options: { dangerouslyAllowInsecureHttp: boolean }): UpstreamClient {
  const ctx = upstreamContext(upstream, callbackUrl, options);
  return {
    name: upstream.name,
    scopes: upstream.scopes,
    async ready() {
      await ctx.configuration();
    },
    async authorizationOrigin() {
      const config = await ctx.configuration();
      return new URL(config.serverMetadata().authorization_endpoint as string).origin;
    },
    authorizationUrl: (checks) => authorizationUrl(ctx, checks),
    exchange: (currentUrl, checks) => exchange(ctx, currentUrl, checks),
    refresh: (refreshToken) => refresh(ctx, refreshToken),
    revoke: (token, hint) => revoke(ctx, token, hint),
  };
}
