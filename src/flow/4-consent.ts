/**
 * Step 4 — P's consent page (DESIGN §2 step 4), over HTTP. The decision whether the page is
 * shown is src/consent/decision.ts (CONS-02, CONS-13, CONS-16); what it shows is
 * src/consent/present.ts (CONS-05/06/07, AT-17). This step gathers the facts, records the
 * decision (consent.skipped / consent.shown with its reason) and acts on it:
 * - skipped: the remembered consent's grant finishes the interaction;
 * - shown: the page, with a CSP whose `form-action` is exactly P, U's authorization origin and the
 *   client's redirect origin (deps.md gotcha 6, src/http/csp.ts), `no-store`.
 *
 * CSRF (CONS-08, AT-04): the form token is bound to this browser and this interaction
 * (src/http/csrf.ts); a cross-site POST carries no cookie and is refused with 403 before anything
 * else happens. The decision acts only on the server-side interaction (CONS-14, AT-08):
 * redirect_uri, client_id or scope in the form body are never read. Deny ends the interaction
 * with access_denied and never contacts U (CONS-15); Approve binds this browser
 * (src/session/browser.ts) and goes to step 5.
 */
import express, { type NextFunction, type Request, type Response, type RequestHandler } from 'express';
import type Provider from 'oidc-provider';
import type { Config } from '../config/load.js';
import type { Audit } from '../audit/audit.js';
import type { Views } from '../views/render.js';
import type { Csrf } from '../http/csrf.js';
import { cspSourceOf, pageCsp } from '../http/csp.js';
import type { Stores } from '../store/index.js';
import type { Consent } from '../store/consents.js';
import type { BrowserSession } from '../store/browser-sessions.js';
import type { UpstreamClient } from '../upstream/presets.js';
import { ERRORS } from '../errors/oauth-error.js';
import { decideConsent, grantedBefore, promptRequested, requestOf, type ConsentRequest } from '../consent/decision.js';
import { consentPageView } from '../consent/present.js';
import { bindBrowser, browserHashOf, currentSession } from '../session/browser.js';
import { startUpstreamAuthorization, type UpstreamRedirectDeps } from './5-upstream-redirect.js';
import { finishInteraction } from '../provider/interaction-result.js';

export interface ConsentStepDeps extends UpstreamRedirectDeps {
  config: Readonly<Config>;
  provider: Provider;
  audit: Audit;
  views: Views;
  csrf: Csrf;
  stores: Pick<Stores, 'consents' | 'browserSessions' | 'models' | 'clientsMeta' | 'transactions'>;
  upstream(): UpstreamClient;
}

/** The CSRF purpose of the consent form (its context is the interaction uid). */
const CSRF_PURPOSE = 'consent';

async function loadInteraction(provider: Provider, req: Request, res: Response) {
  const details = await provider.interactionDetails(req, res);
  // The interaction cookie must belong to the interaction in the URL.
  if (details.uid !== req.params.uid) throw ERRORS.invalidRequest('this page belongs to another sign-in', 'interaction_mismatch');
  return details;
}

/** Skip path: the remembered consent's grant serves this authorization too. */
async function finishWithExistingGrant(deps: ConsentStepDeps, req: Request, res: Response, consent: Consent): Promise<void> {
  await deps.stores.consents.touch(consent.grant_id);
  await finishInteraction(deps.provider, req, res, { login: { accountId: consent.subject }, consent: { grantId: consent.grant_id } });
}

/** U's authorization origin, for the page's form-action (or the page explains U is down). */
async function upstreamOrigin(upstream: UpstreamClient): Promise<string> {
  try {
    return await upstream.authorizationOrigin();
  } catch {
    throw ERRORS.temporarilyUnavailable(`${upstream.name} cannot be reached right now; try again in a moment`, 'upstream_unreachable');
  }
}

/** The consent page (the decision said: show it). */
async function renderConsentPage(
  deps: ConsentStepDeps,
  req: Request,
  res: Response,
  page: { uid: string; request: ConsentRequest; reason: string; session: BrowserSession | undefined; grantedBefore: string[] },
): Promise<void> {
  const { provider, config, stores, audit, views } = deps;
  const { request, session } = page;
  const client = await provider.Client.find(request.clientId);
  if (!client) throw ERRORS.invalidRequest('the application is no longer registered', 'client_gone');
  const upstream = deps.upstream();
  const formTarget = await upstreamOrigin(upstream);
  const meta = await stores.clientsMeta.get(request.clientId);
  const view = consentPageView({
    request,
    client: {
      name: typeof client.clientName === 'string' ? client.clientName : undefined,
      registeredAt: meta?.registered_at,
      cimd: meta?.kind === 'cimd',
      redirectUris: (client.metadata().redirect_uris as string[] | undefined) ?? [],
      refreshable: client.grantTypeAllowed('refresh_token'),
    },
    upstream,
    ttl: config.ttl,
    signedInAs: session?.display_name ?? undefined,
    grantedBefore: page.grantedBefore,
    toolScopes: config.toolScopes,
  });
  await audit.record({ event: 'consent.shown', reason: page.reason, subject: session?.subject, clientId: request.clientId, details: { scopes: request.scopes, redirect_uri: request.redirectUri } });
  res.setHeader('Content-Security-Policy', pageCsp([formTarget, cspSourceOf(request.redirectUri)]));
  res.setHeader('Cache-Control', 'no-store');
  const csrf = deps.csrf.forBrowser(req, res, CSRF_PURPOSE, page.uid);
  res.type('html').send(
    views.render(
      'consent',
      // `kept`: the scopes this page shows as already allowed; only those can be carried over at the callback (AT-23).
      { title: 'Authorize access', action: config.urls.path(`/interaction/${page.uid}/decision`), csrf, kept: page.grantedBefore.join(' '), accountUrl: config.urls.path('/account'), ...view },
      req.id,
    ),
  );
}

/** GET /interaction/:uid */
export function showConsent(deps: ConsentStepDeps): RequestHandler {
  const { provider, config, stores, audit } = deps;
  return async (req, res, next) => {
    try {
      const details = await loadInteraction(provider, req, res);
      const params = details.params as Record<string, unknown>;
      const request = requestOf(params, config.urls.mcpResource);
      const current = await currentSession(deps, req);
      const subject = current?.session.subject;
      const latest = subject ? await stores.consents.latest({ subject, clientId: request.clientId, redirectUri: request.redirectUri, resource: request.resource }) : undefined;
      const latestGrantExists = latest ? await stores.models.grantExists(latest.grant_id) : false;
      const secFetchSite = req.get('sec-fetch-site');
      const browserHash = browserHashOf(deps.cookies, req);
      const decision = decideConsent({
        subject,
        latest,
        request,
        browserHash,
        secFetchSite,
        promptRequested: promptRequested(params),
        grantExists: (id) => id === latest?.grant_id && latestGrantExists,
        now: Date.now(),
      });
      if (!decision.skip) {
        const before = grantedBefore(latest, subject, request, browserHash, Date.now());
        return await renderConsentPage(deps, req, res, { uid: details.uid, request, reason: decision.reason, session: current?.session, grantedBefore: before });
      }
      await audit.record({ event: 'consent.skipped', reason: 'remembered', subject, clientId: request.clientId, details: { consent_id: decision.consent.id, sec_fetch_site: secFetchSite } });
      await stores.browserSessions.seen((current as { id: string }).id);
      await finishWithExistingGrant(deps, req, res, decision.consent);
    } catch (err) {
      next(err);
    }
  };
}

/**
 * The scopes the page showed as already allowed (its `kept` field): at most what a consent can
 * hold, scope tokens only. Whatever the form says, the callback carries over only scopes the same
 * user's active consent in this browser still holds (src/consent/record.ts).
 */
function shownAsKept(raw: unknown): string[] {
  if (typeof raw !== 'string' || raw.length > 2048) return [];
  return [...new Set(raw.split(' ').filter((s) => /^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s)))];
}

/** POST /interaction/:uid/decision — approve or deny. */
export function decideOnConsent(deps: ConsentStepDeps): RequestHandler[] {
  const { provider, audit } = deps;
  return [
    express.urlencoded({ extended: false, limit: 4096, parameterLimit: 10 }),
    async (req: Request, res: Response, next: NextFunction) => {
      try {
        const check = deps.csrf.checkBrowser(req, CSRF_PURPOSE, String(req.params.uid), req.body?.csrf);
        if (check !== 'ok') {
          // CONS-08 / AT-04: refused before the interaction is even loaded; nothing is created.
          await audit.record({ event: 'consent.rejected', reason: check === 'cookie_missing' ? 'csrf_cookie_missing' : 'csrf_mismatch', details: { sec_fetch_site: req.get('sec-fetch-site') } });
          throw ERRORS.accessDenied('The approval could not be verified as coming from this page. Start again from your application.', 'csrf');
        }
        const details = await loadInteraction(provider, req, res);
        const request = requestOf(details.params as Record<string, unknown>, deps.config.urls.mcpResource);
        const action = req.body?.action;
        if (action === 'deny') {
          // CONS-15: access_denied to the client (with state and iss, added by the provider); U is never contacted.
          await audit.record({ event: 'consent.denied', clientId: request.clientId, details: { scopes: request.scopes } });
          await finishInteraction(provider, req, res, { error: 'access_denied', error_description: 'The user denied the request.' });
          return;
        }
        if (action !== 'approve') throw ERRORS.invalidRequest('unknown decision', 'bad_action');
        await audit.record({ event: 'consent.approved', clientId: request.clientId, details: { scopes: request.scopes, redirect_uri: request.redirectUri, resource: request.resource } });
        await startUpstreamAuthorization(deps, req, res, details.uid, request, bindBrowser(deps.cookies, req, res), shownAsKept(req.body?.kept));
      } catch (err) {
        next(err);
      }
    },
  ];
}
