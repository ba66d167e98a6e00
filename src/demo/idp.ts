/**
 * The demo upstream identity provider (U) embedded in demo mode (decided in src/config/load.ts): an
 * oidc-provider at `PUBLIC_URL/demo-idp` with its own sign-in form (any user name, no password)
 * and its own consent, which it remembers per browser like GitHub or Google do — so the demo
 * shows exactly the situation P's consent page exists for. P is its one static client.
 * It issues JWT access tokens naming the user, so the demo MCP server's `whoami` can show who
 * arrived. Its state lives in P's database (models prefixed `Demo`), so a restart keeps it.
 * Demo only: anyone can sign in as anyone.
 */
import express, { type RequestHandler, type Router } from 'express';
import Provider, { type Configuration } from 'oidc-provider';
import type { Config } from '../config/load.js';
import type { KeyRing } from '../crypto/keys.js';
import type { OidcModelStore } from '../store/oidc-models.js';
import type { Views } from '../views/render.js';
import { adapterClass } from '../provider/configuration.js';
import { pinToPublicUrl } from '../http/provider-mount.js';

export const DEMO_IDP_PATH = '/demo-idp';
export const DEMO_CLIENT_ID = 'mcp-consent-proxy-demo';
export const DEMO_SCOPES = ['openid', 'profile'];

export interface DemoIdp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  router: Router;
}

/** Keep sign-in names short and printable. */
function cleanLogin(value: unknown): string {
  const login =
    typeof value === 'string'
      ? value
          .trim()
          .replace(/[^\w.@-]/g, '')
          .slice(0, 40)
      : '';
  return login || 'demo-user';
}

type DemoIdpDeps = { config: Readonly<Config>; keys: KeyRing; models: OidcModelStore; views: Views; jwks: { keys: Record<string, unknown>[] } };

/** The demo IdP's oidc-provider configuration: P as its one client, JWT access tokens for `resource`. */
function demoConfiguration(deps: DemoIdpDeps, clientSecret: string, resource: string): Configuration {
  const { config, keys, views } = deps;
  return {
    adapter: adapterClass(deps.models, { prefix: 'Demo' }),
    jwks: deps.jwks as Configuration['jwks'],
    clients: [
      {
        client_id: DEMO_CLIENT_ID,
        client_secret: clientSecret,
        redirect_uris: [config.urls.upstreamCallback],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    cookies: {
      keys: keys.oidcCookieKeys(),
      names: { session: 'demo_idp_session', interaction: 'demo_idp_interaction', resume: 'demo_idp_resume' },
      long: { httpOnly: true, sameSite: 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },
    scopes: DEMO_SCOPES,
    claims: { openid: ['sub'], profile: ['preferred_username', 'name'] },
    pkce: { required: () => true },
    responseTypes: ['code'],
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: 'profile', audience: resource, accessTokenFormat: 'jwt', accessTokenTTL: 3600 }),
      },
    },
    issueRefreshToken: async () => true,
    rotateRefreshToken: () => true,
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub, preferred_username: sub, name: sub }) }),
    interactions: { url: (_ctx, interaction) => `${config.urls.path(DEMO_IDP_PATH)}/interaction/${interaction.uid}` },
    ttl: { AccessToken: 3600, AuthorizationCode: 60, Grant: 30 * 86_400, IdToken: 3600, Interaction: 600, RefreshToken: 30 * 86_400, Session: 30 * 86_400 },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = views.render('error', { title: 'Demo sign-in error', message: 'The demo identity provider refused the request.', code: out.error, description: out.error_description });
    },
  };
}

/** GET /interaction/:uid: the sign-in form, or the consent form once signed in. */
function showInteraction(provider: Provider, config: Readonly<Config>, views: Views): RequestHandler {
  return async (req, res, next) => {
    try {
      const details = await provider.interactionDetails(req, res);
      const action = `${config.urls.path(DEMO_IDP_PATH)}/interaction/${details.uid}`;
      res.setHeader('Cache-Control', 'no-store');
      if (details.prompt.name === 'login') {
        res.type('html').send(views.render('demo-idp-login', { title: 'Sign in to the Demo IdP', action: `${action}/login` }, req.id));
      } else {
        res
          .type('html')
          .send(
            views.render(
              'demo-idp-consent',
              { title: 'Demo IdP: allow access', action: `${action}/confirm`, user: details.session?.accountId, scopes: String(details.params.scope ?? '').split(' ') },
              req.id,
            ),
          );
      }
    } catch (err) {
      next(err);
    }
  };
}

/** POST /interaction/:uid/login: signed in as the name given (no password: demo only). */
function finishLogin(provider: Provider): RequestHandler {
  return async (req, res, next) => {
    try {
      await provider.interactionFinished(req, res, { login: { accountId: cleanLogin(req.body?.login) } }, { mergeWithLastSubmission: false });
    } catch (err) {
      next(err);
    }
  };
}

/** POST /interaction/:uid/confirm: the user allowed access; the grant gets the scopes still missing. */
function confirmConsent(provider: Provider): RequestHandler {
  return async (req, res, next) => {
    try {
      const details = await provider.interactionDetails(req, res);
      const { prompt, params, session } = details;
      const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId: session?.accountId as string, clientId: params.client_id as string });
      if (!grant) throw new Error('demo grant disappeared');
      const missing = prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
      await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
    } catch (err) {
      next(err);
    }
  };
}

export function createDemoIdp(deps: DemoIdpDeps): DemoIdp {
  const { config, keys, views } = deps;
  const issuer = config.urls.url(DEMO_IDP_PATH);
  const resource = `${issuer}/api`;
  // Stable across restarts without storing it: derived from SECRET_KEY.
  const clientSecret = keys.csrfMac('demo-idp-client-secret');
  const provider = new Provider(issuer, demoConfiguration(deps, clientSecret, resource));
  provider.proxy = true;
  const callback = provider.callback();

  const router = express.Router();
  router.get('/interaction/:uid', showInteraction(provider, config, views));
  const form = express.urlencoded({ extended: false, limit: 2048 });
  router.post('/interaction/:uid/login', form, finishLogin(provider));
  router.post('/interaction/:uid/confirm', form, confirmConsent(provider));
  router.use((req, res) => {
    pinToPublicUrl(req, config.urls);
    void callback(req, res); // koa answers its own errors
  });
  return { issuer, clientId: DEMO_CLIENT_ID, clientSecret, router };
}
