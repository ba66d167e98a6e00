/**
 * Step 3 — P's consent (DESIGN §2 step 4). The one module that decides whether the consent page
 * is shown, and the page itself.
 *
 * The page is skipped only when ALL hold (CONS-02, CONS-13, CONS-16):
 *   - the browser carries a valid P session (browser_sessions) for subject S;
 *   - S has an unrevoked, unexpired consent for exactly this client_id, redirect_uri and
 *     resource whose scopes include every requested scope (`coversRequest`);
 *   - the consent's grant still exists;
 *   - the consent was approved in THIS browser: its `browser_hash` equals SHA-256 of the
 *     `__Host-mcp-browser` id this request carries (CONS-02 "per user" made per browser, as
 *     SECURITY.md promises: another browser of the same user, or a session opened there by any
 *     other means, is asked again). The id is a random 256-bit value in a signed, HttpOnly,
 *     SameSite=Lax `__Host-` cookie (CONS-10/11/12), created or renewed at the Approve POST
 *     and carried to the consent row through the sealed upstream transaction. Consents without
 *     a binding (written before migration 0009-consent-browser-binding) never skip the page;
 *   - the navigation was not initiated by another site: `Sec-Fetch-Site` is `none` or
 *     `same-origin`; absent ⇒ ask (AT-06, FastMCP GHSA-6x8h-498w-gv8c);
 *   - the client did not ask for `prompt=consent` or `prompt=login`.
 * Otherwise the page is shown: the client's self-asserted name marked unverified, a warning
 * when it imitates a well-known client or mixes scripts in a word (AT-17, src/oauth/lookalike.ts),
 * the client id and registration date, the redirect URI with its host prominent and a note for
 * loopback (CONS-07), the scopes in plain words, the upstream and the exact upstream scopes
 * (CONS-06, UP-03), the resource, and how long the client stays connected (`connectionTerms`): a
 * client that registered the `refresh_token` grant gets refresh tokens (F8,
 * src/provider/configuration.ts) and so can keep going without the user for up to CONSENT_TTL,
 * renewing at least every REFRESH_TOKEN_TTL; one without it gets access for ACCESS_TOKEN_TTL at a
 * time.
 *
 * CSRF (CONS-08, AT-04): the form token is HMAC(csrf key, browser secret ‖ interaction uid).
 * The browser secret lives in a `__Host-` SameSite=Lax cookie set by this page, created once
 * and reused, so reloading the page (or two tabs) keeps a valid token (checklist §5.10); a
 * cross-site POST carries no cookie and is refused with 403 before anything else happens.
 * The approval acts only on the server-side interaction (CONS-14, AT-08): redirect_uri,
 * client_id or scope in the form body are never read.
 */
import express, { type NextFunction, type Request, type Response, type RequestHandler } from 'express';
import type Provider from 'oidc-provider';
import { randomToken, safeEqual, sha256 } from '../crypto/keys.js';
import type { Consent } from '../store/consents.js';
import { lookalikeOf } from '../oauth/lookalike.js';
import { isLoopbackHost } from '../config/urls.js';
import { BASE_CSP_DIRECTIVES } from '../http/security-headers.js';
import type { FlowDeps } from './deps.js';
import { startUpstreamAuthorization } from './5-upstream-redirect.js';
import { finishWithExistingGrant } from '../consent/record.js';
import { ERRORS } from '../errors/oauth-error.js';

/** What the client asked for, as the interaction recorded it after oidc-provider validated it. */
export interface ConsentRequest {
  clientId: string;
  redirectUri: string;
  resource: string;
  scopes: string[];
}

export type ShowReason =
  | 'prompt_requested'
  | 'no_session'
  | 'no_consent'
  | 'revoked'
  | 'expired'
  | 'scopes_not_covered'
  | 'grant_missing'
  | 'browser_unbound'
  | 'other_browser'
  | 'fetch_metadata_absent'
  | 'cross_site';

export type ConsentDecision = { skip: true; consent: Consent } | { skip: false; reason: ShowReason };

/** CONS-13: same key, unrevoked, unexpired, and every requested scope granted. */
export function coversRequest(consent: Consent, subject: string, request: ConsentRequest, now: number): boolean {
  if (consent.revoked_at !== null || consent.expires_at <= now) return false;
  if (consent.subject !== subject || consent.client_id !== request.clientId) return false;
  if (consent.redirect_uri !== request.redirectUri || consent.resource !== request.resource) return false;
  const granted = new Set(consent.scopes.split(' '));
  return request.scopes.every((s) => granted.has(s));
}

/** The skip rule (see the module comment). Pure. */
export function decideConsent(input: {
  subject: string | undefined;
  latest: Consent | undefined;
  request: ConsentRequest;
  /** SHA-256 of this request's browser id (`browserHashOf`), undefined when it carries none */
  browserHash: string | undefined;
  secFetchSite: string | undefined;
  promptRequested: boolean;
  grantExists: (grantId: string) => boolean;
  now: number;
}): ConsentDecision {
  const { subject, latest, request, now } = input;
  if (input.promptRequested) return { skip: false, reason: 'prompt_requested' };
  if (!subject) return { skip: false, reason: 'no_session' };
  if (!latest) return { skip: false, reason: 'no_consent' };
  if (latest.revoked_at !== null) return { skip: false, reason: 'revoked' };
  if (latest.expires_at <= now) return { skip: false, reason: 'expired' };
  if (!coversRequest(latest, subject, request, now)) return { skip: false, reason: 'scopes_not_covered' };
  if (!input.grantExists(latest.grant_id)) return { skip: false, reason: 'grant_missing' };
  // CONS-02/CONS-16: remembered only in the browser that approved; legacy rows never skip.
  if (latest.browser_hash === null) return { skip: false, reason: 'browser_unbound' };
  if (input.browserHash === undefined || !safeEqual(latest.browser_hash, input.browserHash)) return { skip: false, reason: 'other_browser' };
  if (input.secFetchSite === undefined) return { skip: false, reason: 'fetch_metadata_absent' };
  if (input.secFetchSite !== 'none' && input.secFetchSite !== 'same-origin') return { skip: false, reason: 'cross_site' };
  return { skip: true, consent: latest };
}

export const SCOPE_DESCRIPTIONS: Record<string, string> = {
  openid: 'Learn your account identifier at this service',
  offline_access: 'Stay connected when you are not using the application (refresh tokens)',
  'mcp:tools': 'Use the tools of the MCP server on your behalf',
};

export function describeScope(scope: string): string {
  return SCOPE_DESCRIPTIONS[scope] ?? `Access granted under the scope “${scope}”`;
}

/** Plain words for a duration in seconds: "90 days", "1 hour", "45 seconds". */
export function durationInWords(seconds: number): string {
  for (const [unit, size] of [['day', 86_400], ['hour', 3600], ['minute', 60], ['second', 1]] as const) {
    if (seconds >= size && seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${unit}${n === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} seconds`;
}

/**
 * What the page says about how long the client stays connected. With refresh tokens: until the
 * consent (and its grant) expires, CONSENT_TTL after approval, as long as it renews within each
 * refresh token's REFRESH_TOKEN_TTL (they rotate, each with a fresh lifetime); or until revoked.
 */
export function connectionTerms(refreshable: boolean, ttl: { consent: number; refreshToken: number; accessToken: number }) {
  if (!refreshable) return { refreshable: false as const, access: durationInWords(ttl.accessToken) };
  return { refreshable: true as const, upTo: durationInWords(ttl.consent), renewEvery: ttl.refreshToken < ttl.consent ? durationInWords(ttl.refreshToken) : undefined };
}

export function requestOf(params: Record<string, unknown>, defaultResource: string): ConsentRequest {
  return {
    clientId: String(params.client_id),
    redirectUri: String(params.redirect_uri),
    resource: typeof params.resource === 'string' ? params.resource : defaultResource,
    scopes: String(params.scope ?? '').split(' ').filter(Boolean),
  };
}

export function csrfValue(browserSecret: string, uid: string): string {
  return `consent:${browserSecret}:${uid}`;
}

/** CSP for a page whose form leads to `targets` (deps.md gotcha 6): exact origins, no wildcard. */
export function formActionCsp(targets: string[]): string {
  const directives = { ...BASE_CSP_DIRECTIVES, 'form-action': ["'self'", ...new Set(targets)] };
  return Object.entries(directives)
    .map(([k, v]) => `${k} ${v.join(' ')}`)
    .join(';');
}

/** CSP source for a redirect URI: its origin, or `scheme:` for private-use schemes. */
export function cspSourceOf(uri: string): string {
  const url = new URL(uri);
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : url.protocol;
}

/**
 * The browser secret behind CSRF tokens; created once per browser, reused. Also behind the
 * sign-in button of /admin/login and /account/login (src/session/sign-in.ts), with its own label.
 */
export function browserSecret(deps: FlowDeps, req: Request, res: Response): string {
  const existing = deps.cookies.read(req, 'csrf');
  if (existing) return existing;
  const created = randomToken();
  deps.cookies.write(res, 'csrf', created, 24 * 3600);
  return created;
}

/** A browser id cookie lives as long as browsers allow (400 days) and is renewed at every Approve. */
export const BROWSER_ID_MAX_AGE = 400 * 86_400;

/** SHA-256 of the browser id this request carries (signed cookie), or undefined. */
export function browserHashOf(deps: FlowDeps, req: Request): string | undefined {
  const id = deps.cookies.read(req, 'browser');
  return id ? sha256(id) : undefined;
}

/** At Approve: this browser's id (created once, renewed), as the hash the consent will record. */
function bindBrowser(deps: FlowDeps, req: Request, res: Response): string {
  const id = deps.cookies.read(req, 'browser') ?? randomToken();
  deps.cookies.write(res, 'browser', id, BROWSER_ID_MAX_AGE);
  return sha256(id);
}

function promptRequested(params: Record<string, unknown>): boolean {
  const prompt = String(params.prompt ?? '').split(' ');
  return prompt.includes('consent') || prompt.includes('login');
}

async function loadInteraction(provider: Provider, req: Request, res: Response) {
  const details = await provider.interactionDetails(req, res);
  // The interaction cookie must belong to the interaction in the URL.
  if (details.uid !== req.params.uid) throw ERRORS.invalidRequest('this page belongs to another sign-in', 'interaction_mismatch');
  return details;
}

/** GET /interaction/:uid */
export function showConsent(deps: FlowDeps): RequestHandler {
  const { provider, config, stores, audit, views } = deps;
  return async (req, res, next) => {
    try {
      const details = await loadInteraction(provider, req, res);
      const params = details.params as Record<string, unknown>;
      const request = requestOf(params, config.urls.mcpResource);
      const sessionId = deps.cookies.read(req, 'session');
      const session = stores.browserSessions.find(sessionId);
      const latest = session
        ? stores.consents.latest({ subject: session.subject, clientId: request.clientId, redirectUri: request.redirectUri, resource: request.resource })
        : undefined;
      const secFetchSite = req.get('sec-fetch-site');
      const decision = decideConsent({
        subject: session?.subject,
        latest,
        request,
        browserHash: browserHashOf(deps, req),
        secFetchSite,
        promptRequested: promptRequested(params),
        grantExists: (id) => stores.models.grantExists(id),
        now: Date.now(),
      });
      if (decision.skip) {
        audit.record({ event: 'consent.skipped', reason: 'remembered', subject: session?.subject, clientId: request.clientId, details: { consent_id: decision.consent.id, sec_fetch_site: secFetchSite } });
        stores.browserSessions.seen(sessionId as string);
        return await finishWithExistingGrant(deps, req, res, decision.consent);
      }

      const client = await provider.Client.find(request.clientId);
      if (!client) throw ERRORS.invalidRequest('the application is no longer registered', 'client_gone');
      const meta = stores.clientsMeta.get(request.clientId);
      const upstream = deps.upstream();
      let upstreamOrigin: string;
      try {
        upstreamOrigin = await upstream.authorizationOrigin();
      } catch {
        throw ERRORS.temporarilyUnavailable(`${upstream.name} cannot be reached right now; try again in a moment`, 'upstream_unreachable');
      }
      const token = deps.keys.csrfMac(csrfValue(browserSecret(deps, req, res), details.uid));
      const redirect = new URL(request.redirectUri);
      const registered = (client.metadata().redirect_uris as string[] | undefined) ?? [];
      const clientName = typeof client.clientName === 'string' ? client.clientName : undefined;

      audit.record({ event: 'consent.shown', reason: decision.reason, subject: session?.subject, clientId: request.clientId, details: { scopes: request.scopes, redirect_uri: request.redirectUri } });
      res.setHeader('Content-Security-Policy', formActionCsp([upstreamOrigin, cspSourceOf(request.redirectUri)]));
      res.setHeader('Cache-Control', 'no-store');
      res.type('html').send(
        views.render(
          'consent',
          {
            title: 'Authorize access',
            action: config.urls.path(`/interaction/${details.uid}/decision`),
            csrf: token,
            client: {
              id: request.clientId,
              name: clientName,
              registeredAt: meta ? new Date(meta.registered_at).toISOString().slice(0, 10) : undefined,
              lookalike: lookalikeOf(clientName, registered),
            },
            redirect: {
              uri: request.redirectUri,
              host: redirect.host || redirect.protocol,
              loopback: redirect.protocol === 'http:' && isLoopbackHost(redirect.hostname),
              privateScheme: redirect.protocol !== 'http:' && redirect.protocol !== 'https:',
            },
            scopes: request.scopes.map((s) => ({ name: s, description: describeScope(s) })),
            resource: request.resource,
            connection: connectionTerms(client.grantTypeAllowed('refresh_token'), config.ttl),
            accountUrl: config.urls.path('/account'),
            upstream: { name: upstream.name, scopes: upstream.scopes },
            signedInAs: session?.display_name ?? undefined,
          },
          req.id,
        ),
      );
    } catch (err) {
      next(err);
    }
  };
}

/** POST /interaction/:uid/decision — approve or deny. */
export function decideOnConsent(deps: FlowDeps): RequestHandler[] {
  const { provider, audit } = deps;
  return [
    express.urlencoded({ extended: false, limit: 4096, parameterLimit: 10 }),
    async (req: Request, res: Response, next: NextFunction) => {
      try {
        const uid = String(req.params.uid);
        const secret = deps.cookies.read(req, 'csrf');
        const token = typeof req.body?.csrf === 'string' ? req.body.csrf : '';
        if (!secret || !token || !deps.keys.checkCsrfMac(csrfValue(secret, uid), token)) {
          // CONS-08 / AT-04: refused before the interaction is even loaded; nothing is created.
          audit.record({ event: 'consent.rejected', reason: secret ? 'csrf_mismatch' : 'csrf_cookie_missing', details: { sec_fetch_site: req.get('sec-fetch-site') } });
          throw ERRORS.accessDenied('The approval could not be verified as coming from this page. Start again from your application.', 'csrf');
        }
        const details = await loadInteraction(provider, req, res);
        const request = requestOf(details.params as Record<string, unknown>, deps.config.urls.mcpResource);
        const action = req.body?.action;
        if (action === 'deny') {
          // CONS-15: access_denied to the client (with state and iss, added by the provider); U is never contacted.
          audit.record({ event: 'consent.denied', clientId: request.clientId, details: { scopes: request.scopes } });
          await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'The user denied the request.' }, { mergeWithLastSubmission: false });
          return;
        }
        if (action !== 'approve') throw ERRORS.invalidRequest('unknown decision', 'bad_action');
        audit.record({ event: 'consent.approved', clientId: request.clientId, details: { scopes: request.scopes, redirect_uri: request.redirectUri, resource: request.resource } });
        await startUpstreamAuthorization(deps, req, res, details.uid, request, bindBrowser(deps, req, res));
      } catch (err) {
        next(err);
      }
    },
  ];
}
