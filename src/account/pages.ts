/**
 * Connected apps (/account, CONS-19): a user signed in to P (its browser session, opened by the
 * consent flow or by signing in here through the upstream) sees the applications they approved —
 * name (unverified), where answers go, scopes, when granted, last used, when it expires — and
 * revokes any of them with the full cascade. Only the signed-in subject's own consents can be
 * revoked; every POST carries a CSRF token bound to the session (a POST with nobody signed in is
 * an unauthenticated refusal: budgeted and tallied, src/http/refusal-budget.ts). Signing in is a button (a POST
 * from this page, src/flow/sign-in.ts): a GET of /account/login starts nothing. The "Revoked."
 * notice shows only for a consent of this user that is revoked (src/views/page-messages.ts).
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { AdminOps } from '../admin/ops.js';
import { consentWithClientName } from '../admin/pages.js';
import { showSignIn, startSignInFromPage, type SignInDeps } from '../flow/sign-in.js';
import { ERRORS } from '../errors/oauth-error.js';
import { revokedConsentId } from '../views/page-messages.js';

export function accountRouter(deps: SignInDeps & { ops: AdminOps }): Router {
  const { config, views, keys, stores, audit } = deps;
  const base = config.urls.basePath;
  const router = express.Router();
  const csrfFor = (sessionId: string) => keys.csrfMac(`account:${sessionId}`);
  const form = express.urlencoded({ extended: false, limit: 2048, parameterLimit: 10 });

  router.use((_req, res, next) => {
    res.setHeader('Content-Security-Policy', "default-src 'self';base-uri 'none';script-src 'none';style-src 'self';img-src 'self' data:;object-src 'none';frame-ancestors 'none';form-action 'self'");
    res.setHeader('Cache-Control', 'no-store');
    next();
  });

  // Signing in starts only from the button on P's own page (POST + token), never from a GET.
  router.get('/login', (req, res, next) => showSignIn(deps, req, res, 'account', `${base}/account`).catch(next));
  router.post('/login', ...startSignInFromPage(deps, 'account'));

  function session(req: Request) {
    const id = deps.cookies.read(req, 'session');
    const found = stores.browserSessions.find(id);
    return found && id ? { id, ...found } : undefined;
  }

  router.get('/', (req, res, next) => {
    const current = session(req);
    if (!current) {
      showSignIn(deps, req, res, 'account', `${base}/account`, 401).catch(next);
      return;
    }
    const consents = stores.consents.list({ subject: current.subject, active: true, limit: 200 }).map(consentWithClientName(stores));
    res.type('html').send(
      views.render(
        'account',
        {
          title: 'Connected applications',
          user: current.display_name ?? current.subject,
          consents,
          csrf: csrfFor(current.id),
          base,
          revoked: revokedConsentId(req.query.revoked, (id) => stores.consents.byId(id), current.subject) !== undefined,
        },
        req.id,
      ),
    );
  });

  const checked = (req: Request, res: Response, next: NextFunction) => {
    const current = session(req);
    const token = typeof req.body?.csrf === 'string' ? req.body.csrf : '';
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
    if (!token || !keys.checkCsrfMac(`account:${current.id}`, token)) {
      audit.record({ event: 'consent.rejected', reason: 'account_csrf', subject: current.subject });
      return next(denied());
    }
    res.locals.account = current;
    next();
  };

  router.post('/consents/:id/revoke', form, checked, (req, res, next) => {
    const current = res.locals.account as { subject: string };
    const consent = deps.ops.revokeConsent(Number(req.params.id), { actor: 'account', subject: current.subject, requestId: req.id, ip: req.ip }, current.subject);
    if (!consent) return next(ERRORS.notFound());
    res.redirect(303, `${base}/account?revoked=${consent.id}`);
  });

  router.post('/logout', form, checked, (req, res) => {
    stores.browserSessions.close(deps.cookies.read(req, 'session') as string);
    deps.cookies.clear(res, 'session');
    res.redirect(303, `${base}/account`);
  });

  return router;
}
