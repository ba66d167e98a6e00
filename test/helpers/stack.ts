/**
 * The whole cast on loopback: P (127.0.0.1) in front of a fake upstream U (localhost), plus a
 * "user" that drives a Browser through P's consent page and U's login, for flow and security
 * tests.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeGithub, startFakeOidcUpstream, type FakeUpstream } from './fake-upstream.js';
import { startFakeMcp, type FakeMcp } from './fake-mcp.js';
import { freePort, registerClient, startTestApp, type TestApp, type TestAppOptions } from './app.js';
import { authorizeUrl, pkcePair } from './pkce.js';
import { Browser, type Page } from './browser.js';

export interface Stack {
  app: TestApp;
  upstream: FakeUpstream;
  /** the MCP server behind the gateway */
  mcp: FakeMcp;
  /**
   * stop P and start a new runtime on the same port, database file and configuration (U and R
   * keep running); `env` changes that configuration, for this start and the next
   */
  restart(env?: Record<string, string | undefined>): Promise<TestApp>;
  close(): Promise<void>;
}

export interface StackOptions {
  upstream?: 'oidc' | 'github';
  env?: Record<string, string | undefined>;
  upstreamAccessTokenTtl?: number;
  /** GitHub only: a GitHub App's expiring user tokens, refreshable (FakeUpstreamOptions.githubExpiringTokens) */
  githubExpiringTokens?: boolean;
  /** GitHub only: a gateway route (GATEWAY_ROUTES) with this prefix to the fake GitHub's own REST API (`/api/v3`), as R */
  githubApiRoute?: string;
  /** U revokes the user's grants when a refresh token is presented twice (FakeUpstreamOptions) */
  upstreamRevokesOnRefreshReuse?: boolean;
  countdownDelayMs?: number;
  /** the runtime's clock for time-bucketed records (RuntimeOptions.now) */
  now?: () => number;
  /** the CIMD fetcher's test seam (RuntimeOptions.cimdFetch) */
  cimdFetch?: TestAppOptions['cimdFetch'];
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  // P's port must be known before U registers P's callback: from freePort (test/helpers/app.ts),
  // outside the ephemeral range, so U's and R's listen(0) — or another worker's — never take it,
  // neither before P starts nor while `restart` listens on it again (CI met EADDRINUSE once).
  const port = await freePort();
  const callbackUrl = `http://127.0.0.1:${port}/upstream/callback`;
  const upstream =
    options.upstream === 'github'
      ? await startFakeGithub({ callbackUrl, githubExpiringTokens: options.githubExpiringTokens })
      : await startFakeOidcUpstream({ callbackUrl, accessTokenTtl: options.upstreamAccessTokenTtl, revokeOnRefreshReuse: options.upstreamRevokesOnRefreshReuse });
  const mcp = await startFakeMcp({ countdownDelayMs: options.countdownDelayMs });
  const appOptions = {
    port,
    now: options.now,
    cimdFetch: options.cimdFetch,
    dir: mkdtempSync(join(tmpdir(), 'mcp-stack-')),
    env: {
      UPSTREAM_PRESET: options.upstream === 'github' ? 'github' : 'oidc',
      UPSTREAM_ISSUER: upstream.issuer,
      UPSTREAM_CLIENT_ID: upstream.clientId,
      UPSTREAM_CLIENT_SECRET: upstream.clientSecret,
      UPSTREAM_SCOPES: options.upstream === 'github' ? 'read:user' : 'openid email',
      UPSTREAM_NAME: options.upstream === 'github' ? 'GitHub' : 'Fake Upstream',
      MCP_UPSTREAM_URL: mcp.url,
      ...(options.githubApiRoute ? { GATEWAY_ROUTES: `${options.githubApiRoute}=${upstream.address}/api/v3` } : {}),
      ...options.env,
    },
  };
  const stack: Stack = {
    app: await startTestApp(appOptions),
    upstream,
    mcp,
    async restart(env = {}) {
      await stack.app.close();
      appOptions.env = { ...appOptions.env, ...env };
      // One turn of the event loop's poll phase, so this process's clients (fetch's keep-alive
      // pool) see the old server's connections end before a request could pick one of them.
      await new Promise((resolve) => setImmediate(resolve));
      stack.app = await startTestApp(appOptions);
      return stack.app;
    },
    async close() {
      await stack.app.close();
      await upstream.close();
      await mcp.close();
    },
  };
  return stack;
}

/**
 * Another replica of the stack's P: the same data directory (and so the same database and
 * SECRET_KEY), PUBLIC_URL (behind one balancer, replicas share it: P's tokens are for
 * PUBLIC_URL/mcp), upstream and R, listening on its own port. `env` adds to that configuration.
 */
export function startReplica(stack: Stack, env: Record<string, string> = {}): Promise<TestApp> {
  return startTestApp({
    dir: stack.app.dir,
    env: {
      PUBLIC_URL: stack.app.url,
      UPSTREAM_ISSUER: stack.upstream.issuer,
      UPSTREAM_CLIENT_ID: stack.upstream.clientId,
      UPSTREAM_CLIENT_SECRET: stack.upstream.clientSecret,
      UPSTREAM_SCOPES: 'openid email',
      MCP_UPSTREAM_URL: stack.mcp.url,
      ...env,
    },
  });
}

export const CLIENT_REDIRECT = 'http://127.0.0.1:33418/callback';

export interface AuthorizationRequest {
  clientId: string;
  redirectUri?: string;
  scope?: string;
  resource?: string;
  state?: string;
  prompt?: string;
  verifier?: string;
  challenge?: string;
}

export function buildAuthorization(app: TestApp, request: AuthorizationRequest) {
  const pkce = pkcePair();
  const verifier = request.verifier ?? pkce.verifier;
  const challenge = request.challenge ?? (request.verifier ? undefined : pkce.challenge);
  const state = request.state ?? `state-${randomBytes(16).toString('base64url')}`;
  const redirectUri = request.redirectUri ?? CLIENT_REDIRECT;
  const url = authorizeUrl(app.url, {
    response_type: 'code',
    client_id: request.clientId,
    redirect_uri: redirectUri,
    code_challenge: challenge ?? pkce.challenge,
    code_challenge_method: 'S256',
    state,
    scope: request.scope,
    resource: request.resource,
    prompt: request.prompt,
  });
  return { url, verifier: request.verifier ? request.verifier : pkce.verifier, state, redirectUri };
}

export const isConsentPage = (page: Page) => page.html.includes('name="action" value="approve"');
const isUpstreamLogin = (page: Page) => /name="login"/.test(page.html);
const isUpstreamConsent = (page: Page) => page.html.includes('name="allow"');

export interface DriveResult {
  /** the URL the browser was sent to at the client (not requested) */
  callback: URL;
  /** pages seen on the way, in order: 'consent', 'upstream-login', 'upstream-consent' */
  seen: string[];
  consentPage: Page | undefined;
}

/**
 * Play the user: open the authorization URL and click through P's consent (Approve, or Deny)
 * and U's login (as `login`) until the browser is sent to the client's redirect URI.
 */
export async function drive(browser: Browser, url: string, redirectUri: string, options: { login?: string; deny?: boolean; initiator?: string; expectConsent?: boolean } = {}): Promise<DriveResult> {
  const stopAt = (u: string) => u.startsWith(redirectUri);
  const seen: string[] = [];
  let consentPage: Page | undefined;
  let page = await browser.navigate(url, { stopAt, initiator: options.initiator });
  for (let i = 0; i < 10; i++) {
    if (page.status === 0) return { callback: new URL(page.url), seen, consentPage };
    if (isConsentPage(page)) {
      seen.push('consent');
      consentPage = page;
      page = await browser.submit(page, { action: options.deny ? 'deny' : 'approve' }, { stopAt });
    } else if (isUpstreamLogin(page)) {
      seen.push('upstream-login');
      page = await browser.submit(page, { login: options.login ?? 'alice' }, { stopAt });
    } else if (isUpstreamConsent(page)) {
      seen.push('upstream-consent');
      page = await browser.submit(page, { allow: 'yes' }, { stopAt });
    } else {
      throw new Error(`unexpected page ${page.status} at ${page.url}: ${page.html.replace(/\s+/g, ' ').slice(0, 600)}`);
    }
  }
  throw new Error(`the flow did not end: ${seen.join(' > ')} at ${page.url} ${page.status} ${page.html.replace(/\s+/g, ' ').slice(0, 400)}`);
}

/** Register a client, authorize it as `login` in `browser`, redeem the code; returns tokens. */
export async function authorizeClient(stack: Stack, browser: Browser, options: { login?: string; clientId?: string; scope?: string; register?: Record<string, unknown> } = {}) {
  const clientId = options.clientId ?? (await registerClient(stack.app, options.register)).client_id;
  const auth = buildAuthorization(stack.app, { clientId, scope: options.scope });
  const result = await drive(browser, auth.url, auth.redirectUri, { login: options.login });
  const code = result.callback.searchParams.get('code');
  if (!code) throw new Error(`no code: ${result.callback.href}`);
  const tokens = await redeem(stack.app, clientId, code, auth.verifier, auth.redirectUri);
  return { clientId, tokens, result, auth };
}

export async function redeem(app: TestApp, clientId: string, code: string, verifier: string, redirectUri = CLIENT_REDIRECT, extra: Record<string, string> = {}) {
  const res = await fetch(`${app.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, client_id: clientId, redirect_uri: redirectUri, ...extra }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

export async function refresh(app: TestApp, clientId: string, refreshToken: string, extra: Record<string, string> = {}) {
  const res = await fetch(`${app.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId, ...extra }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/**
 * Approve at P and sign in at U, stopping before the browser is sent back to P: U's redirect to
 * P's callback, for a test to send it when it chooses (an approval recorded while something else
 * happens); with the PKCE verifier the code will need.
 */
export async function approveAndStopAtU(app: TestApp, browser: Browser, clientId: string, login: string): Promise<{ callback: string; verifier: string }> {
  const isCallback = (u: string) => u.includes('/upstream/callback');
  const auth = buildAuthorization(app, { clientId });
  let page: Page = await browser.navigate(auth.url, { stopAt: isCallback });
  page = await browser.submit(page, { action: 'approve' }, { stopAt: isCallback });
  if (page.status !== 0) page = await browser.submit(page, { login }, { stopAt: isCallback });
  if (page.status !== 0) page = await browser.submit(page, { allow: 'yes' }, { stopAt: isCallback });
  if (!page.url.includes('/upstream/callback')) throw new Error(`the flow did not reach P's callback: ${page.url}`);
  return { callback: page.url, verifier: auth.verifier };
}

export { Browser };
