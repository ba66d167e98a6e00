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
import { classify, UpstreamError } from './failures.js';
import { githubIdentity, githubTokenRefusals, githubUser, type UpstreamFetch } from './github.js';

export { UpstreamError, type UpstreamFailure } from './failures.js';

/** Upstream HTTP calls give up after this long unless UPSTREAM_TIMEOUT says otherwise. */
export const UPSTREAM_TIMEOUT_MS = 10_000;

export interface UpstreamClientOptions {
  dangerouslyAllowInsecureHttp: boolean;
  /** UPSTREAM_TIMEOUT: one call to U, ms */
  timeoutMs?: number;
}

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
  /**
   * Does U itself refuse this access token (GW-14, UP-08)? Asked of U's own API when R refused a
   * token nothing can renew: true only when U answers 401 (GitHub's user API; an OpenID provider's
   * userinfo endpoint), false when U accepts it, has no such endpoint, or gives any other answer.
   */
  refusesAccessToken(accessToken: string): Promise<boolean>;
  /** RFC 7009 revocation where U has an endpoint; false when it has none. */
  revoke(token: string, hint: 'access_token' | 'refresh_token'): Promise<boolean>;
}

function timedFetch(timeoutMs: number): UpstreamFetch {
  return (url: string, init?: RequestInit): Promise<Response> => fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
}

function tokensOf(response: client.TokenEndpointResponse): UpstreamTokens {
  return {
    accessToken: response.access_token,
    refreshToken: response.refresh_token,
    expiresAt: typeof response.expires_in === 'number' ? Date.now() + response.expires_in * 1000 : undefined,
    scope: response.scope,
  };
}

function insecureAllowed(url: URL, dangerously: boolean): boolean {
  return url.protocol === 'http:' && (isLoopbackHost(url.hostname) || dangerously);
}

/**
 * Lazily discovered/constructed openid-client Configuration with retry on the next call.
 * `forget` drops it, so the next call discovers again: U's document may have changed (a moved
 * endpoint, another key) — P follows it without a restart.
 */
function lazyConfiguration(load: () => Promise<client.Configuration>) {
  let pending: Promise<client.Configuration> | undefined;
  const get = () => {
    pending ??= load().catch((err) => {
      pending = undefined;
      throw err instanceof UpstreamError ? err : new UpstreamError('unreachable', `upstream discovery failed: ${(err as Error).message}`);
    });
    return pending;
  };
  return Object.assign(get, {
    forget: () => {
      pending = undefined;
    },
  });
}

/**
 * After a failed call to U: unless U answered with its own OAuth error (it understood the
 * request: its metadata is current), the cached metadata is dropped and the next call discovers
 * again — a token endpoint that moved (or answers 404, or garbage) is found where U's document
 * now says it is, without a restart (issue 13 §3: service recovers by itself).
 */
function forgetUnlessOAuthAnswer(ctx: UpstreamContext, err: unknown): void {
  if (!(err instanceof client.ResponseBodyError || err instanceof client.AuthorizationResponseError)) ctx.configuration.forget();
}

/** What every call to U shares: its settings, P's callback, and the configuration loaded once. */
interface UpstreamContext {
  upstream: UpstreamConfig;
  callbackUrl: string;
  isGithub: boolean;
  /** GitHub's REST API (github.com or GitHub Enterprise's `/api/v3`) */
  githubApi: string;
  configuration: ReturnType<typeof lazyConfiguration>;
  /** fetch with UPSTREAM_TIMEOUT */
  fetch: UpstreamFetch;
}

function upstreamContext(upstream: UpstreamConfig, callbackUrl: string, options: UpstreamClientOptions): UpstreamContext {
  const timeoutMs = options.timeoutMs ?? UPSTREAM_TIMEOUT_MS;
  const fetchU = timedFetch(timeoutMs);
  const insecure = insecureAllowed(upstream.issuer, options.dangerouslyAllowInsecureHttp);
  const auth = upstream.clientSecret ? client.ClientSecretBasic(upstream.clientSecret) : client.None();
  const isGithub = upstream.preset === 'github';
  const base = upstream.issuer.href.replace(/\/$/, '');
  const githubApi = upstream.issuer.hostname === 'github.com' ? 'https://api.github.com' : `${base}/api/v3`;

  const githubTokenEndpoint = `${base}/login/oauth/access_token`;

  const configuration = lazyConfiguration(async () => {
    let config: client.Configuration;
    if (isGithub) {
      config = new client.Configuration({ issuer: base, authorization_endpoint: `${base}/login/oauth/authorize`, token_endpoint: githubTokenEndpoint }, upstream.clientId, undefined, auth);
    } else {
      config = await client.discovery(upstream.issuer, upstream.clientId, undefined, auth, {
        execute: insecure ? [client.allowInsecureRequests] : [],
        timeout: timeoutMs / 1000,
      });
    }
    if (insecure) client.allowInsecureRequests(config);
    config[client.customFetch] = isGithub ? githubTokenRefusals(fetchU, githubTokenEndpoint) : fetchU;
    config.timeout = timeoutMs / 1000;
    return config;
  });
  return { upstream, callbackUrl, isGithub, githubApi, configuration, fetch: fetchU };
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
    // Never the library's message: undici's for an access token that is no valid header value (U
    // chose its characters) quotes the whole `Bearer <token>`. Its type, code and U's status only.
    const e = err as { name?: unknown; code?: unknown; status?: unknown; cause?: unknown };
    const status = typeof e.status === 'number' ? e.status : e.cause instanceof Response ? e.cause.status : undefined;
    const what = [e.name, e.code, status === undefined ? undefined : `HTTP ${status}`].filter((v): v is string => typeof v === 'string' && /^[\w .-]{1,64}$/.test(v));
    throw new UpstreamError('identity_failed', `could not learn the upstream subject from its userinfo endpoint${what.length ? ` (${what.join(', ')})` : ''}`);
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
    forgetUnlessOAuthAnswer(ctx, err);
    throw classify(err, 'exchange', { callbackUrl: currentUrl, metadata: config.serverMetadata() });
  }
  const tokens = tokensOf(response);
  const identity = ctx.isGithub ? await githubIdentity(ctx.fetch, ctx.githubApi, tokens.accessToken) : await oidcIdentity(config, response, tokens.accessToken);
  return { identity, tokens };
}

async function refresh(ctx: UpstreamContext, refreshToken: string): Promise<UpstreamTokens> {
  const config = await ctx.configuration();
  try {
    return tokensOf(await client.refreshTokenGrant(config, refreshToken));
  } catch (err) {
    forgetUnlessOAuthAnswer(ctx, err);
    throw classify(err, 'refresh');
  }
}

/**
 * U's own word on an access token R refused and nothing can renew (GW-14): GitHub's user API, or
 * the OpenID provider's userinfo endpoint, asked with it. Only a 401 counts as a refusal; a network
 * failure, a timeout or any other status says nothing about the token.
 */
async function refusesAccessToken(ctx: UpstreamContext, accessToken: string): Promise<boolean> {
  try {
    // U's discovery failing is U not answering too (review 2026-12-07: it threw, and R's 401 became a 500).
    const userinfo = ctx.isGithub ? undefined : (await ctx.configuration()).serverMetadata().userinfo_endpoint;
    if (!ctx.isGithub && !userinfo) return false;
    const res = ctx.isGithub
      ? await githubUser(ctx.fetch, ctx.githubApi, accessToken)
      : await ctx.fetch(userinfo as string, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json', 'user-agent': 'mcp-consent-proxy' } });
    await res.body?.cancel();
    return res.status === 401;
  } catch {
    return false;
  }
}

async function revoke(ctx: UpstreamContext, token: string, hint: 'access_token' | 'refresh_token'): Promise<boolean> {
  const config = await ctx.configuration();
  if (!config.serverMetadata().revocation_endpoint) return false;
  await client.tokenRevocation(config, token, { token_type_hint: hint });
  return true;
}

export function createUpstreamClient(upstream: UpstreamConfig, callbackUrl: string, options: UpstreamClientOptions): UpstreamClient {
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
    refusesAccessToken: (accessToken) => refusesAccessToken(ctx, accessToken),
    revoke: (token, hint) => revoke(ctx, token, hint),
  };
}
