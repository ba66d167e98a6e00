/**
 * Fake upstream identity providers (U) for tests, on loopback:
 * - `startFakeOidcUpstream`: a second oidc-provider with P's static confidential client. Like
 *   GitHub or Google it **remembers consent per browser**: once a cookie jar approved P's client,
 *   later authorizations from that jar are approved silently (its session + grant). It logs every
 *   authorization and token request, issues JWT access tokens naming the user (recognisable at the
 *   fake MCP server), rotates refresh tokens, and can revoke a user's grants (AT-22).
 * - `startFakeGithub`: GitHub's shape — `/login/oauth/authorize`, `/login/oauth/access_token`
 *   (form in, JSON out), `/api/v3/user` with a numeric id — with the same remembered approval.
 * Both are served on `localhost` (P runs on 127.0.0.1), so in a browser they are another site
 * with their own cookies, as a real upstream is.
 */
import { createServer, type Server } from 'node:http';
import { randomBytes, createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Provider, { type Configuration } from 'oidc-provider';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

export interface AuthorizationLogEntry {
  query: Record<string, string>;
  at: number;
}

export interface FakeUpstream {
  issuer: string;
  /** where it listens (the issuer unless it is reached through a proxy) */
  address: string;
  kind: 'oidc' | 'github';
  clientId: string;
  clientSecret: string;
  /** every authorization request U received */
  authorizations: AuthorizationLogEntry[];
  /** every token endpoint request (grant types; the subject of a successful one) */
  tokenRequests: { grant_type: string; at: number; sub?: string }[];
  /** every revocation request */
  revocations: string[];
  /** the token value of every revocation request, in order */
  revokedTokens: string[];
  /** access tokens issued, with their subject */
  issued: { token: string; sub: string }[];
  /** refresh tokens presented a second time (with `revokeOnRefreshReuse`: each revoked its user's grants) */
  refreshReuses: string[];
  /** make the token endpoint fail (5xx) or hang (ms) */
  setTokenEndpointFault(fault: { status?: number; delayMs?: number } | undefined): void;
  /**
   * make the revocation endpoint answer `status` (each request still recorded, the token not
   * revoked); undefined: works again. `echoToken`: the answer is an OAuth error whose
   * error_description (and a `token` member) repeat the token asked about. OIDC only
   */
  setRevocationFault(status: number | undefined, options?: { echoToken?: boolean }): void;
  /** whether U still honours one of its refresh tokens (read from U's store: no request, nothing rotated). OIDC only */
  refreshTokenLive(token: string): Promise<boolean>;
  /** sign `claims` as an ID token with U's own key (fault tests forge expired ones); OIDC only */
  signIdToken(claims: Record<string, unknown>): Promise<string>;
  /** revoke everything U issued to a user (U's grant gone: refresh answers invalid_grant) */
  revokeUser(sub: string): Promise<void>;
  close(): Promise<void>;
}

async function listen(app: express.Express): Promise<{ server: Server; port: number }> {
  const server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

const page = (title: string, body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1>${body}</body></html>`;

/** P's configuration for this fake upstream (an OpenID provider named "Fake Upstream"). */
export function fakeUpstreamEnv(upstream: { issuer: string; clientId: string; clientSecret: string }): Record<string, string> {
  return {
    UPSTREAM_PRESET: 'oidc',
    UPSTREAM_ISSUER: upstream.issuer,
    UPSTREAM_CLIENT_ID: upstream.clientId,
    UPSTREAM_CLIENT_SECRET: upstream.clientSecret,
    UPSTREAM_SCOPES: 'openid email',
    UPSTREAM_NAME: 'Fake Upstream',
  };
}

export interface FakeUpstreamOptions {
  /** P's callback URL, registered for P's static client */
  callbackUrl: string;
  /**
   * GitHub only: a GitHub App's expiring user tokens (8 h access tokens with a rotating refresh
   * token), instead of an OAuth App's tokens that never expire and cannot be refreshed. A refresh
   * token GitHub no longer honours is answered 200 `{"error":"bad_refresh_token"}`, as GitHub does.
   */
  githubExpiringTokens?: boolean;
  /** access-token lifetime at U, seconds */
  accessTokenTtl?: number;
  /** U's issuer when it is reached through another address (a fault proxy, test/helpers/fault-proxy.ts) */
  issuer?: string;
  /** access-token lifetime for one subject, seconds (undefined: accessTokenTtl) */
  accessTokenTtlFor?: (sub: string) => number | undefined;
  /**
   * GitHub's reuse detection (RFC 9700 §4.14.2): a refresh token presented a second time — even
   * while its first use is still in flight — revokes every grant of its user and is answered
   * invalid_grant.
   */
  revokeOnRefreshReuse?: boolean;
}

export async function startFakeOidcUpstream(options: FakeUpstreamOptions): Promise<FakeUpstream> {
  const app = express();
  const { server, port } = await listen(app);
  const issuer = options.issuer ?? `http://localhost:${port}`;
  const clientId = 'proxy-static-client';
  const clientSecret = randomBytes(16).toString('hex');
  const authorizations: AuthorizationLogEntry[] = [];
  const tokenRequests: { grant_type: string; at: number; sub?: string }[] = [];
  const revocations: string[] = [];
  const revokedTokens: string[] = [];
  const issued: { token: string; sub: string }[] = [];
  let fault: { status?: number; delayMs?: number } | undefined;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const resource = `${issuer}/api`;

  const configuration: Configuration = {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [options.callbackUrl],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [{ ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'fake-u' }] } as Configuration['jwks'],
    cookies: { keys: ['fake-upstream-cookie-key'], names: { session: 'u_session', interaction: 'u_interaction', resume: 'u_resume' } },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'read:user'],
    claims: { openid: ['sub'], email: ['email'], profile: ['preferred_username'] },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: 'read:user email profile', audience: resource, accessTokenFormat: 'jwt', accessTokenTTL: options.accessTokenTtl ?? 3600 }),
      },
    },
    issueRefreshToken: async () => true,
    rotateRefreshToken: () => true,
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub, email: `${sub}@example.test`, preferred_username: sub }) }),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: (_ctx, token) => options.accessTokenTtlFor?.(String(token.accountId)) ?? options.accessTokenTtl ?? 3600,
      AuthorizationCode: 60,
      Grant: 86400,
      IdToken: 3600,
      Interaction: 600,
      RefreshToken: 86400,
      Session: 86400,
    },
  };
  const provider = new Provider(issuer, configuration);
  const grantsOf = new Map<string, Set<string>>();
  provider.on('access_token.issued', (token: { jti: string; accountId: string; grantId: string }) => {
    if (!grantsOf.has(token.accountId)) grantsOf.set(token.accountId, new Set());
    grantsOf.get(token.accountId)?.add(token.grantId);
  });

  app.use((req, _res, next) => {
    if (req.method === 'GET' && req.path === '/auth') authorizations.push({ query: { ...(req.query as Record<string, string>) }, at: Date.now() });
    next();
  });
  app.use('/token', async (req, res, next) => {
    if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault?.delayMs));
    if (fault?.status) {
      res.status(fault.status).json({ error: 'server_error' });
      return;
    }
    next();
  });
  const refreshReuses: string[] = [];
  const refreshPresented = new Set<string>();
  const refreshOwner = new Map<string, string>();
  const revokeUser = async (sub: string) => {
    for (const grantId of grantsOf.get(sub) ?? []) {
      for (const Model of [provider.AccessToken, provider.RefreshToken, provider.AuthorizationCode] as unknown as { adapter: { revokeByGrantId(id: string): Promise<void> } }[]) {
        await Model.adapter.revokeByGrantId(grantId);
      }
      const grant = await provider.Grant.find(grantId);
      await grant?.destroy();
    }
  };
  if (options.revokeOnRefreshReuse) {
    app.post('/token', express.urlencoded({ extended: false }), async (req, res, next) => {
      const presented = req.body?.grant_type === 'refresh_token' ? String(req.body.refresh_token) : undefined;
      if (presented === undefined) return next();
      if (!refreshPresented.has(presented)) {
        refreshPresented.add(presented);
        return next();
      }
      refreshReuses.push(presented);
      const sub = refreshOwner.get(presented);
      if (sub) await revokeUser(sub);
      res.status(400).json({ error: 'invalid_grant', error_description: 'refresh token reused; the grant is revoked' });
    });
  }
  app.get('/interaction/:uid', async (req, res) => {
    const details = await provider.interactionDetails(req, res);
    if (details.prompt.name === 'login') {
      res.send(page('Sign in to Fake Upstream', `<form method="post" action="/interaction/${details.uid}/login"><label>User name <input name="login" autocomplete="username"></label><button type="submit">Sign in</button></form>`));
    } else {
      res.send(page('Authorize MCP Consent Proxy', `<form method="post" action="/interaction/${details.uid}/confirm"><button type="submit" name="allow" value="yes">Allow</button></form>`));
    }
  });
  app.post('/interaction/:uid/login', express.urlencoded({ extended: false }), async (req, res) => {
    await provider.interactionFinished(req, res, { login: { accountId: String(req.body.login || 'alice') } }, { mergeWithLastSubmission: false });
  });
  app.post('/interaction/:uid/confirm', express.urlencoded({ extended: false }), async (req, res) => {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session } = details;
    const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId: session?.accountId as string, clientId: params.client_id as string });
    if (!grant) throw new Error('grant lost');
    const d = prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
  });
  provider.on('grant.success', (ctx) => {
    const at = ctx.oidc.entities.AccessToken as { accountId?: string } | undefined;
    tokenRequests.push({ grant_type: String(ctx.oidc.params?.grant_type), at: Date.now(), sub: at?.accountId });
    const body = ctx.body as { access_token?: string; refresh_token?: string } | undefined;
    if (body?.access_token && at?.accountId) issued.push({ token: body.access_token, sub: at.accountId });
    if (body?.refresh_token && at?.accountId) refreshOwner.set(body.refresh_token, at.accountId);
  });
  provider.on('grant.error', (ctx) => tokenRequests.push({ grant_type: `${String(ctx.oidc.params?.grant_type)}:error`, at: Date.now() }));
  let revocationFault: { status: number; echoToken?: boolean | undefined } | undefined;
  app.use('/token/revocation', express.urlencoded({ extended: false }), (req, res, next) => {
    revocations.push(req.method);
    const token = typeof req.body?.token === 'string' ? (req.body.token as string) : undefined;
    if (token !== undefined) revokedTokens.push(token);
    if (revocationFault === undefined) next();
    else if (revocationFault.echoToken) res.status(revocationFault.status).json({ error: 'invalid_request', error_description: `the token ${token} cannot be revoked now`, token });
    else res.status(revocationFault.status).json({ error: 'temporarily_unavailable' });
  });
  app.use(provider.callback());

  return {
    issuer,
    address: `http://127.0.0.1:${port}`,
    kind: 'oidc',
    clientId,
    clientSecret,
    authorizations,
    tokenRequests,
    revocations,
    revokedTokens,
    issued,
    refreshReuses,
    setTokenEndpointFault(f) {
      fault = f;
    },
    setRevocationFault(status, options) {
      revocationFault = status === undefined ? undefined : { status, echoToken: options?.echoToken };
    },
    async refreshTokenLive(token) {
      const found = await provider.RefreshToken.find(token);
      return found !== undefined && !found.isExpired && !found.consumed;
    },
    signIdToken: (claims) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'fake-u' }).sign(privateKey),
    revokeUser,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** GitHub-shaped upstream: OAuth 2 only, JSON token responses, numeric ids from the user API. */
export async function startFakeGithub(options: FakeUpstreamOptions): Promise<FakeUpstream> {
  const app = express();
  const { server, port } = await listen(app);
  const issuer = `http://localhost:${port}`;
  const clientId = 'Iv1.fakeproxyclient';
  const clientSecret = randomBytes(20).toString('hex');
  const authorizations: AuthorizationLogEntry[] = [];
  const tokenRequests: { grant_type: string; at: number }[] = [];
  const issued: { token: string; sub: string }[] = [];
  const users = new Map<string, number>([['octocat', 583231]]);
  const codes = new Map<string, { login: string; challenge: string; redirectUri: string; scope: string }>();
  const tokens = new Map<string, string>();
  const approved = new Set<string>(); // browser cookie ids that approved the app
  let fault: { status?: number; delayMs?: number } | undefined;

  const idOf = (login: string) => {
    if (!users.has(login)) users.set(login, 1_000_000 + users.size);
    return users.get(login) as number;
  };
  const cookieOf = (req: express.Request) => /(?:^|;\s*)gh_session=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
  const refreshTokens = new Map<string, string>(); // refresh token → login (githubExpiringTokens)
  const issue = (login: string, scope: string) => {
    const token = `gho_${randomBytes(18).toString('hex')}`;
    tokens.set(token, login);
    issued.push({ token, sub: String(idOf(login)) });
    if (!options.githubExpiringTokens) return { access_token: token, token_type: 'bearer', scope };
    const refreshToken = `ghr_${randomBytes(30).toString('hex')}`;
    refreshTokens.set(refreshToken, login);
    return { access_token: token, token_type: 'bearer', scope, expires_in: 28_800, refresh_token: refreshToken, refresh_token_expires_in: 15_897_600 };
  };

  app.get('/login/oauth/authorize', (req, res) => {
    const q = req.query as Record<string, string>;
    authorizations.push({ query: { ...q }, at: Date.now() });
    if (q.client_id !== clientId || q.redirect_uri !== options.callbackUrl) {
      res.status(400).send(page('Error', 'The redirect_uri MUST match the registered callback URL for this application.'));
      return;
    }
    const session = cookieOf(req);
    const login = session?.split('.')[0];
    if (login && approved.has(session as string)) {
      const code = randomBytes(10).toString('hex');
      codes.set(code, { login, challenge: q.code_challenge ?? '', redirectUri: q.redirect_uri, scope: q.scope ?? '' });
      res.redirect(302, `${q.redirect_uri}?code=${code}&state=${encodeURIComponent(q.state ?? '')}`);
      return;
    }
    const hidden = Object.entries(q).map(([k, v]) => `<input type="hidden" name="${k}" value="${String(v).replace(/"/g, '&quot;')}">`).join('');
    res.send(page('Sign in to GitHub', `<form method="post" action="/session">${hidden}<label>Username <input name="login"></label><button type="submit">Authorize</button></form>`));
  });
  app.post('/session', express.urlencoded({ extended: false }), (req, res) => {
    const q = req.body as Record<string, string>;
    const login = q.login || 'octocat';
    idOf(login);
    const session = `${login}.${randomBytes(8).toString('hex')}`;
    approved.add(session);
    res.setHeader('Set-Cookie', `gh_session=${session}; Path=/; HttpOnly; SameSite=Lax`);
    const params = new URLSearchParams({ ...q });
    params.delete('login');
    res.redirect(302, `/login/oauth/authorize?${params}`);
  });
  app.post('/login/oauth/access_token', express.urlencoded({ extended: false }), async (req, res) => {
    if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault?.delayMs));
    if (fault?.status) {
      res.status(fault.status).json({ error: 'server_error' });
      return;
    }
    const body = req.body as Record<string, string>;
    tokenRequests.push({ grant_type: body.grant_type ?? 'authorization_code', at: Date.now() });
    const basic = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
    const [id, secret] = basic.split(':').map(decodeURIComponent);
    if (id !== clientId || secret !== clientSecret) {
      res.json({ error: 'incorrect_client_credentials', error_description: 'The client_id and/or client_secret passed are incorrect.' });
      return;
    }
    if (body.grant_type === 'refresh_token') {
      const login = refreshTokens.get(body.refresh_token ?? '');
      refreshTokens.delete(body.refresh_token ?? ''); // rotated: each one works once
      if (!options.githubExpiringTokens || !login) {
        res.json({ error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect or expired.' });
        return;
      }
      res.json(issue(login, 'read:user'));
      return;
    }
    const code = codes.get(body.code ?? '');
    codes.delete(body.code ?? '');
    const verifierOk = code && createHash('sha256').update(body.code_verifier ?? '').digest('base64url') === code.challenge;
    if (!code || !verifierOk || body.redirect_uri !== code.redirectUri) {
      // GitHub answers errors with 200 and an error body.
      res.json({ error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' });
      return;
    }
    res.json(issue(code.login, code.scope));
  });
  app.get('/api/v3/user', (req, res) => {
    const token = (req.headers.authorization ?? '').replace(/^Bearer /i, '');
    const login = tokens.get(token);
    if (!login) {
      res.status(401).json({ message: 'Bad credentials' });
      return;
    }
    res.json({ login, id: idOf(login), type: 'User' });
  });

  return {
    issuer,
    address: `http://127.0.0.1:${port}`,
    kind: 'github',
    clientId,
    clientSecret,
    authorizations,
    tokenRequests,
    revocations: [],
    revokedTokens: [],
    issued,
    refreshReuses: [],
    setTokenEndpointFault(f) {
      fault = f;
    },
    setRevocationFault() {
      throw new Error('the fake GitHub has no revocation endpoint');
    },
    refreshTokenLive: () => Promise.reject(new Error('the fake GitHub issues no refresh tokens here')),
    signIdToken: () => Promise.reject(new Error('GitHub issues no ID tokens')),
    async revokeUser(sub: string) {
      for (const [token, login] of tokens) if (String(idOf(login)) === sub) tokens.delete(token);
      for (const [token, login] of refreshTokens) if (String(idOf(login)) === sub) refreshTokens.delete(token);
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
