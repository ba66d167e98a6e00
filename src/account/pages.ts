/**
 * Connected apps (/account, CONS-19): a user signed in to P (its browser session, opened by the
 * consent flow or by signing in here through the upstream) sees the applications they approved —
 * name (unverified), where answers go, scopes, when granted, last used, when it expires — and
 * revokes any of them with the full cascade (src/consent/operations.ts). Only the signed-in
 * subject's own consents can be revoked; every POST carries a CSRF token bound to the session
 * (src/http/csrf.ts), and a POST with nobody signed in is an unauthenticated refusal: budgeted
 * and tallied (src/audit/refusal-budget.ts). Signing in is a button (a POST from this page, src/session/sign-in.ts): a GET
 * of /account/login starts nothing. The "Revoked." notice shows only for a consent of this user
 * that is revoked (src/views/page-messages.ts).
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { AdminOps } from '../consent/operations.js';
import type { Stores } from '../store/index.js';
import { pageCsp } from '../http/csp.js';
import { ERRORS } from '../errors/oauth-error.js';
import { consentsWithClientNames } from '../consent/present.js';
import { currentSession } from '../session/browser.js';
import { showSignIn, startSignInFromPage, type SignInDeps } from '../session/sign-in.js';
import { revokedConsentId } from '../views/page-messages.js';

export interface AccountDeps extends SignInDeps {
  ops: AdminOps;
  stores: SignInDeps['stores'] & Pick<Stores, 'browserSessions' | 'consents' | 'clientsMeta'>;
}

const CSRF_PURPOSE = 'account';

/**
 * Every /account POST: a signed-in user whose form carries this session's token. Nobody signed in
 * is an unauthenticated refusal (DESIGN §9): budgeted (429 beyond RATE_LIMIT_REJECTED) and
 * tallied per address, reason and minute, not a row per request.
 */
function signedInWithToken(deps: AccountDeps) {
  const { audit } = deps;
  return async (req: Request, res: Response, next: NextFunction) => {
    const current = await currentSession(deps, req);
    const denied = () => ERRORS.accessDenied('The request could not be verified as coming from your account page. Reload it and try again.', 'csrf');
    if (!current) {
      // Nobody signed in: an unauthenticated refusal (DESIGN §9) — budgeted (429 beyond
      // RATE_LIMIT_REJECTED) and tallied per address, reason and minute, not a row per request.
      deps.refusals
        .refuse('account.rejected_aggregate', req.ip, 'not_signed_in', { method: req.method, path: req.path })
        .then((verdict) => next(verdict.limited ? ERRORS.tooManyRequests(verdict.retryAfterSeconds) : denied()))
        .catch(next);
      return;
    }
    if (!deps.csrf.checkSession(CSRF_PURPOSE, current.id, req.body?.csrf)) {
      await audit.record({ event: 'account.rejected', reason: 'csrf', subject: current.session.subject, details: { method: req.method, path: req.path } });
      return next(denied());
    }
    res.locals.account = current;
    next();
  };
}

export function accountRouter(deps: AccountDeps): Router {
  const { config, views, stores } = deps;
  const base = config.urls.basePath;
  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: 2048, parameterLimit: 10 });

  router.use((_req, res, next) => {
    res.setHeader('Content-Security-Policy', pageCsp());
    res.setHeader('Cache-Control', 'no-store');
    next();
  });

  // Signing in starts only from the button on P's own page (POST + token), never from a GET.
  router.get('/login', (req, res, next) => showSignIn(deps, req, res, 'account', `${base}/account`).catch(next));
  router.post('/login', ...startSignInFromPage(deps, 'account'));

  router.get('/', async (req, res) => {
    const current = await currentSession(deps, req);
    if (!current) {
      await showSignIn(deps, req, res, 'account', `${base}/account`, 401);
      return;
    }
    const { session } = current;
    const consents = await consentsWithClientNames(stores.clientsMeta, await stores.consents.list({ subject: session.subject, status: 'active', limit: 200 }));
    const revoked = (await revokedConsentId(req.query.revoked, (id) => stores.consents.byId(id), session.subject)) !== undefined;
    res
      .type('html')
      .send(
        views.render(
          'account',
          { title: 'Connected applications', user: session.display_name ?? session.subject, consents, csrf: deps.csrf.forSession(CSRF_PURPOSE, current.id), base, revoked },
          req.id,
        ),
      );
  });

  const checked = signedInWithToken(deps);

  router.post('/consents/:id/revoke', form, checked, async (req, res, next) => {
    const { session } = res.locals.account as NonNullable<Awaited<ReturnType<typeof currentSession>>>;
    const consent = await deps.ops.revokeConsent(Number(req.params.id), { actor: 'account', subject: session.subject, requestId: req.id, ip: req.ip }, session.subject);
    if (!consent) {
      // Not this user's, or no such consent: the same 404 either way; the attempt is on record (review 2026-12-07).
      await deps.audit.record({ event: 'account.rejected', reason: 'not_found', subject: session.subject, details: { consent_id: String(req.params.id).slice(0, 40) } });
      return next(ERRORS.notFound());
    }
    res.redirect(303, `${base}/account?revoked=${consent.id}`);
  });

  router.post('/logout', form, checked, async (_req, res) => {
    const { id, session } = res.locals.account as NonNullable<Awaited<ReturnType<typeof currentSession>>>;
    await stores.browserSessions.close(id);
    await deps.audit.record({ event: 'account.signed_out', subject: session.subject });
    deps.cookies.clear(res, 'session');
    res.redirect(303, `${base}/account`);
  });

  return router;
}
