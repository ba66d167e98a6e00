/**
 * Signing in to P itself — a consent-free upstream login, for the admin pages and for the user's
 * /account page (CONS-19). It reuses the browser-bound upstream transaction of steps 5–6
 * (src/session/upstream-login.ts: fresh state, nonce and PKCE; `__Host-` binding cookie; single
 * use; ten minutes), so a sign-in link started elsewhere cannot log this browser in (login CSRF,
 * AT-12).
 * - admin: the upstream subject must be listed in ADMIN_SUBJECTS; the admin session gets its own
 *   `__Host-` cookie with idle and absolute timeouts. Anyone else is refused (403) and audited.
 * - account: P's browser session is opened for the subject, ending the one the browser carried.
 * The return path is always one of P's own pages, never a URL from the request.
 *
 * Started only by a click on P's own page (AT-12 login CSRF; CONS-02/16: another site must not
 * be able to open P's session in this browser behind the user's back). `GET /admin/login` and
 * `GET /account/login` (and the 401 pages) only show a "Sign in" button: a form POST carrying a
 * browser-bound CSRF token (src/http/csrf.ts, CONS-08) for this purpose. `startSignInFromPage`
 * refuses (403, nothing created, no redirect) a POST whose `Sec-Fetch-Site` is present and not
 * `same-origin`, that lacks the cookie, or whose token does not match it; only then is the upstream
 * transaction created and the browser sent to U. Such a refusal has nobody signed in: it counts
 * against the address's RATE_LIMIT_REJECTED budget (429 beyond) and is tallied into one
 * admin/account `rejected_aggregate` row per address, reason and minute (DESIGN §9,
 * src/audit/refusal-budget.ts). A POST that passes starts an upstream login and writes rows, so it
 * counts against RATE_LIMIT_AUTHORIZE like the consent page's Approve (`signInBudget`,
 * src/runtime/app.ts): 429 beyond it, tallied per address and minute.
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Config } from '../config/load.js';
import type { Views } from '../views/render.js';
import type { Csrf } from '../http/csrf.js';
import { pageCsp } from '../http/csp.js';
import type { Stores } from '../store/index.js';
import type { SignInTransaction } from '../store/upstream-transactions.js';
import type { UpstreamIdentity } from '../upstream/presets.js';
import { ERRORS } from '../errors/oauth-error.js';
import type { RefusalBudget } from '../audit/refusal-budget.js';
import { currentSession } from './browser.js';
import { startUpstreamLogin, type UpstreamLoginDeps } from './upstream-login.js';

export type SignInPurpose = 'admin' | 'account';

export interface SignInDeps extends UpstreamLoginDeps {
  config: Readonly<Config>;
  views: Views;
  csrf: Csrf;
  refusals: RefusalBudget;
  /** the per-address budget of a sign-in that passed the check (RATE_LIMIT_AUTHORIZE, src/runtime/app.ts) */
  signInBudget: RequestHandler;
  stores: Pick<Stores, 'transactions' | 'adminSessions' | 'browserSessions'>;
}

/**
 * Only P's own admin and account pages are return targets (no open redirect). The check is made on
 * what the browser will follow, not on the text: the path is resolved as a browser resolves it
 * (WHATWG URL: `%2e` and `%2E` are dots, so `/admin/%2e%2e/authorize` is `/authorize`), must keep
 * P's origin and stay under the page's prefix, and the resolved path and query are returned.
 */
export function safeReturnTo(config: Readonly<Config>, purpose: SignInPurpose, requested: unknown): string {
  const base = config.urls.basePath;
  const home = `${base}/${purpose}`;
  if (typeof requested !== 'string') return home;
  if (!requested.startsWith(`${home}/`) && requested !== home) return home;
  if (/[\\\s]|\/\/|%2f|%5c|\.\./i.test(requested.slice(base.length))) return home;
  const origin = config.urls.origin;
  const resolved = new URL(requested.split('#')[0] as string, origin);
  if (resolved.origin !== origin || (resolved.pathname !== home && !resolved.pathname.startsWith(`${home}/`))) return home;
  return resolved.pathname + resolved.search;
}

/** The CSRF purpose of a sign-in button (AT-12). */
const csrfPurpose = (purpose: SignInPurpose) => `signin-${purpose}`;

const PAGE_PURPOSE: Record<SignInPurpose, string> = { admin: 'the admin pages', account: 'your connected applications' };

/**
 * The sign-in page (GET /admin/login, GET /account/login, and the 401 answers of /admin and
 * /account): a button that POSTs to the login route with this browser's token. Creates nothing.
 * Its CSP `form-action` lets the browser follow the POST's 303 to U (deps.md gotcha 6).
 */
export async function showSignIn(deps: SignInDeps, req: Request, res: Response, purpose: SignInPurpose, returnTo: unknown, status = 200): Promise<void> {
  const base = deps.config.urls.basePath;
  const target = safeReturnTo(deps.config, purpose, returnTo);
  const action = purpose === 'admin' ? `${base}/admin/login?return=${encodeURIComponent(target)}` : `${base}/account/login`;
  const formTargets: string[] = [];
  try {
    formTargets.push(await deps.upstream().authorizationOrigin());
  } catch {
    // U unreachable: the button's POST will say so (503); the page itself still renders.
  }
  res.setHeader('Content-Security-Policy', pageCsp(formTargets));
  res.setHeader('Cache-Control', 'no-store');
  const csrf = deps.csrf.forBrowser(req, res, csrfPurpose(purpose));
  res
    .status(status)
    .type('html')
    .send(deps.views.render('signin', { title: 'Sign in', purpose: PAGE_PURPOSE[purpose], action, csrf }, req.id));
}

/** Why a sign-in POST is refused, or undefined when it came from P's own page. */
function refusalOf(deps: SignInDeps, req: Request, purpose: SignInPurpose): string | undefined {
  const site = req.get('sec-fetch-site');
  if (site !== undefined && site !== 'same-origin') return 'signin_cross_site';
  const check = deps.csrf.checkBrowser(req, csrfPurpose(purpose), '', req.body?.csrf);
  if (check === 'cookie_missing') return 'signin_csrf_cookie_missing';
  return check === 'mismatch' ? 'signin_csrf_mismatch' : undefined;
}

/** POST /admin/login, POST /account/login: the button's form; see the module comment. */
export function startSignInFromPage(deps: SignInDeps, purpose: SignInPurpose): RequestHandler[] {
  return [
    express.urlencoded({ extended: false, limit: 2048, parameterLimit: 10 }),
    async (req: Request, _res: Response, next: NextFunction) => {
      try {
        const refusal = refusalOf(deps, req, purpose);
        if (refusal) {
          // Nobody is signed in here: an unauthenticated refusal (DESIGN §9), counted against the
          // address's RATE_LIMIT_REJECTED budget (429 beyond) and tallied per address, reason and
          // minute — never one audit row per request (src/audit/refusal-budget.ts).
          const area = purpose === 'admin' ? 'admin.rejected_aggregate' : 'account.rejected_aggregate';
          const verdict = await deps.refusals.refuse(area, req.ip, refusal, { method: req.method, path: req.path });
          if (verdict.limited) throw ERRORS.tooManyRequests(verdict.retryAfterSeconds);
          throw ERRORS.accessDenied("This sign-in was not started from this server's own page. Open the page and press “Sign in”.", 'csrf');
        }
        next();
      } catch (err) {
        next(err);
      }
    },
    // Only a sign-in from this browser's own page counts here (a forged POST never does, so a
    // flood of them cannot use up the budget of the address's real users).
    deps.signInBudget,
    async (req: Request, res: Response, next: NextFunction) => {
      try {
        await startUpstreamLogin(deps, req, res, { purpose, returnTo: safeReturnTo(deps.config, purpose, req.query.return) }, undefined);
      } catch (err) {
        next(err);
      }
    },
  ];
}

/** What completing a sign-in at U's callback needs. */
export type SignInCompletionDeps = Pick<SignInDeps, 'config' | 'audit' | 'cookies' | 'stores'>;

/** At U's callback: open the admin session (an ADMIN_SUBJECTS subject only) or P's browser session. */
export async function completeSignIn(deps: SignInCompletionDeps, req: Request, res: Response, tx: SignInTransaction, identity: UpstreamIdentity): Promise<void> {
  const { config, audit } = deps;
  res.setHeader('Cache-Control', 'no-store');
  if (tx.purpose === 'admin') {
    if (!config.adminSubjects.includes(identity.subject)) {
      await audit.record({ event: 'admin.login_denied', subject: identity.subject, reason: 'not_an_admin' });
      const who = `${identity.displayName ?? identity.subject} (subject ${identity.subject})`;
      throw ERRORS.forbiddenPage('Not an administrator', `You signed in as ${who}, which is not listed in ADMIN_SUBJECTS on this server.`, 'not_an_admin');
    }
    // As for P's browser session below: the admin session this browser carried ends (review 2026-12-07).
    const previous = deps.cookies.read(req, 'admin');
    if (previous) await deps.stores.adminSessions.close(previous);
    const id = await deps.stores.adminSessions.open(identity.subject, identity.displayName, config.ttl.adminSession);
    deps.cookies.write(res, 'admin', id, config.ttl.adminSession);
    await audit.record({ event: 'admin.login', subject: identity.subject, details: { display_name: identity.displayName } });
    res.redirect(303, tx.returnTo);
    return;
  }
  // A completed sign-in gets a new session, for SESSION_TTL from now, and ends the one this browser
  // carried (review 2026-12-07): another user's stayed valid for the rest of its SESSION_TTL to
  // whoever held its cookie, and the same user's kept its id — one that had leaked outlived the
  // re-authentication — and its old expiry.
  const current = await currentSession(deps, req);
  if (current) await deps.stores.browserSessions.close(current.id);
  const id = await deps.stores.browserSessions.open(identity.subject, identity.displayName, config.ttl.session);
  deps.cookies.write(res, 'session', id, config.ttl.session);
  await audit.record({ event: 'account.signed_in', subject: identity.subject });
  res.redirect(303, tx.returnTo);
}
